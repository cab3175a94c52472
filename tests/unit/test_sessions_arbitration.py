"""Property tests of the sessions fold against the ticket log rule (``shared.ticket_log``).

Random per-skill streams (requests, decisions, cancellations, expiries, over a few tickets and
learners, in any order a log could hold them): the sessions scheduled are exactly the
MatchFound a plain reference reader of the rule finds effective; redeliveries and copies change
nothing; and skills (partitions) interleave in any order with the same result.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sessions.projection import SESSIONS, SessionsProjection
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    MatchCancelled,
    MatchedTicket,
    MatchExpired,
    MatchFound,
    MatchRequested,
    SessionScheduled,
)
from shared.projection.fold import Doc, DocRef, fold_events
from shared.ticket_log import WAITING, state_after, state_after_refusal, takes_effect, tickets_named
from tests.unit.test_sessions_projection import T0

LEARNERS = ("ann", "bob", "cat", "dan")
TICKETS = 6  # ticket i belongs to learner i % 4: ann and bob have two tickets each

Step = tuple[str, int, int]  # (kind, ticket, other ticket)
steps = st.one_of(
    st.tuples(st.sampled_from(["request", "cancel", "expire"]), st.integers(0, TICKETS - 1), st.just(0)),
    st.tuples(st.just("found"), st.integers(0, TICKETS - 1), st.integers(0, TICKETS - 1)),
)


def stream(plan: list[Step], skill: str = "machine-learning") -> list[CloudEvent]:
    """The events of one skill's partition; every decision has its own match id."""

    def ticket(i: int) -> tuple[str, str]:
        return f"{skill}-t{i}", LEARNERS[i % len(LEARNERS)]

    events = []
    for n, (kind, i, j) in enumerate(plan):
        tid, learner = ticket(i)
        payload: MatchRequested | MatchFound | MatchCancelled | MatchExpired
        if kind == "request":
            payload = MatchRequested(
                ticket_id=tid, learner_id=learner, skill=skill, level=2.0, requested_at=T0
            )
        elif kind == "cancel":
            payload = MatchCancelled(ticket_id=tid, learner_id=learner, skill=skill, reason="r")
        elif kind == "expire":
            payload = MatchExpired(ticket_id=tid, learner_id=learner, skill=skill)
        else:
            other, partner = ticket(j)
            payload = MatchFound(
                match_id=f"{skill}-m{n}",
                skill=skill,
                tickets=(
                    MatchedTicket(ticket_id=tid, learner_id=learner, level=2.0),
                    MatchedTicket(ticket_id=other, learner_id=partner, level=2.0),
                ),
                level_gap=0.0,
                waited_ms=0,
            )
        events.append(new_event(payload, source="matching", time=T0))
    return events


def reference(events: Iterable[CloudEvent]) -> tuple[list[bool], list[str], dict[str, str]]:
    """A plain reader of the rule: each event's verdict, the matches that took effect, the tickets."""
    states: dict[str, str] = {}
    waiting: dict[tuple[str, str], str] = {}
    verdicts, matches = [], []
    for event in events:
        data = event.data
        assert isinstance(data, MatchRequested | MatchFound | MatchCancelled | MatchExpired)
        named = tickets_named(data)
        has_open = isinstance(data, MatchRequested) and (data.learner_id, data.skill) in waiting
        effective = takes_effect(data, {t: states.get(t) for t in named}, learner_has_open_ticket=has_open)
        verdicts.append(effective)
        if not effective:
            refused = state_after_refusal(data, {t: states.get(t) for t in named})
            if refused is not None:
                states[named[0]] = refused
            continue
        owners = (
            [(t.ticket_id, t.learner_id) for t in data.tickets]
            if isinstance(data, MatchFound)
            else [(data.ticket_id, data.learner_id)]
        )
        for tid, learner in owners:
            states[tid] = state_after(data)
            if states[tid] == WAITING:
                waiting[(learner, data.skill)] = tid
            else:
                waiting.pop((learner, data.skill), None)
        if isinstance(data, MatchFound):
            matches.append(data.match_id)
    return verdicts, matches, states


