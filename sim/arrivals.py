"""Seeded ticket arrivals for the matching benchmark: a population, Poisson requests, sessions.

A closed loop, run on a simulated clock (nothing sleeps):

- each learner has, per skill, a level ``1 + 3 * Beta(2, 2)`` (the distribution of
  ``1 + 3 * sci / 100`` for the sim population's true skill), and keeps for the whole run an
  optional specialty preference (the skill's first specialties more popular) and format;
- requests arrive as a Poisson process (``rate_per_s`` over all skills); each picks a skill
  at random (``skill_weights``) and, in it, a learner who is free there: not waiting and not
  in a session of that skill (so nobody has two open tickets in a skill); with nobody free the
  request is dropped and counted;
- a matched learner is in a session of the skill for ``U(session_min_s, session_max_s)`` and
  free again afterwards, so the same learners come back and repeat partners can happen; an
  expired ticket frees its learner at once;
- the matcher is called with the simulated ``now`` at each arrival and swept every
  ``sweep_every_s``.

The arrival times, skills and draws are the same for every matcher given the seed; which
learner a draw picks depends on who is free, hence on the matcher's earlier decisions (as in
real traffic). Wall-clock time spent inside the matcher is measured for the benchmark.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.matching.engine import Pair, Rules, SkillQueue, Ticket
from shared.catalog import Skill

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Settings:
    learners: int = 2_000
    rate_per_s: float = 2.0
    hours: float = 2.0
    skill_weights: tuple[float, ...] = ()  # empty: every skill alike
    specialty_share: float = 0.7  # learners who name a specialty (per skill)
    format_share: float = 0.6  # learners who name a format (per skill)
    session_min_s: float = 20 * 60.0
    session_max_s: float = 60 * 60.0
    sweep_every_s: float = 1.0
    recent_partners: int = 3  # the window the repeat-partner rate is counted in


@dataclass(frozen=True)
class Profile:
    """A learner in one skill: what each of their tickets there carries."""

    learner_id: str
    level: float
    specialty: str | None
    format: str | None


def draw_profiles(skill: Skill, learners: int, settings: Settings, rng: random.Random) -> list[Profile]:
    specialties = [s.id for s in skill.specialties]
    weights = [1.0 / (k + 1) for k in range(len(specialties))]  # a few specialties are popular
    formats = [f.id for f in skill.formats]
    profiles: list[Profile] = []
    for n in range(learners):
        level = 1.0 + 3.0 * rng.betavariate(2.0, 2.0)
        specialty = rng.choices(specialties, weights)[0] if rng.random() < settings.specialty_share else None
        fmt = rng.choice(formats) if rng.random() < settings.format_share else None
        profiles.append(Profile(f"L{n:05d}", level, specialty, fmt))
    return profiles


def draw_population(skills: Sequence[Skill], settings: Settings, seed: int) -> dict[str, list[Profile]]:
    """Per skill id, one profile per learner (learner ``n`` is the same person in every skill)."""
    rng = random.Random(f"population/{seed}")
    return {skill.id: draw_profiles(skill, settings.learners, settings, rng) for skill in skills}


class Matcher(Protocol):
    def arrive(self, skill: str, ticket: Ticket, now: datetime) -> Pair | None: ...

    def sweep(self, now: datetime) -> tuple[list[Pair], list[Ticket]]: ...


class EngineMatcher:
    """Ours: one ``SkillQueue`` per skill."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self.queues: dict[str, SkillQueue] = {}

    def arrive(self, skill: str, ticket: Ticket, now: datetime) -> Pair | None:
        queue = self.queues.get(skill)
        if queue is None:
            queue = self.queues[skill] = SkillQueue(self.rules)
        return queue.arrive(ticket, now)

    def sweep(self, now: datetime) -> tuple[list[Pair], list[Ticket]]:
        pairs: list[Pair] = []
        expired: list[Ticket] = []
        for queue in self.queues.values():
            found, gone = queue.sweep(now)
            pairs.extend(found)
            expired.extend(gone)
        return pairs, expired

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())


class FifoMatcher:
    """The baseline: the two oldest waiting tickets of a skill pair as soon as there are two
    (never one learner with themself); no level, preference or recent-partner rule, no expiry."""

    def __init__(self) -> None:
        self.queues: dict[str, list[Ticket]] = {}

    def arrive(self, skill: str, ticket: Ticket, now: datetime) -> Pair | None:
        queue = self.queues.setdefault(skill, [])
        for index, waiting in enumerate(queue):
            if waiting.learner_id != ticket.learner_id:
                del queue[index]
                return Pair(older=waiting, newer=ticket)
        queue.append(ticket)
        return None

    def sweep(self, now: datetime) -> tuple[list[Pair], list[Ticket]]:
        return [], []

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())


@dataclass(frozen=True)
class PairRecord:
    skill: str
    gap: float
    waits: tuple[float, float]  # seconds from request to pair, the older ticket first
    repeat_recent: bool  # partners in the skill within either one's last ``recent_partners``
    repeat_ever: bool  # partners in the skill before, at any time in the run


