"""The PromQL reader the alert and dashboard checks share (``deploy/promql/``): the metric names an
expression selects, and the labels it filters, groups or matches by that its operand lacks."""

from __future__ import annotations

import pytest

from deploy import promql
from deploy.promql import PromQLError, label_problems, metric_names

SERIES = {
    "http_seconds_bucket": frozenset({"service", "route", "status", "le", "instance", "job"}),
    "http_seconds_count": frozenset({"service", "route", "status", "instance", "job"}),
    "lag": frozenset({"service", "consumer", "topic", "partition", "instance", "job"}),
    "depth": frozenset({"skill", "instance", "job"}),
    "up": frozenset({"instance", "job"}),
    "build_info": frozenset({"version", "instance", "job"}),
}


def labels_of(name: str) -> frozenset[str] | None:
    return SERIES.get(name)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('rate(http_seconds_count{service="sci"}[5m])', {"http_seconds_count"}),
        (
            "histogram_quantile(0.95, sum by (le, route) (rate(http_seconds_bucket[$__rate_interval])))",
            {"http_seconds_bucket"},
        ),
        ("sum(rate(http_seconds_bucket[5m])) by (le)", {"http_seconds_bucket"}),  # grouping after
        ("sum(rate(a_total[5m] offset 1h)) / sum(rate(a_total[5m] offset -5m))", {"a_total"}),
        ("a @ end() + b @ 1609746000 + c offset $__interval", {"a", "b", "c"}),
        ("max_over_time(rate(x_total[5m])[1h:1m])", {"x_total"}),  # a subquery
        # strings never name metrics, whatever they hold: braces, commas, metric-like words
        ('x{route="/v1/{id}", a=~"lemma_fake|b,c", b!~"sum(y)"}', {"x"}),
        ("x{route='/a\\'b', c=`raw\\`}", {"x"}),
        ('label_replace(up, "dst", "lemma_fake_total", "job", "(.*)")', {"up"}),
        ('{__name__="named", a="b"}', {"named"}),
        ('{"dotted.name", a="b"}', {"dotted.name"}),  # Prometheus 3's quoted names
        ("a and on(service) b or c unless ignoring(x) d", {"a", "b", "c", "d"}),
        ("a > bool 0 and a * on(job) group_left(version) build_info", {"a", "build_info"}),
        ("-x ^ 2 + 1e3 * Inf - NaN + 0x1F + .5", {"x"}),
        ("sum by (service) (x) # a comment naming y\n + z", {"x", "z"}),
        ('count_values("v", build_info)', {"build_info"}),
        ("topk(5, sum without (instance) (depth))", {"depth"}),
        ('x{job=~"lemma-$service", s="${service}"}', {"x"}),
        ("vector(1) + time() + scalar(up)", {"up"}),
        ("job:http_seconds:rate5m", {"job:http_seconds:rate5m"}),  # recording-rule names
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_matchers_are_read_with_their_values() -> None:
    (selector,) = promql.selectors('x{route="/v1/{id}", status=~"5..", a!="b,c"}')
    assert [(m.label, m.op, m.value) for m in selector.matchers] == [
        ("route", "=", "/v1/{id}"),
        ("status", "=~", "5.."),
        ("a", "!=", "b,c"),
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "sum(",
        "x{a=}",
        'x{a~"b"}',
        '{__name__=~"lemma_.*"}',  # no single name to check
        "rate(x[5m]",
        "x ?? y",
    ],
)
def test_what_it_cannot_read_is_an_error(expr: str) -> None:
    with pytest.raises(PromQLError):
        metric_names(expr)


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (service, route) (rate(http_seconds_count{status=~"5.."}[5m]))',
        "histogram_quantile(0.99, sum by (service, le) (rate(http_seconds_bucket[5m])))",
        "sum by (service) (histogram_quantile(0.99, sum by (service, le) (rate(http_seconds_bucket[5m]))))",
        "sum by (service, consumer) (max by (service, consumer, topic, partition) (lag))",
        "sum without (instance, partition) (lag) > 0",
        "sum by (route) (topk(3, http_seconds_count))",  # topk keeps its series' labels
        'sum by (svc) (label_replace(up, "svc", "$1", "job", "lemma-(.*)"))',
        'sum by (v) (count_values("v", build_info))',
        "sum by (job, version) (up * on(job, instance) group_left(version) build_info)",
        "sum by (skill) (depth) * 60 > 10",
        'up{job=~"lemma-.*"} == 0',
        "sum by (skill, job) (depth or up)",
        "sum by (nothing) (unknown_metric)",  # unknown metrics are the names check's business
    ],
)
def test_labels_the_operand_carries_pass(expr: str) -> None:
    assert label_problems(expr, labels_of) == []


@pytest.mark.parametrize(
    ("expr", "label"),
    [
        ('lag{skill="x"}', "skill"),  # a matcher on a label the metric lacks
        ("sum by (route) (lag)", "route"),
        ("sum without (route) (lag)", "route"),
        ("sum(lag) by (route)", "route"),
        ("histogram_quantile(0.9, sum by (service) (rate(http_seconds_bucket[5m])))", "le"),
        ("histogram_quantile(0.9, rate(http_seconds_count[5m]))", "le"),  # _count has no buckets
        ("sum by (le) (histogram_quantile(0.9, sum by (le) (rate(http_seconds_bucket[5m]))))", "le"),
        ("sum by (service) (sum by (route) (http_seconds_count))", "service"),  # lost by the inner sum
        ("sum by (skill) (rate(http_seconds_count[5m]) offset 1h)", "skill"),
        ("http_seconds_count / on(skill) depth", "skill"),
        ("lag / on(consumer) depth", "consumer"),  # one side lacks it
        ("up * on(job) group_left(release) build_info", "release"),
        ('label_replace(up, "svc", "$1", "service", "(.*)")', "service"),
        ("sum by (route) (sum by (service) (http_seconds_count) * 2)", "route"),
        ("sum by (status) (http_seconds_count / on(service, route) http_seconds_count)", "status"),
    ],
)
def test_a_label_the_operand_lacks_is_a_problem(expr: str, label: str) -> None:
    problems = label_problems(expr, labels_of)
    assert problems, expr
    assert any(f"'{label}'" in problem for problem in problems), problems
