"""What every Lemma dashboard is built from: its frame (uid, title, tags, refresh, time range,
the link to the other dashboards, the data source variable) and the PromQL shapes its panels
repeat (a rate over Grafana's rate interval, a histogram's quantiles)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dashboard_model

from deploy.grafana.panels import Query, datasource_variable

RATE = "$__rate_interval"


def lemma_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["lemma"])
        .readonly()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("Lemma")
            .type(dashboard_model.DashboardLinkType.DASHBOARDS)
            .tags(["lemma"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
    )


def rate(series: str, matchers: str, function: str = "rate") -> str:
    """``rate(series{matchers}[$__rate_interval])`` (or ``increase``)."""
    return f"{function}({series}{{{matchers}}}[{RATE}])" if matchers else f"{function}({series}[{RATE}])"


def quantiles(series: str, by: str, matchers: str = "") -> tuple[Query, ...]:
    """p50, p95 and p99 of a histogram, by ``by`` (a comma-separated label list, or empty)."""
    group = f"{by}, le" if by else "le"
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")) if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) (rate({series}_bucket{{{matchers}}}[{RATE}])))",
            f"{legend} p{round(q * 100)}".strip(),
        )
        for q in (0.5, 0.95, 0.99)
    )
