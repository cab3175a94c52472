"""The engine alone with 10,000 tickets in ONE skill: the worst cases of its candidate search.

The book never holds such a queue (its tickets would have been paired on arrival), but a
tighter rule set, levels changed after queueing or a restart on a store that was not decided
for a while can come near it, and the search must not be a scan of everything waiting. The
queue is preloaded with ``SkillQueue.add`` (so its tickets have not paired among themselves),
levels, specialties and formats as ``sim.arrivals`` draws them, waited 0-60 s so their windows
differ:

- ``arrive`` of new tickets one by one, the queue kept at its size (a paired ticket replaced,
  a queued arrival removed);
- the worst case: an arrival nobody accepts (levels squeezed into 1-2, the newcomer at 4.0),
  where the previous engine scanned every ticket (14.5 ms at 10,000);
- a full sweep of the whole queue loaded with ``add`` (the first look after a load);
- the index's own worst case, which only such a queue can make: 10,000 tickets within 0.02 of
  each other, just past the edge of a newcomer's window, all in the one bin it must look into.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from services.matching.engine import Rules, SkillQueue, Ticket
from shared.catalog import Skill
from sim.arrivals import START, Settings, draw_profiles, percentile


def latency_at(skill: Skill, rules: Rules, *, waiting: int, arrivals: int, seed: int) -> dict[str, Any]:
    rng = random.Random(f"latency/{seed}")
    profiles = draw_profiles(skill, waiting + arrivals, Settings(), rng)
    now = START + timedelta(days=1)
    queue = SkillQueue(rules)
    counter = iter(range(10**9))

    def fresh(n: int) -> Ticket:
        profile = profiles[n % len(profiles)]
        waited = rng.uniform(0.0, 60.0)
        return Ticket(
            f"w{next(counter):07d}",
            f"{profile.learner_id}-{n}",  # every waiting ticket its own learner
            profile.level,
            now - timedelta(seconds=waited),
            profile.specialty,
            profile.format,
        )

    for n in range(waiting):
        queue.add(fresh(n), now)
    times: list[float] = []
    paired = 0
    for n in range(arrivals):
        profile = profiles[waiting + n]
        ticket = Ticket(f"a{n:07d}", f"new-{n}", profile.level, now, profile.specialty, profile.format)
        started = time.perf_counter()
        pair = queue.arrive(ticket, now)
        times.append(time.perf_counter() - started)
        if pair is None:
            queue.remove(ticket.ticket_id)
        else:
            paired += 1
            queue.add(fresh(n), now)
        if len(queue) != waiting:
            raise AssertionError(f"queue drifted to {len(queue)}")
    return {
        "waiting": waiting,
        "arrivals": arrivals,
        "paired_share": paired / arrivals,
        "p50_ms": 1000 * percentile(times, 50),
        "p99_ms": 1000 * percentile(times, 99),
        "max_ms": 1000 * max(times),
    }


def nobody_acceptable_ms(skill: Skill, rules: Rules, *, waiting: int, seed: int, tries: int = 200) -> float:
    rng = random.Random(f"scan/{seed}")
    profiles = draw_profiles(skill, waiting, Settings(), rng)
    now = START + timedelta(days=1)
    queue = SkillQueue(rules)
    for n, p in enumerate(profiles):
        level = 1.0 + (p.level - 1.0) / 3.0  # squeezed into 1..2
        queue.add(Ticket(f"w{n:06d}", f"w{n}", level, now, p.specialty, p.format), now)
    started = time.perf_counter()
    for n in range(tries):
        p = profiles[n]
        ticket = Ticket(f"x{n}", f"x{n}", 4.0, now, p.specialty, p.format)
        if queue.arrive(ticket, now) is not None:
            raise AssertionError("the worst case paired")
        queue.remove(ticket.ticket_id)
    return 1000 * (time.perf_counter() - started) / tries


def full_sweep_ms(skill: Skill, rules: Rules, *, waiting: int, seed: int) -> float:
    rng = random.Random(f"restart/{seed}")
    now = START + timedelta(days=1)
    queue = SkillQueue(rules)
    for n, p in enumerate(draw_profiles(skill, waiting, Settings(), rng)):
        at = now - timedelta(seconds=rng.uniform(0.0, 60.0))
        queue.add(Ticket(f"w{n:06d}", p.learner_id, p.level, at, p.specialty, p.format), now)
    started = time.perf_counter()
    queue.sweep(now, full=True)
    return 1000 * (time.perf_counter() - started)


def crowded_edge_ms(rules: Rules, *, waiting: int, seed: int, tries: int = 200) -> float:
    rng = random.Random(f"edge/{seed}")
    now = START + timedelta(days=1)
    queue = SkillQueue(rules)
    for n in range(waiting):
        at = now - timedelta(seconds=rng.uniform(0.0, 9.0))  # young: the narrowest window
        queue.add(Ticket(f"w{n:06d}", f"w{n}", rng.uniform(2.39, 2.41), at), now)
    reach = rules.expansions[0].max_gap
    started = time.perf_counter()
    for n in range(tries):
        ticket = Ticket(f"x{n}", f"x{n}", 2.39 - reach - 0.01, now)
        if queue.arrive(ticket, now) is not None:
            raise AssertionError("the edge case paired")
        queue.remove(ticket.ticket_id)
    return 1000 * (time.perf_counter() - started) / tries


def one_skill(skill: Skill, rules: Rules, *, waiting: int, seed: int) -> dict[str, Any]:
    return {
        **latency_at(skill, rules, waiting=waiting, arrivals=5_000, seed=seed),
        "nobody_acceptable_ms": nobody_acceptable_ms(skill, rules, waiting=waiting, seed=seed),
        "full_sweep_ms": full_sweep_ms(skill, rules, waiting=waiting, seed=seed),
        "crowded_edge_ms": crowded_edge_ms(rules, waiting=waiting, seed=seed),
    }