@dataclass
class Outcome:
    pairs: list[PairRecord] = field(default_factory=list)
    requested: int = 0
    dropped: int = 0  # arrivals that found nobody free in the chosen skill
    expired: int = 0
    left_waiting: int = 0
    arrive_s: list[float] = field(default_factory=list)  # wall seconds of each arrive call
    sweep_s: float = 0.0
    sweeps: int = 0


class _Pool:
    """The free learners of one skill (indices), with O(1) random pick and return."""

    def __init__(self, size: int) -> None:
        self.items = list(range(size))
        self.where = {item: n for n, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def take(self, u: float) -> int:
        index = min(int(u * len(self.items)), len(self.items) - 1)
        item, last = self.items[index], self.items[-1]
        self.items[index], self.where[last] = last, index
        self.items.pop()
        del self.where[item]
        return item

    def give(self, item: int) -> None:
        if item not in self.where:
            self.where[item] = len(self.items)
            self.items.append(item)


def _met(history: dict[str, list[str]], a: str, b: str, recent: int) -> tuple[bool, bool]:
    past_a, past_b = history.setdefault(a, []), history.setdefault(b, [])
    ever = b in past_a
    within = recent > 0 and (b in past_a[-recent:] or a in past_b[-recent:])
    past_a.append(b)
    past_b.append(a)
    return within, ever


def simulate(
    matcher: Matcher, population: Mapping[str, list[Profile]], settings: Settings, seed: int
) -> Outcome:
    """Feed the seeded arrivals to ``matcher`` for ``settings.hours`` of simulated time."""
    skills = list(population)
    weights = list(settings.skill_weights) or [1.0] * len(skills)
    arrivals = random.Random(f"arrivals/{seed}")  # times, skills, picks: the same for every matcher
    lengths = random.Random(f"sessions/{seed}")
    free = {skill: _Pool(len(profiles)) for skill, profiles in population.items()}
    index = {skill: {p.learner_id: n for n, p in enumerate(ps)} for skill, ps in population.items()}
    open_tickets: dict[str, tuple[str, int]] = {}  # ticket id -> (skill, learner index)
    ends: list[tuple[float, int, str, int]] = []  # (simulated s, seq, skill, learner index)
    history: dict[str, dict[str, list[str]]] = {skill: {} for skill in skills}
    out = Outcome()
    end_s = settings.hours * 3600.0
    next_arrival = arrivals.expovariate(settings.rate_per_s)
    next_sweep = settings.sweep_every_s
    seq = 0

    def settle(pairs: Iterable[Pair], expired: Iterable[Ticket], at: float, now: datetime) -> None:
        nonlocal seq
        for pair in pairs:
            (skill, a), (other, b) = (
                open_tickets.pop(pair.older.ticket_id),
                open_tickets.pop(pair.newer.ticket_id),
            )
            if skill != other or a == b:
                raise AssertionError(f"a pair across skills or with oneself: {pair}")
            within, ever = _met(
                history[skill], pair.older.learner_id, pair.newer.learner_id, settings.recent_partners
            )
            waits = (
                (now - pair.older.requested_at).total_seconds(),
                (now - pair.newer.requested_at).total_seconds(),
            )
            out.pairs.append(PairRecord(skill, pair.gap, waits, within, ever))
            for learner in (a, b):
                seq += 1
                length = lengths.uniform(settings.session_min_s, settings.session_max_s)
                heapq.heappush(ends, (at + length, seq, skill, learner))
        for ticket in expired:
            skill, learner = open_tickets.pop(ticket.ticket_id)
            free[skill].give(learner)
            out.expired += 1

    while min(next_arrival, next_sweep) <= end_s:
        if next_sweep <= next_arrival:
            now = START + timedelta(seconds=next_sweep)
            started = time.perf_counter()
            pairs, expired = matcher.sweep(now)
            out.sweep_s += time.perf_counter() - started
            out.sweeps += 1
            settle(pairs, expired, next_sweep, now)
            next_sweep += settings.sweep_every_s
            continue
        at = next_arrival
        next_arrival += arrivals.expovariate(settings.rate_per_s)
        skill = arrivals.choices(skills, weights)[0]
        u = arrivals.random()
        while ends and ends[0][0] <= at:
            _, _, done_skill, learner = heapq.heappop(ends)
            free[done_skill].give(learner)
        if not free[skill]:
            out.dropped += 1
            continue
        profile = population[skill][free[skill].take(u)]
        now = START + timedelta(seconds=at)
        ticket_id = f"{skill}/{out.requested:07d}"
        ticket = Ticket(ticket_id, profile.learner_id, profile.level, now, profile.specialty, profile.format)
        open_tickets[ticket_id] = (skill, index[skill][profile.learner_id])
        out.requested += 1
        started = time.perf_counter()
        pair = matcher.arrive(skill, ticket, now)
        out.arrive_s.append(time.perf_counter() - started)
        if pair is not None:
            settle([pair], [], at, now)
    out.left_waiting = len(open_tickets)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