def fold(events: list[CloudEvent]) -> tuple[dict[DocRef, Doc], list[str]]:
    docs, emitted = fold_events(SessionsProjection(), events)
    ids = []
    for e in emitted:
        assert isinstance(e, SessionScheduled)
        ids.append(e.session_id)
    return docs, ids


def copy_of(event: CloudEvent, rnd: random.Random) -> CloudEvent:
    """The same record again (a redelivery), or a second copy under a new event id (a producer retry)."""
    return event if rnd.random() < 0.5 else event.model_copy(update={"id": f"{event.id}-copy{rnd.random()}"})


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, max_size=30))
def test_the_fold_schedules_exactly_the_matches_the_rule_finds_effective(plan: list[Step]) -> None:
    events = stream(plan)
    _, matches, states = reference(events)
    docs, scheduled = fold(events)
    assert scheduled == matches
    assert {key for (collection, key) in docs if collection == SESSIONS} == set(matches)
    assert {key: doc["state"] for (collection, key), doc in docs.items() if collection == "tickets"} == states
    # a learner waits in the skill exactly while one of their tickets is waiting
    waiting = {doc["ticket_id"] for (collection, _), doc in docs.items() if collection == "open_tickets"}
    assert waiting == {t for t, state in states.items() if state == WAITING}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(steps, max_size=30), st.lists(st.integers(0, 2), max_size=30), st.randoms(use_true_random=False)
)
def test_redeliveries_give_the_same_documents_and_sessions(
    plan: list[Step], extra: list[int], rnd: random.Random
) -> None:
    """Each event delivered again right after itself, as the same record or a second copy."""
    events = stream(plan)
    delivered = []
    for n, event in enumerate(events):
        delivered.append(event)
        delivered += [copy_of(event, rnd) for _ in range(extra[n] if n < len(extra) else 0)]
    assert fold(delivered) == fold(events)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, max_size=30), st.randoms(use_true_random=False))
def test_a_late_copy_of_a_settled_event_changes_nothing(plan: list[Step], rnd: random.Random) -> None:
    """A copy anywhere later (a producer retry lands anywhere after its original) of an event the
    log has settled for good: one that took effect, a refused request, or one naming a ticket that
    was already closed (a losing decision, a late cancellation). Only an event naming a ticket
    not yet requested can still change verdict, and no matcher names a ticket before its request."""
    events = stream(plan)
    settled = []
    for n, event in enumerate(events):
        _, _, before = reference(events[:n])
        _, _, after = reference(events[: n + 1])
        named = tickets_named(event.data)
        closed = any(before.get(t) not in (None, WAITING) for t in named)
        same = len(set(named)) < len(named)
        settled.append(after != before or closed or same)
    delivered = list(events)
    for n in [n for n, ok in enumerate(settled) if ok]:
        if rnd.random() < 0.5:
            at = rnd.randint(delivered.index(events[n]) + 1, len(delivered))
            delivered.insert(at, copy_of(events[n], rnd))
    assert fold(delivered) == fold(events)


@settings(max_examples=200, deadline=None)
@given(st.lists(steps, max_size=20), st.lists(steps, max_size=20), st.randoms(use_true_random=False))
def test_skills_interleave_in_any_order_with_the_same_result(
    first: list[Step], second: list[Step], rnd: random.Random
) -> None:
    """Two skills are two partitions: any merge that keeps each skill's order gives the same state."""
    ml, stats = stream(first, "machine-learning"), stream(second, "statistics")
    merged, a, b = [], list(ml), list(stats)
    while a or b:
        merged.append((a if a and (not b or rnd.random() < 0.5) else b).pop(0))
    docs, scheduled = fold(merged)
    expected, in_order = fold(ml + stats)
    assert docs == expected and sorted(scheduled) == sorted(in_order)


def test_a_late_copy_of_a_refused_request_stays_void() -> None:
    """ann asked twice; the second ticket was refused (she waited) and is closed, so its copy,
    landing after her first ticket was cancelled, does not open it."""
    events = stream([("request", 0, 0), ("request", 4, 0), ("cancel", 0, 0)])
    docs, _ = fold([*events, events[1].model_copy(update={"id": "retry"})])
    assert docs == fold(events)[0]
    assert docs[("tickets", "machine-learning-t4")]["state"] == "cancelled"
    assert not [ref for ref in docs if ref[0] == "open_tickets"]
