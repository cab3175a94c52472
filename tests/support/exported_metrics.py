"""The series the services export, as Prometheus stores them after scraping a replica: every module
of services/ and shared/ imported (so prometheus_client's REGISTRY holds every metric, wherever it
is defined), each metric expanded to the series its type exposes (a counter's ``_total``, a
histogram's ``_bucket`` with ``le``, ``_sum``, ``_count``), with its labels and the target labels
Prometheus adds. The checks of the alert rules and of the dashboards read their queries against
this."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import services
import shared
from deploy import promql

#: Labels Prometheus puts on every series it scrapes (the scrape job, the replica's address).
TARGET_LABELS = frozenset({"instance", "job"})
#: Series Prometheus writes itself for every target it scrapes.
SCRAPE_SERIES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)


def import_every_module() -> int:
    """Import every module of services/ and shared/ (not ``__main__``, which would serve): any
    metric defined at module level is then registered. Returns how many were imported."""
    count = 0
    for package in (services, shared):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.rsplit(".", 1)[-1] != "__main__":
                importlib.import_module(module.name)
                count += 1
    return count


def _series(name: str, kind: str, labels: frozenset[str]) -> dict[str, frozenset[str]]:
    """The series names a metric family of this type exposes in the text format, and their labels."""
    if kind == "counter":
        return {f"{name}_total": labels, f"{name}_created": labels}
    if kind in ("histogram", "gaugehistogram"):
        sums = ("_sum", "_count", "_created") if kind == "histogram" else ("_gsum", "_gcount")
        return {f"{name}_bucket": labels | {"le"}} | {f"{name}{s}": labels for s in sums}
    if kind == "summary":
        return {name: labels | {"quantile"}} | {f"{name}{s}": labels for s in ("_sum", "_count", "_created")}
    if kind == "info":
        return {f"{name}_info": labels}
    if kind == "stateset":
        return {name: labels | {name}}
    return {name: labels}  # gauge, unknown


@cache
def exported_series() -> dict[str, frozenset[str]]:
    """Series name → the labels its series carry once Prometheus has scraped them. Reads the
    registry's collectors (a private map of prometheus_client, pinned in uv.lock): a labelled
    metric nobody has observed yet has no samples to read its labels from."""
    import_every_module()
    found: dict[str, frozenset[str]] = {name: TARGET_LABELS for name in SCRAPE_SERIES}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            labels = frozenset(collector._labelnames) | TARGET_LABELS
            found |= _series(collector._name, str(collector._type), labels)
            continue
        for family in collector.collect():  # a custom collector: its samples say what it exposes
            names = set(getattr(family, "_labelnames", ()))
            names |= {label for sample in family.samples for label in sample.labels}
            labels = frozenset(names - {"le", "quantile"}) | TARGET_LABELS
            expected = _series(family.name, family.type, labels)
            if family.samples:
                expected = {s.name: expected.get(s.name, labels) for s in family.samples}
            found |= expected
    return found


def labels_of(series: str) -> frozenset[str] | None:
    """The labels of an exported series, or None if no service exports it."""
    return exported_series().get(series)


def query_problems(expr: str, reads_label: str | None = None) -> list[str]:
    """What a query gets wrong against what the services export: each series no service exports,
    and each label it filters, groups or matches by that its operand does not carry (and
    ``reads_label``, a ``label_values`` variable's label, that a series it selects lacks)."""
    names = promql.metric_names(expr)
    problems = [f"{name} is exported by no service" for name in sorted(names - exported_series().keys())]
    problems += promql.label_problems(expr, labels_of)
    for name in sorted(names & exported_series().keys()):
        if reads_label is not None and reads_label not in exported_series()[name]:
            problems.append(f"{name} has no label {reads_label!r} to list the values of")
    return problems
