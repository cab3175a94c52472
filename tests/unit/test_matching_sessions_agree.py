"""The two readers of the ticket log rule agree: matching's queue and sessions' schedule.

Random logs of one skill (requests, decisions that may conflict, cancels, expiries and late
copies of any of them) are folded by both services' projections: every ticket ends in the same
state in both, and sessions schedules exactly the matches the matching queue took.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import TICKETS, match_found
from services.matching.projection import MatchingProjection
from services.sessions.projection import SESSIONS, SessionsProjection
from services.sessions.projection import TICKETS as SESSION_TICKETS
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchCancelled, MatchExpired, MatchRequested, Payload
from shared.projection import fold_events

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ML = "machine-learning"


def ev(payload: Payload, seconds: float) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(seconds=seconds))


@st.composite
def logs(draw: st.DrawFn) -> list[CloudEvent]:
    learners = ["ann", "bob", "cy", "dee", "eve"]
    events: list[CloudEvent] = []
    tickets: dict[str, str] = {}
    for i in range(draw(st.integers(2, 9))):
        learner = draw(st.sampled_from(learners))
        tickets[f"t{i}"] = learner
        events.append(
            ev(MatchRequested(ticket_id=f"t{i}", learner_id=learner, skill=ML, level=2.0, requested_at=T0), i)
        )
    ids = sorted(tickets)
    docs = {
        t: {
            "ticket_id": t,
            "learner_id": tickets[t],
            "skill": ML,
            "level": 2.0,
            "requested_at": "2026-11-26T09:00:00.000000Z",
        }
        for t in ids
    }
    for n in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["match", "cancel", "expire", "copy"]))
        a = draw(st.sampled_from(ids))
        if kind == "match":
            b = draw(st.sampled_from(ids))
            if a != b and tickets[a] != tickets[b]:
                events.append(ev(match_found(docs[a], docs[b], now=T0 + timedelta(seconds=30)), 30 + n))
        elif kind == "cancel":
            events.append(
                ev(MatchCancelled(ticket_id=a, learner_id=tickets[a], skill=ML, reason="x"), 30 + n)
            )
        elif kind == "expire":
            events.append(ev(MatchExpired(ticket_id=a, learner_id=tickets[a], skill=ML), 30 + n))
        elif events:
            events.append(draw(st.sampled_from(events)))  # a late copy (a producer retry)
    return events


@settings(max_examples=150, deadline=None)
@given(logs())
def test_matching_and_sessions_reach_the_same_verdicts(events: list[CloudEvent]) -> None:
    queue, _ = fold_events(MatchingProjection(), events)
    schedule, _ = fold_events(SessionsProjection(), events)
    matching_states = {key: doc["status"] for (c, key), doc in queue.items() if c == TICKETS}
    sessions_states = {key: doc["state"] for (c, key), doc in schedule.items() if c == SESSION_TICKETS}
    assert matching_states == sessions_states
    matched = {
        doc["match_id"] for (c, _), doc in queue.items() if c == TICKETS and doc["status"] == "matched"
    }
    assert matched == {key for (c, key) in schedule if c == SESSIONS}
