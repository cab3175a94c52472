"""The sessions fold: a MatchFound that takes effect (``shared.ticket_log``) schedules its session
exactly once; a void one changes nothing; requests, cancellations and expiries move tickets only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.sessions.projection import OPEN_TICKETS, SESSIONS, TICKETS, SessionsProjection
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    MatchCancelled,
    MatchedTicket,
    MatchExpired,
    MatchFound,
    MatchRequested,
    SessionScheduled,
    SkillClaimed,
)
from shared.projection.fold import Doc, DocRef, fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SKILL = "machine-learning"


def requested(ticket: str, learner: str, requeue_of: str | None = None) -> CloudEvent:
    payload = MatchRequested(
        ticket_id=ticket, learner_id=learner, skill=SKILL, level=2.0, requested_at=T0, requeue_of=requeue_of
    )
    return new_event(payload, source="matching", time=T0)


def cancelled(ticket: str, learner: str) -> CloudEvent:
    payload = MatchCancelled(ticket_id=ticket, learner_id=learner, skill=SKILL, reason="changed my mind")
    return new_event(payload, source="matching", time=T0)


def expired(ticket: str, learner: str) -> CloudEvent:
    return new_event(
        MatchExpired(ticket_id=ticket, learner_id=learner, skill=SKILL), source="matching", time=T0
    )


def found(
    match_id: str, a: str = "ann", b: str = "bob", tickets: tuple[str, str] | None = None
) -> CloudEvent:
    ta, tb = tickets or (f"{match_id}-a", f"{match_id}-b")
    payload = MatchFound(
        match_id=match_id,
        skill=SKILL,
        specialty="tabular",
        format="evaluate",
        tickets=(
            MatchedTicket(ticket_id=ta, learner_id=a, level=2.0),
            MatchedTicket(ticket_id=tb, learner_id=b, level=2.5),
        ),
        level_gap=0.5,
        waited_ms=10,
    )
    return new_event(payload, source="matching", time=T0)


def match(match_id: str, a: str = "ann", b: str = "bob") -> list[CloudEvent]:
    """The two requests, then the decision: what the matching service writes, in that order."""
    return [requested(f"{match_id}-a", a), requested(f"{match_id}-b", b), found(match_id, a, b)]


def fold(
    events: list[CloudEvent], state: dict[DocRef, Doc] | None = None
) -> tuple[dict[DocRef, Doc], list[str]]:
    """The documents, and the ids of the sessions scheduled (in order)."""
    docs, emitted = fold_events(SessionsProjection(), events, state)
    assert all(isinstance(e, SessionScheduled) for e in emitted)
    return docs, [e.session_id for e in emitted]  # type: ignore[attr-defined]


def sessions(docs: dict[DocRef, Doc]) -> set[str]:
    return {key for (collection, key) in docs if collection == SESSIONS}


def test_an_effective_match_found_schedules_a_session_and_emits_session_scheduled() -> None:
    events = match("m-1")
    docs, emitted = fold_events(SessionsProjection(), events)
    doc = docs[(SESSIONS, "m-1")]
    assert doc["session_id"] == "m-1" and doc["status"] == "scheduled"
    assert doc["participants"] == ["ann", "bob"]
    assert (doc["skill"], doc["specialty"], doc["format"]) == (SKILL, "tabular", "evaluate")
    assert doc["scheduled_at"] == T0.isoformat()
    assert doc["correlation_id"] == events[-1].correlationid
    assert emitted == [
        SessionScheduled(
            session_id="m-1",
            match_id="m-1",
            skill=SKILL,
            specialty="tabular",
            format="evaluate",
            participants=("ann", "bob"),
        )
    ]
    # both tickets are matched, and neither learner waits any more
    assert docs[(TICKETS, "m-1-a")] == {"state": "matched", "learner_id": "ann", "skill": SKILL}
    assert docs[(TICKETS, "m-1-b")] == {"state": "matched", "learner_id": "bob", "skill": SKILL}
    assert not [ref for ref in docs if ref[0] == OPEN_TICKETS]


def test_a_request_opens_a_ticket_and_the_learner_waits() -> None:
    docs, scheduled = fold([requested("t-1", "ann")])
    assert docs == {
        (TICKETS, "t-1"): {"state": "waiting", "learner_id": "ann", "skill": SKILL},
        (OPEN_TICKETS, f"ann/{SKILL}"): {"ticket_id": "t-1"},
    }
    assert scheduled == []


@pytest.mark.parametrize(("close", "state"), [(cancelled, "cancelled"), (expired, "expired")])
def test_a_cancelled_or_expired_ticket_closes_and_frees_the_learner(close: object, state: str) -> None:
    docs, scheduled = fold([requested("t-1", "ann"), close("t-1", "ann")])  # type: ignore[operator]
    assert docs == {(TICKETS, "t-1"): {"state": state, "learner_id": "ann", "skill": SKILL}}
    assert scheduled == []
    again, _ = fold([requested("t-2", "ann")], docs)  # the learner may ask again
    assert again[(OPEN_TICKETS, f"ann/{SKILL}")] == {"ticket_id": "t-2"}


@pytest.mark.parametrize("close", [cancelled, expired])
def test_a_match_found_after_one_of_its_tickets_closed_is_void(close: object) -> None:
    before = [requested("m-1-a", "ann"), requested("m-1-b", "bob"), close("m-1-b", "bob")]  # type: ignore[operator]
    docs, _ = fold(before)
    after, scheduled = fold([found("m-1")], docs)
    assert after == docs and scheduled == []
    assert after[(TICKETS, "m-1-a")]["state"] == "waiting"  # the other ticket still waits


def test_two_conflicting_match_found_only_the_first_takes_effect() -> None:
    """Two matchers during a rebalance: both paired ann's ticket; the log holds m-1 first."""
    events = [
        requested("t-ann", "ann"),
        requested("t-bob", "bob"),
        requested("t-cat", "cat"),
        found("m-1", "ann", "bob", ("t-ann", "t-bob")),
        found("m-2", "ann", "cat", ("t-ann", "t-cat")),
    ]
    docs, scheduled = fold(events)
    assert scheduled == ["m-1"] and sessions(docs) == {"m-1"}
    assert docs[(TICKETS, "t-cat")]["state"] == "waiting"  # cat was never matched: still waits
    assert docs[(OPEN_TICKETS, f"cat/{SKILL}")] == {"ticket_id": "t-cat"}
    # and cat can still be paired by a later decision
    more, scheduled = fold([requested("t-dan", "dan"), found("m-3", "cat", "dan", ("t-cat", "t-dan"))], docs)
    assert scheduled == ["m-3"] and sessions(more) == {"m-1", "m-3"}


