"""The sessions fold: MatchFound schedules a session exactly once; other events are ignored."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
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
from shared.projection.fold import fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def found(match_id: str, a: str = "ann", b: str = "bob") -> CloudEvent:
    payload = MatchFound(
        match_id=match_id,
        skill="machine-learning",
        specialty="tabular",
        format="evaluate",
        tickets=(
            MatchedTicket(ticket_id=f"{match_id}-a", learner_id=a, level=2.0),
            MatchedTicket(ticket_id=f"{match_id}-b", learner_id=b, level=2.5),
        ),
        level_gap=0.5,
        waited_ms=10,
    )
    return new_event(payload, source="matching", time=T0)


def test_match_found_schedules_a_session_and_emits_session_scheduled() -> None:
    event = found("m-1")
    docs, emitted = fold_events(SessionsProjection(), [event])
    doc = docs[(SESSIONS, "m-1")]
    assert doc["session_id"] == "m-1" and doc["status"] == "scheduled"
    assert doc["participants"] == ["ann", "bob"]
    assert (doc["skill"], doc["specialty"], doc["format"]) == ("machine-learning", "tabular", "evaluate")
    assert doc["scheduled_at"] == T0.isoformat()
    assert doc["correlation_id"] == event.correlationid
    assert emitted == [
        SessionScheduled(
            session_id="m-1",
            match_id="m-1",
            skill="machine-learning",
            specialty="tabular",
            format="evaluate",
            participants=("ann", "bob"),
        )
    ]


def test_a_redelivered_match_found_changes_nothing() -> None:
    event = found("m-1")
    docs, _ = fold_events(SessionsProjection(), [event])
    again, more = fold_events(SessionsProjection(), [event], docs)
    assert again == docs and more == []


def test_a_later_copy_does_not_overwrite_a_session_that_moved_on() -> None:
    docs, _ = fold_events(SessionsProjection(), [found("m-1")])
    moved = {(SESSIONS, "m-1"): {**docs[(SESSIONS, "m-1")], "status": "started"}}
    copy = found("m-1")  # a second copy with its own event id
    again, emitted = fold_events(SessionsProjection(), [copy], moved)
    assert again == moved and emitted == []


def test_other_matching_events_are_ignored() -> None:
    projection = SessionsProjection()
    others = [
        new_event(
            MatchRequested(
                ticket_id="t", learner_id="ann", skill="machine-learning", level=2.0, requested_at=T0
            ),
            source="matching",
        ),
        new_event(
            MatchCancelled(ticket_id="t", learner_id="ann", skill="machine-learning", reason="bored"),
            source="matching",
        ),
        new_event(MatchExpired(ticket_id="t", learner_id="ann", skill="machine-learning"), source="matching"),
    ]
    for event in others:
        assert list(projection.refs(event)) == []
    assert fold_events(projection, others) == ({}, [])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["m-1", "m-2", "m-3", "m-4"]), min_size=1, max_size=20),
    st.randoms(use_true_random=False),
)
def test_any_order_with_duplicates_gives_one_session_per_match(ids: list[str], rnd: random.Random) -> None:
    events = {mid: found(mid) for mid in ids}
    unique = [events[mid] for mid in dict.fromkeys(ids)]
    delivered = [events[mid] for mid in ids]
    rnd.shuffle(delivered)
    expected, _ = fold_events(SessionsProjection(), unique)
    docs, emitted = fold_events(SessionsProjection(), delivered)
    assert docs == expected
    assert sorted(e.session_id for e in emitted) == sorted(set(ids))  # type: ignore[attr-defined]


def test_event_time_not_wall_clock_sets_scheduled_at() -> None:
    late = found("m-9").model_copy(update={"time": T0 + timedelta(days=3)})
    docs, _ = fold_events(SessionsProjection(), [late])
    assert docs[(SESSIONS, "m-9")]["scheduled_at"] == (T0 + timedelta(days=3)).isoformat()


def test_a_self_pairing_match_is_refused_so_the_runtime_dead_letters_it() -> None:
    with pytest.raises(ValueError, match="itself"):
        fold_events(SessionsProjection(), [found("m-5", "ann", "ann")])
