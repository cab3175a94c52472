"""What operators watch, tried on the running stack: after learners have been driven through the
gateway, every series the dashboards and alert rules query is on some replica's ``/metrics``,
the ones the main panels draw have samples, and the Prometheus beside the stack scrapes every
replica, has loaded the alert rules and answers every dashboard query."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy import promql
from deploy.grafana.queries import committed_dashboards, dashboard_queries
from deploy.local import prometheus
from deploy.local.config import REPO_ROOT
from deploy.local.seed import demo_plan
from deploy.local.stack import StackConfig
from sim.http_driver import drive

#: Series Prometheus makes itself (not on any /metrics).
PROMETHEUS_OWN = re.compile(r"^(up|scrape_.*)$")
#: What the main panels draw: each must have samples once learners have been through.
DRAWN = (
    "lemma_http_request_duration_seconds_bucket",
    "lemma_events_published_total",
    "lemma_events_consumed_total",
    "lemma_consumer_lag",
    "lemma_matching_time_to_match_seconds_bucket",
    "lemma_rating_to_passport_seconds_bucket",
    "lemma_sci_learners",
    "lemma_ready",
)
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def series_on(text: str) -> tuple[set[str], set[str]]:
    """The series names a /metrics page declares (with the suffixes Prometheus stores), and those
    of them that have samples."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = SUFFIXES.get(family.type, ("",))
        declared.update(family.name + suffix for suffix in suffixes)
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


def scrape(urls: Iterable[str]) -> tuple[set[str], set[str], dict[str, str]]:
    declared: set[str] = set()
    sampled: set[str] = set()
    pages: dict[str, str] = {}
    for url in urls:
        pages[url] = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
        d, s = series_on(pages[url])
        declared |= d
        sampled |= s
    return declared, sampled, pages


def queried() -> dict[str, set[str]]:
    """Every series name the dashboards and alert rules query, with where."""
    where: dict[str, set[str]] = {}
    for file, doc in committed_dashboards().items():
        for query in dashboard_queries(doc):
            for name in promql.metric_names(query.expr):
                where.setdefault(name, set()).add(f"{file}: {query.where}")
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in promql.metric_names(rule["expr"]):
                where.setdefault(name, set()).add(f"alert {rule['alert']}")
    return where


def replica_urls(stack: StackConfig) -> list[str]:
    return [stack.service_url(name, n) for name in stack.services for n in range(1, stack.replicas + 1)]


def as_run(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable at "all"."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "1m", expr)
    return re.sub(r"\$\{?(\w+)(:\w+)?\}?", ".*", expr)


def ask(stack: StackConfig, path: str, **params: Any) -> Any:
    answer = httpx.get(prometheus.url(stack) + path, params=params, timeout=10).raise_for_status().json()
    assert answer["status"] == "success", answer
    return answer["data"]


def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            assert found, f"{what} (after {timeout:.0f}s)"
            return found
        time.sleep(1.0)


async def test_dashboards_and_alerts_query_what_the_running_stack_exports(stack: StackConfig) -> None:
    secret = (stack.state_dir / "jwt-secret").read_text().strip()
    result = await drive(
        demo_plan(learners=16, sessions_per_learner=3), stack.gateway_url, secret, concurrency=8
    )
    assert result.completed > 0, result

    def rated() -> bool:
        *_, pages = scrape([stack.service_url("passport", n) for n in range(1, stack.replicas + 1)])
        counts = re.findall(
            r"^lemma_rating_to_passport_seconds_count(?:\{[^}]*\})? (\S+)$", "".join(pages.values()), re.M
        )
        return sum(float(c) for c in counts) > 0

    def distributed() -> bool:
        """sci's distribution (refreshed every LEMMA_SCI_DISTRIBUTION_INTERVAL_S) counts someone."""
        *_, pages = scrape([stack.service_url("sci", n) for n in range(1, stack.replicas + 1)])
        counts = re.findall(r"^lemma_sci_learners\{[^}]*\} (\S+)$", "".join(pages.values()), re.M)
        return sum(float(c) for c in counts) > 0

    await asyncio.to_thread(until, rated, 60, "no rating reached a passport")
    await asyncio.to_thread(until, distributed, 90, "the SCI distribution counts no learner")
    declared, sampled, _ = await asyncio.to_thread(scrape, replica_urls(stack))
    wanted = queried()
    missing = {name: sorted(where) for name, where in wanted.items() if name not in declared}
    missing = {name: where for name, where in missing.items() if not PROMETHEUS_OWN.match(name)}
    assert not missing, f"queried but exported by no running service: {missing}"
    assert set(DRAWN) <= set(wanted), "the panels this test expects to draw are queried"
    assert not [name for name in DRAWN if name not in sampled], sorted(set(DRAWN) - sampled)

    # Prometheus beside the stack: every replica scraped, the shipped rules loaded and sound
    def all_up() -> bool:
        targets = ask(stack, "/api/v1/targets")["activeTargets"]
        return len(targets) == len(replica_urls(stack)) and all(t["health"] == "up" for t in targets)

    await asyncio.to_thread(until, all_up, 30, "a replica is not scraped")
    rules = [rule for group in ask(stack, "/api/v1/rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {
        rule["alert"]
        for group in yaml.safe_load((REPO_ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert all(rule["health"] == "ok" for rule in rules), rules

    # every dashboard query runs; each series the main panels draw gives a panel something once
    # a scrape has seen the drive's numbers (not every query of it: a 5xx panel rightly shows none)
    def undrawn() -> set[str]:
        shown: set[str] = set()
        for doc in committed_dashboards().values():
            for query in dashboard_queries(doc):
                if query.label is None and ask(stack, "/api/v1/query", query=as_run(query.expr))["result"]:
                    shown |= promql.metric_names(query.expr)
        return set(DRAWN) - shown

    await asyncio.to_thread(until, lambda: not undrawn(), 30, "a drawn series shows on no dashboard query")