def test_a_match_found_after_its_tickets_were_matched_is_void() -> None:
    docs, _ = fold(match("m-1"))
    again, scheduled = fold([found("m-9", tickets=("m-1-a", "m-1-b"))], docs)
    assert again == docs and scheduled == []


def test_a_match_found_naming_a_ticket_never_requested_is_void() -> None:
    docs, scheduled = fold([found("m-1")])
    assert docs == {} and scheduled == []
    half, scheduled = fold([requested("m-1-a", "ann"), found("m-1")])
    assert scheduled == [] and half[(TICKETS, "m-1-a")]["state"] == "waiting"


def test_a_request_arriving_after_its_match_does_not_revive_the_void_match() -> None:
    """The log order is the verdict: a decision before its requests is void for good."""
    docs, scheduled = fold([found("m-1"), requested("m-1-a", "ann"), requested("m-1-b", "bob")])
    assert scheduled == [] and sessions(docs) == set()


def test_a_second_request_of_a_learner_who_waits_opens_nothing() -> None:
    docs, _ = fold([requested("t-1", "ann")])
    again, scheduled = fold([requested("t-2", "ann")], docs)
    assert scheduled == []
    # the refused ticket is closed (so a later copy of it stays void); ann still waits on t-1
    assert again == {**docs, (TICKETS, "t-2"): {"state": "cancelled", "learner_id": "ann", "skill": SKILL}}
    after, _ = fold([cancelled("t-1", "ann"), requested("t-2", "ann")], again)
    assert after[(TICKETS, "t-2")]["state"] == "cancelled" and (OPEN_TICKETS, f"ann/{SKILL}") not in after
    # so a decision naming the second ticket is void
    more, scheduled = fold([requested("t-3", "bob"), found("m-1", "ann", "bob", ("t-2", "t-3"))], again)
    assert scheduled == [] and more[(TICKETS, "t-3")]["state"] == "waiting"


def test_a_copy_of_a_request_never_reopens_its_ticket() -> None:
    docs, _ = fold([requested("t-1", "ann"), cancelled("t-1", "ann")])
    again, _ = fold([requested("t-1", "ann")], docs)
    assert again == docs


