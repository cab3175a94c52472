"""The few kinds of panel Lemma's dashboards use, built with grafana-foundation-sdk, each with its
title, a plain-words description, its unit and its Prometheus queries, on the data source the
dashboard's ``datasource`` variable picks."""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model

#: Every query runs on the Prometheus data source the ``datasource`` variable picks.
DATASOURCE = dashboard_model.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: The probes' and the scrape's own routes, left out of the traffic and latency panels.
PROBE_ROUTES = 'route!~"/metrics|/healthz|/readyz"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, metric: str, description: str) -> dashboard.QueryVariable:
    """A multi-value variable of a label's values (All by default), for ``label=~"$name"``."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dashboard_model.VariableOption(text="All", value="$__all", selected=True))
    )


def _targets(queries: tuple[Query, ...]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    built: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        built.append(target.instant() if query.instant else target.range())
    return built


def _thresholds(warn: float | None, bad: float | None) -> dashboard.ThresholdsConfig:
    steps = [dashboard_model.Threshold(value=None, color="green")]
    if warn is not None:
        steps.append(dashboard_model.Threshold(value=warn, color="orange"))
    if bad is not None:
        steps.append(dashboard_model.Threshold(value=bad, color="red"))
    return dashboard.ThresholdsConfig().mode(dashboard_model.ThresholdsMode.ABSOLUTE).steps(steps)


def graph(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    """A time series panel; the legend is a table with each series' mean and max."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .fill_opacity(25 if stacked else 10)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_model.LegendDisplayMode.TABLE)
            .placement(common_model.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_model.TooltipDisplayMode.MULTI)
            .sort(common_model.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_model.StackingMode.NORMAL))
    return panel


def single_stat(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    warn: float | None = None,
    bad: float | None = None,
    width: int = 6,
    height: int = 5,
) -> stat.Panel:
    """One number per series (its last value), coloured by the thresholds."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets((query,)))
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(_thresholds(warn, bad))
        .color_mode(common_model.BigValueColorMode.BACKGROUND)
        .graph_mode(common_model.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def bars(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    width: int = 8,
    height: int = 9,
    repeat: str | None = None,
) -> bargauge.Panel:
    """Horizontal bars of the series' last values (an instant query): a distribution at a glance.
    Repeated by a variable, one panel per value, side by side in the width given."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets((query,)))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(None, None))
    )
    if repeat:
        panel = panel.repeat(repeat).repeat_direction("h")
    return panel
