"""The pairing engine (pure): the widening window, the preferences, recent partners, expiry, sweeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.engine import Expansion, Rules, SkillQueue, Ticket

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
RULES = Rules(
    expansions=(Expansion(0, 0.25), Expansion(10, 0.5), Expansion(30, 1.0), Expansion(60, 3.0)),
    recent_partners=3,
    ttl_s=600,
)


def ticket(
    n: int | str,
    level: float,
    *,
    at: float = 0.0,
    learner: str | None = None,
    specialty: str | None = None,
    fmt: str | None = None,
) -> Ticket:
    return Ticket(
        ticket_id=f"t{n}",
        learner_id=learner or f"l{n}",
        level=level,
        requested_at=T0 + timedelta(seconds=at),
        specialty=specialty,
        format=fmt,
    )


def now(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_window_widens_in_steps() -> None:
    assert [RULES.window(s) for s in (0, 9.9, 10, 29, 30, 60, 10_000)] == [
        0.25,
        0.25,
        0.5,
        0.5,
        1.0,
        3.0,
        3.0,
    ]
    with pytest.raises(ValueError):
        Rules(expansions=(Expansion(5, 0.25),))
    with pytest.raises(ValueError):
        Rules(expansions=(Expansion(0, 1.0), Expansion(10, 0.5)))


def test_a_close_arrival_pairs_at_once_and_a_far_one_waits() -> None:
    q = SkillQueue(RULES)
    assert q.arrive(ticket(1, 2.0), now(0)) is None
    assert q.arrive(ticket(2, 3.0), now(1)) is None  # gap 1.0 > 0.25: both wait
    pair = q.arrive(ticket(3, 2.2), now(2))
    assert pair is not None and (pair.older.ticket_id, pair.newer.ticket_id) == ("t1", "t3")
    assert len(q) == 1 and "t2" in q


def test_waiting_widens_the_window_without_new_arrivals() -> None:
    q = SkillQueue(RULES)
    q.arrive(ticket(1, 2.0), now(0))
    q.arrive(ticket(2, 2.9), now(0))
    assert q.sweep(now(20)) == ([], [])  # window 0.5 < 0.9
    pairs, expired = q.sweep(now(30))  # window 1.0: acceptable now
    assert [(p.older.ticket_id, p.newer.ticket_id) for p in pairs] == [("t1", "t2")] and expired == []


def test_the_longer_waiting_tickets_window_decides() -> None:
    q = SkillQueue(RULES)
    q.arrive(ticket(1, 1.0), now(0))
    q.sweep(now(60))  # t1 alone: window 3.0 now
    pair = q.arrive(ticket(2, 3.5, at=60), now(60))  # the newcomer's own window is 0.25
    assert pair is not None and pair.older.ticket_id == "t1"


def test_preference_same_specialty_then_format_then_longest_waiting() -> None:
    q = SkillQueue(RULES)
    for n, (spec, fmt, at) in enumerate(
        [("nlp", "pair", 0), ("cv", "build", 1), ("cv", "pair", 2), ("nlp", "build", 3), ("nlp", "build", 4)]
    ):
        q.add(ticket(n, 2.0, at=at, specialty=spec, fmt=fmt), now(at))
    best = q.best_partner(ticket("x", 2.0, at=5, specialty="nlp", fmt="build"), now(5))
    assert best is not None and best.ticket_id == "t3"  # same specialty and format, longest waiting
    q.remove("t3")
    q.remove("t4")
    best = q.best_partner(ticket("x", 2.0, at=5, specialty="nlp", fmt="build"), now(5))
    assert best is not None and best.ticket_id == "t0"  # same specialty
    q.remove("t0")
    best = q.best_partner(ticket("x", 2.0, at=5, specialty="nlp", fmt="build"), now(5))
    assert best is not None and best.ticket_id == "t1"  # same format
    q.remove("t1")
    best = q.best_partner(ticket("x", 2.0, at=5, specialty="nlp", fmt="build"), now(5))
    assert best is not None and best.ticket_id == "t2"  # anyone acceptable


def test_a_preferred_candidate_must_still_be_inside_the_window() -> None:
    q = SkillQueue(RULES)
    q.add(ticket(1, 3.5, specialty="nlp"), now(0))
    q.add(ticket(2, 2.1, specialty="cv"), now(0))
    best = q.best_partner(ticket("x", 2.0, specialty="nlp"), now(1))
    assert best is not None and best.ticket_id == "t2"


def test_never_oneself_nor_a_recent_partner() -> None:
    q = SkillQueue(RULES, recent={"ann": ["bob"]})
    q.arrive(ticket(1, 2.0, learner="ann"), now(0))
    assert q.arrive(ticket(2, 2.0, learner="ann"), now(1)) is None  # the same learner: never
    assert q.arrive(ticket(3, 2.0, learner="bob"), now(2)) is None  # ann's recent partner
    pair = q.arrive(ticket(4, 2.0, learner="cy"), now(3))
    assert pair is not None and {pair.older.learner_id, pair.newer.learner_id} == {"ann", "cy"}
    assert q.recent("cy") == ("ann",) and q.recent("ann") == ("bob", "cy")


def test_only_the_last_n_partners_are_avoided() -> None:
    q = SkillQueue(RULES, recent={"ann": ["p1", "p2", "p3", "p4"]})
    assert q.recent("ann") == ("p2", "p3", "p4")
    q.add(ticket(1, 2.0, learner="p1"), now(0))
    pair = q.arrive(ticket(2, 2.0, learner="ann"), now(0))
    assert pair is not None


def test_tickets_expire_after_their_time_to_live() -> None:
    q = SkillQueue(RULES, recent={"a": ["b"]})
    q.arrive(ticket(1, 1.0, learner="a"), now(0))
    q.arrive(ticket(2, 1.0, learner="b", at=100), now(100))
    pairs, expired = q.sweep(now(600))
    assert pairs == [] and [t.ticket_id for t in expired] == ["t1"] and len(q) == 1


def test_a_requeued_ticket_keeps_its_place() -> None:
    q = SkillQueue(RULES)
    q.add(ticket("new", 2.0, at=50), now(50))
    q.add(ticket("back", 2.0, at=0), now(60))  # put back with its original time
    assert [t.ticket_id for t in q.waiting()] == ["tback", "tnew"]
    best = q.best_partner(ticket("x", 2.0, at=61), now(61))
    assert best is not None and best.ticket_id == "tback"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9), st.floats(1.0, 4.0), st.integers(0, 300), st.sampled_from([None, "nlp"])
        ),
        max_size=40,
    )
)
def test_no_ticket_twice_no_self_pair_and_every_pair_inside_a_window(
    arrivals: list[tuple[int, float, int, str | None]],
) -> None:
    q = SkillQueue(RULES)
    seen: set[str] = set()
    clock = 0
    for n, (learner, level, delay, specialty) in enumerate(arrivals):
        clock += delay
        t = ticket(n, level, at=clock, learner=f"l{learner}", specialty=specialty)
        pairs = [p for p in [q.arrive(t, now(clock))] if p is not None]
        swept, expired = q.sweep(now(clock))
        for pair in [*pairs, *swept]:
            ids = {pair.older.ticket_id, pair.newer.ticket_id}
            assert not ids & seen and len(ids) == 2
            seen |= ids
            assert pair.older.learner_id != pair.newer.learner_id
            waited = (now(clock) - pair.older.requested_at).total_seconds()
            assert pair.gap <= RULES.window(waited) + 1e-9
        for gone in expired:
            assert gone.ticket_id not in seen
            seen.add(gone.ticket_id)
    assert not seen & set(q.tickets)


def brute_force(q: SkillQueue, t: Ticket, at: datetime) -> Ticket | None:
    """The rule read literally: every waiting ticket looked at (what the level bins must equal)."""
    own = RULES.window((at - t.requested_at).total_seconds())
    classes: list[list[Ticket]] = [[], [], [], []]
    for c in q.tickets.values():
        if c.learner_id == t.learner_id or c.learner_id in q.recent(t.learner_id):
            continue
        if t.learner_id in q.recent(c.learner_id):
            continue
        window = max(own, RULES.window((at - c.requested_at).total_seconds()))
        if abs(c.level - t.level) <= window + 1e-9:
            classes[2 * (c.specialty != t.specialty) + (c.format != t.format)].append(c)
    for found in classes:
        if found:
            return min(found, key=lambda c: (c.requested_at, abs(c.level - t.level), c.ticket_id))
    return None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.floats(0.5, 4.5),
            st.sampled_from([None, "nlp", "cv"]),
            st.sampled_from([None, "build"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.floats(0.5, 4.5),
    st.integers(0, 200),
)
def test_the_level_bins_find_what_a_scan_of_every_ticket_finds(
    waiting: list[tuple[int, float, str | None, str | None]], level: float, at: int
) -> None:
    q = SkillQueue(RULES, recent={"l1": ["l2"], "l3": ["new"]})
    for n, (learner, lvl, spec, fmt) in enumerate(waiting):
        q.add(ticket(n, lvl, at=-n * 3.7, learner=f"l{learner}", specialty=spec, fmt=fmt), now(0))
    newcomer = ticket("x", level, at=at, learner="new", specialty="nlp", fmt="build")
    assert q.best_partner(newcomer, now(at)) == brute_force(q, newcomer, now(at))
    q.relevel("t0", 4.4 - waiting[0][1] / 2)
    assert q.best_partner(newcomer, now(at)) == brute_force(q, newcomer, now(at))