def test_a_requeued_ticket_opens_like_any_request() -> None:
    docs, _ = fold([*match("m-1"), requested("t-again", "ann", requeue_of="m-1")])
    assert docs[(TICKETS, "t-again")]["state"] == "waiting"
    assert docs[(OPEN_TICKETS, f"ann/{SKILL}")] == {"ticket_id": "t-again"}


def test_cancelling_or_expiring_a_closed_ticket_is_void() -> None:
    docs, _ = fold(match("m-1"))
    again, _ = fold([cancelled("m-1-a", "ann"), expired("m-1-b", "bob")], docs)
    assert again == docs


def test_a_redelivered_match_found_changes_nothing() -> None:
    events = match("m-1")
    docs, _ = fold(events)
    again, scheduled = fold([events[-1]], docs)
    assert again == docs and scheduled == []


def test_a_later_copy_does_not_overwrite_a_session_that_moved_on() -> None:
    events = match("m-1")
    docs, _ = fold(events)
    moved = {**docs, (SESSIONS, "m-1"): {**docs[(SESSIONS, "m-1")], "status": "started"}}
    copy = events[-1].model_copy(update={"id": "another-copy"})  # a second copy with its own event id
    again, scheduled = fold([copy], moved)
    assert again == moved and scheduled == []


def test_an_effective_match_whose_session_exists_moves_the_tickets_only() -> None:
    """A store from before the tickets were kept: the session is there, its tickets were not."""
    docs, _ = fold(match("m-1"))
    legacy = {(SESSIONS, "m-1"): {**docs[(SESSIONS, "m-1")], "status": "completed"}}
    again, scheduled = fold(match("m-1"), legacy)
    assert scheduled == [] and again[(SESSIONS, "m-1")]["status"] == "completed"
    assert again[(TICKETS, "m-1-a")]["state"] == "matched"


def test_event_time_not_wall_clock_sets_scheduled_at() -> None:
    events = match("m-9")
    late = events[-1].model_copy(update={"time": T0 + timedelta(days=3)})
    docs, _ = fold([*events[:-1], late])
    assert docs[(SESSIONS, "m-9")]["scheduled_at"] == (T0 + timedelta(days=3)).isoformat()


def test_a_self_pairing_cannot_take_effect() -> None:
    """One open ticket per learner and skill: ann's second ticket never opened."""
    docs, scheduled = fold([requested("m-5-a", "ann"), requested("m-5-b", "ann"), found("m-5", "ann", "ann")])
    assert scheduled == [] and sessions(docs) == set()


def test_a_match_naming_another_learner_than_the_request_is_refused_so_the_runtime_dead_letters_it() -> None:
    with pytest.raises(ValueError, match="requested by bob"):
        fold([requested("m-5-a", "ann"), requested("m-5-b", "bob"), found("m-5", "ann", "ann")])
    with pytest.raises(ValueError, match="requested by ann"):
        fold([requested("t-1", "ann"), cancelled("t-1", "eve")])


def test_events_of_other_topics_are_ignored() -> None:
    projection = SessionsProjection()
    other = new_event(SkillClaimed(learner_id="ann", skill=SKILL, self_level="beginner"), source="passport")
    assert list(projection.refs(other)) == []
    assert fold_events(projection, [other]) == ({}, [])


def test_a_scheduled_session_is_folded_once_whichever_of_its_events_comes_first() -> None:
    match = found("m-9")
    scheduled = new_event(
        SessionScheduled(
            session_id="m-9",
            match_id="m-9",
            skill=SKILL,
            participants=("ann", "bob"),
            specialty="tabular",
            format="evaluate",
        ),
        source="sessions",
        time=match.time,
        correlationid=match.correlationid,
    )
    tickets = [requested("m-9-a", "ann"), requested("m-9-b", "bob")]
    from_match, emitted = fold([*tickets, match, scheduled])
    from_event, _ = fold([scheduled, *tickets, match])
    assert from_match[(SESSIONS, "m-9")] == from_event[(SESSIONS, "m-9")]
    assert len(emitted) == 1  # the MatchFound folded first schedules; its copy from the log is a no-op


def test_refs_name_every_document_the_rule_reads() -> None:
    projection = SessionsProjection()
    assert set(projection.refs(found("m-1"))) == {
        (TICKETS, "m-1-a"),
        (TICKETS, "m-1-b"),
        (OPEN_TICKETS, f"ann/{SKILL}"),
        (OPEN_TICKETS, f"bob/{SKILL}"),
        (SESSIONS, "m-1"),
    }
    assert set(projection.refs(requested("t", "ann"))) == {(TICKETS, "t"), (OPEN_TICKETS, f"ann/{SKILL}")}
