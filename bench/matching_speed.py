"""Speed of the service's decision path in the steady state of a high arrival rate.

One skill's queue cannot hold thousands of tickets the rules have not already paired (a new
ticket is paired on arrival with anyone inside its window), so the waiting tickets are spread
over many skills: ``variants`` copies of each catalog skill (same specialties and formats), each
with its own population, requests arriving at ``rate`` per second over all of them
(``sim.arrivals``: Poisson arrivals, levels 1 + 3 Beta(2,2), specialty and format preferences;
sessions of 1-3 min so that learners come back and meet again). The replica (``Replica``) owns
every partition; after ``warm_s`` simulated seconds, for ``measure_s`` more, every call into the
matcher is timed: ``on_records`` of each request, the echo of its decisions, each sweep.

Then its waiting tickets are written to the store as the projection holds them, and a second
replica takes every partition from that store (what a replica does when it gains a partition),
while the previous path (``matching_baseline``) reads and decides the same queues.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.matching_baseline import time_old_path, write_queue
from bench.matching_checks import check_log
from bench.matching_service import Replica, ServiceMatcher
from services.matching.engine import Rules
from shared.catalog import Skill, get_catalog
from shared.gc_tuning import tune_for_folding
from sim.arrivals import START, Settings, draw_population, percentile, simulate

PARTITIONS = 12


@dataclass(frozen=True)
class Traffic:
    variants: int = 1_400  # copies of each catalog skill: 4,200 skills
    rate_per_s: float = 2_800.0  # 0.67 a second per skill, as at the default traffic
    learners: int = 300  # per skill
    warm_s: float = 20.0
    measure_s: float = 20.0
    batch_s: float = 0.0  # 0: a record per call; else as a consumer's polls batch them

    def settings(self) -> Settings:
        hours = (self.warm_s + self.measure_s) / 3600
        return Settings(
            learners=self.learners,
            rate_per_s=self.rate_per_s,
            hours=hours,
            session_min_s=60,
            session_max_s=180,
        )


def many_skills(variants: int) -> list[Skill]:
    return [
        s.model_copy(update={"id": f"{s.id}-{n:04d}"}) for n in range(variants) for s in get_catalog().skills
    ]


def steady(
    traffic: Traffic, rules: Rules, seed: int, store_url: str
) -> tuple[dict[str, Any], ServiceMatcher]:
    """Run the traffic through a replica; the figures and the replica (still open)."""
    skills = many_skills(traffic.variants)
    settings = traffic.settings()
    population = draw_population(skills, settings, seed)
    replica = Replica(store_url, rules, [s.id for s in skills], PARTITIONS, START)
    matcher = ServiceMatcher(
        replica, timed_from=START + timedelta(seconds=traffic.warm_s), batch_s=traffic.batch_s
    )
    tune_for_folding()  # as the service's runner does at start
    matcher.start()
    started = time.perf_counter()
    out = simulate(matcher, population, settings, seed)
    wall = time.perf_counter() - started
    t = matcher.timings
    calls = t.arrivals or [seconds / n for seconds, n in t.batches for _ in range(n)]
    figures: dict[str, Any] = {
        "skills": len(skills),
        "requested": out.requested,
        "dropped": out.dropped,
        "waiting_min": min(t.waiting, default=0),
        "waiting_max": max(t.waiting, default=0),
        "timed_requests": t.requests,
        "batch_mean": (t.requests / len(t.batches)) if t.batches else 1.0,
        "decision_p50_ms": 1000 * percentile(calls, 50),
        "decision_p99_ms": 1000 * percentile(calls, 99),
        "decision_max_ms": 1000 * max(calls, default=math.nan),
        "sweep_p50_ms": 1000 * percentile(t.sweeps, 50),
        "sweep_p99_ms": 1000 * percentile(t.sweeps, 99),
        "seconds_requests": sum(t.arrivals) + sum(s for s, _ in t.batches),
        "seconds_echoes": t.echoes,
        "seconds_sweeps": sum(t.sweeps),
        "decisions_per_s": t.requests / t.seconds if t.seconds else math.nan,
        "wall_s": wall,
        "checks": check_log(replica.log, rules),
    }
    return figures, matcher


async def _take_and_compare(replica: Replica, rules: Rules, sample: int) -> dict[str, Any]:
    """Write the replica's queue as the projection holds it; take it with a new replica, and
    time the previous path on the same documents."""
    store = replica.store
    written = await write_queue(store, replica.matcher.book, replica.topic, replica.offsets)
    fresh = Replica(replica.store_url, rules, replica.skills, replica.partitions, replica.now)
    try:
        take_s = await fresh.take_all()
        book = fresh.matcher.book
        loaded = sum(book.depth(s) for s in book.skills)
        started = time.perf_counter()
        await fresh.sweep()  # the first look at every ticket taken (what follows a take)
        first_sweep_s = time.perf_counter() - started
        old = await time_old_path(fresh.ctx.store, list(replica.skills), rules, replica.now, sample=sample)
    finally:
        await fresh.close()
    return {
        "written": written,
        "taken": loaded,
        "take_ms": 1000 * take_s,
        "first_sweep_ms": 1000 * first_sweep_s,
        "old_per_skill_p50_ms": 1000 * percentile(old["per_skill_s"], 50),
        "old_per_skill_p99_ms": 1000 * percentile(old["per_skill_s"], 99),
        "old_run_ms": 1000 * old["run_s"],
        "old_run_tickets": old["run_tickets"],
        "largest_queue": old["largest_queue"],
    }


def take_and_compare(matcher: ServiceMatcher, rules: Rules, sample: int = 200) -> dict[str, Any]:
    return matcher.run(_take_and_compare(matcher.replica, rules, sample))


def scratch_store() -> tuple[str, tempfile.TemporaryDirectory[str]]:
    """A SQLite file store in a fresh directory (WAL, as the service opens it)."""
    folder = tempfile.TemporaryDirectory(prefix="bench-matching-")
    return f"sqlite:///{Path(folder.name) / 'matching.db'}", folder
