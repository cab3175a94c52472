"""The matching benchmark's closed-loop arrivals (sim/arrivals.py) and its FIFO baseline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.matching.engine import Expansion, Pair, Rules, Ticket
from shared.catalog import get_catalog
from sim.arrivals import (
    START,
    EngineMatcher,
    FifoMatcher,
    Matcher,
    Settings,
    draw_population,
    percentile,
    simulate,
)

SMALL = Settings(learners=60, rate_per_s=1.0, hours=0.25, session_min_s=60.0, session_max_s=180.0)


class Watching:
    """Wraps a matcher and checks that no learner ever has two open tickets in a skill."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.open: dict[str, tuple[str, str]] = {}  # ticket id -> (skill, learner)

    def arrive(self, skill: str, ticket: Ticket, now: datetime) -> Pair | None:
        assert (skill, ticket.learner_id) not in self.open.values()
        self.open[ticket.ticket_id] = (skill, ticket.learner_id)
        pair = self.inner.arrive(skill, ticket, now)
        self._close([pair] if pair else [], [])
        return pair

    def sweep(self, now: datetime) -> tuple[list[Pair], list[Ticket]]:
        pairs, expired = self.inner.sweep(now)
        self._close(pairs, expired)
        return pairs, expired

    def _close(self, pairs: list[Pair], expired: list[Ticket]) -> None:
        for ticket in [t for p in pairs for t in (p.older, p.newer)] + expired:
            del self.open[ticket.ticket_id]  # a KeyError would be a ticket closed twice


def t(n: int, learner: str, at: int = 0) -> Ticket:
    return Ticket(f"t{n}", learner, 2.0, START + timedelta(seconds=at))


def test_fifo_pairs_the_two_oldest_but_never_a_learner_with_themself() -> None:
    fifo = FifoMatcher()
    assert fifo.arrive("s", t(1, "ann"), START) is None
    assert fifo.arrive("s", t(2, "ann"), START) is None
    pair = fifo.arrive("s", t(3, "bob"), START)
    assert pair is not None and (pair.older.ticket_id, pair.newer.ticket_id) == ("t1", "t3")
    assert fifo.arrive("other", t(4, "cy"), START) is None  # skills apart
    assert fifo.waiting() == 2 and fifo.sweep(START) == ([], [])


@pytest.mark.parametrize(
    "matcher", [FifoMatcher, lambda: EngineMatcher(Rules(expansions=(Expansion(0, 0.3), Expansion(20, 3.0))))]
)
def test_every_ticket_is_accounted_for_and_nobody_waits_twice_in_a_skill(
    matcher: Callable[[], Matcher],
) -> None:
    population = draw_population(get_catalog().skills, SMALL, seed=3)
    out = simulate(Watching(matcher()), population, SMALL, seed=3)
    assert out.requested > 500
    assert out.requested == 2 * len(out.pairs) + out.expired + out.left_waiting
    assert len(out.arrive_s) == out.requested and out.sweeps == int(SMALL.hours * 3600)
    assert all(0 <= p.gap <= 3 and min(p.waits) >= 0 for p in out.pairs)


def test_the_same_seed_gives_the_same_arrivals_for_every_matcher() -> None:
    population = draw_population(get_catalog().skills, SMALL, seed=5)
    fifo = simulate(FifoMatcher(), population, SMALL, seed=5)
    ours = simulate(EngineMatcher(), population, SMALL, seed=5)
    again = simulate(EngineMatcher(), draw_population(get_catalog().skills, SMALL, seed=5), SMALL, seed=5)
    assert fifo.requested + fifo.dropped == ours.requested + ours.dropped  # the same arrival times
    assert [(p.gap, p.waits) for p in ours.pairs] == [(p.gap, p.waits) for p in again.pairs]


def test_repeat_partners_are_counted_and_ours_avoids_the_recent_ones() -> None:
    crowded = Settings(learners=30, rate_per_s=1.0, hours=0.5, session_min_s=30.0, session_max_s=60.0)
    population = draw_population(get_catalog().skills, crowded, seed=1)
    fifo = simulate(FifoMatcher(), population, crowded, seed=1)
    ours = simulate(EngineMatcher(), population, crowded, seed=1)
    assert any(p.repeat_recent for p in fifo.pairs)
    assert not any(p.repeat_recent for p in ours.pairs)
    assert any(p.repeat_ever for p in ours.pairs)


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0], 100) == 2.0 and percentile([5.0], 95) == 5.0
    assert percentile([], 50) != percentile([], 50)  # NaN
