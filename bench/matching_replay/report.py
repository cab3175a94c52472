"""The replay's figures, its printed report and its target."""

from __future__ import annotations

import argparse
import math
import os
import platform
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.matching_replay.driver import Driver
from bench.matching_replay.referee import Referee
from deploy.local.broker import kafka_version
from shared.catalog import get_catalog
from sim.arrivals import percentile

TARGET = (
    "two matcher processes on the real broker, tickets 10% cancelled and 5% of matches ending in a "
    "no-show: every ticket ends in exactly one terminal event (matched, cancelled or expired) and no "
    "learner is ever in two open sessions of a skill"
)


def figures(args: argparse.Namespace, run: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    driver: Driver = run["driver"]
    referee: Referee = check["referee"]
    published: Counter[str] = check["published"]
    counts = referee.counts
    lat, requeue_lat = driver.latencies, driver.requeue_latencies
    gaps = [m.level_gap for m in referee.matches.values()]

    def pct(values: Sequence[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if math.isnan(value) else round(value, 3)

    return {
        "tickets": len(driver.issued),
        "requeue_tickets": check["requeue_tickets"],
        "learners": args.learners,
        "rate_per_s": args.rate,
        "max_open": args.max_open,
        "ttl_s": args.ttl,
        "outcomes": dict(check["statuses"]),
        "refused_requests": counts["MatchRequested:refused"],
        "requeue_copies": counts["MatchRequested:copy"],
        "match_found_published": published["MatchFound"],
        "match_found_distinct": check["found_ids"],
        "match_found_effective": len(referee.matches),
        "match_found_void": counts["MatchFound:void"],
        "void_found_causes": dict(referee.void_found_causes),
        "cancels_published": published["MatchCancelled"],
        "cancels_effective": counts["MatchCancelled:effective"],
        "cancels_lost_to_match": referee.void_closed_causes["MatchCancelled:matched"],
        "expiries_published": published["MatchExpired"],
        "expiries_effective": counts["MatchExpired:effective"],
        "sessions_completed": driver.counts["completed"],
        "no_shows": check["no_shows"],
        "wall_s": round(run["wall_s"], 1),
        "requesting_s": None if math.isnan(run["generated_s"]) else round(run["generated_s"], 1),
        "blocked_s": round(run["blocked_s"], 1),
        "tickets_per_s": round(len(driver.issued) / run["wall_s"], 1),
        "requested_per_s": None
        if math.isnan(run["generated_s"])
        else round(len(driver.issued) / run["generated_s"], 1),
        "latency_s": {f"p{q}": pct(lat, q) for q in (50, 90, 95, 99)} | {"max": pct(lat, 100), "n": len(lat)},
        "requeue_latency_s": {f"p{q}": pct(requeue_lat, q) for q in (50, 95)} | {"n": len(requeue_lat)},
        "level_gap_mean": round(sum(gaps) / len(gaps), 4) if gaps else None,
        "level_gap_p95": pct(gaps, 95),
        "most_open_sessions_per_learner_skill": check["most_open_sessions"],
        "orphan_session_ends": check["orphan_session_ends"],
        "stores": {k: dict(v) for k, v in check["stores"].items()},
        "store_tickets_not_as_in_log": check["diverged"],
        "skills_decided": run["owned"],
        "log_records": check["log_records"],
        "dead_letters": check["dead_letters"],
        "sessions_ended_in_log_not_in_store": {k: len(v) for k, v in check["not_ended_in_store"].items()},
        "driver_anomalies": len(driver.anomalies),
        "stalled": run["stalled"],
    }


def report(args: argparse.Namespace, out: dict[str, Any], checks: dict[str, bool]) -> None:
    lat, rq = out["latency_s"], out["requeue_latency_s"]
    print(
        f"matching replay: {out['tickets']:,} tickets from {args.learners:,} learners over "
        f"{len(get_catalog().skills)} skills, {args.rate:g}/s (at most {args.max_open:,} open), "
        f"two matching replicas on one store, Apache Kafka {kafka_version()}; ttl {args.ttl:g} s, "
        f"seed {args.seed}"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"  wall {out['wall_s']:.1f} s (requesting {out['requesting_s']} s, {out['blocked_s']:.1f} s with "
        f"nobody free or too many open): {out['tickets_per_s']:,.1f} tickets/s through the system "
        f"(first request to last ticket closed); {out['requested_per_s']} requests/s while requesting"
    )
    print(
        f"  outcomes {out['outcomes']}; requeue tickets {out['requeue_tickets']:,} (copies "
        f"{out['requeue_copies']:,}), refused requests {out['refused_requests']}"
    )
    print(
        f"  MatchFound published {out['match_found_published']:,} "
        f"({out['match_found_distinct']:,} distinct), "
        f"effective {out['match_found_effective']:,}, void (lost races) {out['match_found_void']:,} "
        f"{out['void_found_causes']}"
    )
    print(
        f"  cancels published {out['cancels_published']:,}, effective {out['cancels_effective']:,}, "
        f"lost to a match {out['cancels_lost_to_match']:,}; expiries {out['expiries_effective']:,} of "
        f"{out['expiries_published']:,} published"
    )
    print(f"  sessions completed {out['sessions_completed']:,}, no-shows {out['no_shows']:,}")
    print(
        f"  match latency (request event -> MatchFound event, {lat['n']:,} tickets): p50 {lat['p50']} s, "
        f"p90 {lat['p90']} s, p95 {lat['p95']} s, p99 {lat['p99']} s, max {lat['max']} s; requeued "
        f"({rq['n']:,}): p50 {rq['p50']} s, p95 {rq['p95']} s"
    )
    print(f"  level gap of effective matches: mean {out['level_gap_mean']}, p95 {out['level_gap_p95']}")
    print(
        f"  sessions the log ended that a store still holds open: {out['sessions_ended_in_log_not_in_store']}"
        f" (learners refused there as busy: {out['learners_refused_as_busy_in_store']})"
    )
    if "rebuild" in out:
        print(f"  rebuild on an empty store: {out['rebuild']}")
    print(f"  store tickets whose state is not the log's: {out['store_tickets_not_as_in_log']}")
    print(f"  stores: {out['stores']}; log records {out['log_records']}; dead letters {out['dead_letters']}")
    print(f"  session ends naming no effective match {out['orphan_session_ends']}")
    if "matcher_worst_loop_lag_s" in out:
        print(f"  the matchers' worst event-loop lag (s): {out['matcher_worst_loop_lag_s']}")
    if "broker" in out:
        print(f"  broker: {out['broker']}")
    print("checks:")
    for name, ok in checks.items():
        print(f"  {name}: {'met' if ok else 'MISSED'}")
