"""The matching queue as a projection of the log (pure): the log rule, requeue on no-show,
sessions' ends, partners, promises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching import domain
from services.matching.domain import (
    BUSY,
    MATCHES,
    OPEN,
    PARTNERS,
    PROMISED,
    TICKETS,
    WAITING_INDEX,
    learner_key,
    match_found,
    waiting_key,
)
from services.matching.projection import MatchingProjection, requeue_ticket_id
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchRequested,
    Payload,
    SessionAbandoned,
    SessionCompleted,
)
from shared.projection import fold_events

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ML = "machine-learning"


def ev(payload: Payload, seconds: float = 0) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(seconds=seconds))


def requested(n: str, learner: str, level: float = 2.0, seconds: float = 0, **extra: Any) -> CloudEvent:
    return ev(
        MatchRequested(
            ticket_id=n,
            learner_id=learner,
            skill=ML,
            level=level,
            requested_at=T0 + timedelta(seconds=seconds),
            **extra,
        ),
        seconds,
    )


def fold(events: list[CloudEvent]) -> tuple[dict[tuple[str, str], Any], list[Payload]]:
    return fold_events(MatchingProjection(), events)


def found(docs: dict[tuple[str, str], Any], a: str, b: str, seconds: float = 1) -> CloudEvent:
    return ev(
        match_found(docs[(TICKETS, a)], docs[(TICKETS, b)], now=T0 + timedelta(seconds=seconds)), seconds
    )


def test_a_request_opens_a_waiting_ticket_once() -> None:
    first = requested("t1", "ann")
    docs, _ = fold([first, first, ev(first.data)])
    assert docs[(TICKETS, "t1")]["status"] == "waiting"
    assert docs[(OPEN, learner_key("ann", ML))] == {"ticket_id": "t1"}
    assert docs[(WAITING_INDEX, waiting_key(ML, "t1"))] == {"ticket_id": "t1"}


def test_a_second_open_ticket_of_a_learner_in_a_skill_is_void() -> None:
    second = requested("t2", "ann", seconds=1)
    cancel = ev(MatchCancelled(ticket_id="t1", learner_id="ann", skill=ML, reason="x"), 2)
    docs, _ = fold([requested("t1", "ann"), second, cancel, second])  # a late copy stays refused
    assert (
        docs[(TICKETS, "t2")]["status"] == "cancelled" and "already waits" in docs[(TICKETS, "t2")]["reason"]
    )
    assert (OPEN, learner_key("ann", ML)) not in docs and (WAITING_INDEX, waiting_key(ML, "t2")) not in docs


def test_a_match_closes_both_tickets_and_remembers_the_pair() -> None:
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob", level=2.2)])
    match = found(docs, "t1", "t2")
    docs, _ = fold_events(MatchingProjection(), [match], docs)
    mid = match.data.match_id  # type: ignore[attr-defined]
    for t, learner, partner in (("t1", "ann", "bob"), ("t2", "bob", "ann")):
        ticket = docs[(TICKETS, t)]
        assert (ticket["status"], ticket["session_id"], ticket["partner_id"]) == ("matched", mid, partner)
        assert (WAITING_INDEX, waiting_key(ML, t)) not in docs and (
            OPEN,
            learner_key(learner, ML),
        ) not in docs
        assert docs[(BUSY, learner_key(learner, ML))] == {"match_id": mid}
        assert docs[(PARTNERS, learner_key(learner, ML))] == {"partners": [partner], "matches": [mid]}
    assert docs[(MATCHES, mid)]["ended"] is False


def test_the_first_effective_event_wins_and_later_ones_are_void() -> None:
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob"), requested("t3", "cy")])
    first, rival = found(docs, "t1", "t2"), found(docs, "t1", "t3")  # two matchers, one ticket
    late_cancel = ev(MatchCancelled(ticket_id="t1", learner_id="ann", skill=ML, reason="x"), 2)
    docs, _ = fold_events(MatchingProjection(), [first, rival, late_cancel], docs)
    assert docs[(TICKETS, "t1")]["partner_id"] == "bob" and docs[(TICKETS, "t3")]["status"] == "waiting"
    assert docs[(OPEN, learner_key("cy", ML))] == {"ticket_id": "t3"}
    assert (MATCHES, rival.data.match_id) not in docs  # type: ignore[attr-defined]


def test_cancel_and_expiry_close_a_waiting_ticket_and_void_a_later_match() -> None:
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob")])
    cancel = ev(MatchCancelled(ticket_id="t1", learner_id="ann", skill=ML, reason="changed my mind"), 1)
    expiry = ev(MatchExpired(ticket_id="t2", learner_id="bob", skill=ML), 2)
    late = found(docs, "t1", "t2", 3)
    docs, _ = fold_events(MatchingProjection(), [cancel, expiry, late], docs)
    assert docs[(TICKETS, "t1")]["status"] == "cancelled" and docs[(TICKETS, "t2")]["status"] == "expired"
    assert docs[(TICKETS, "t1")]["reason"] == "changed my mind"
    assert not [k for k in docs if k[0] in (WAITING_INDEX, OPEN, MATCHES)]


def test_settled_events_free_the_promises_a_decision_made() -> None:
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob")])
    docs = {
        **docs,
        (PROMISED, "t1"): {"match_id": "m", "at": "x"},
        (PROMISED, "t2"): {"match_id": "m", "at": "x"},
    }
    docs, _ = fold_events(MatchingProjection(), [found(docs, "t1", "t2")], docs)
    assert (PROMISED, "t1") not in docs and (PROMISED, "t2") not in docs


def test_a_no_show_puts_the_partner_back_first_in_line_with_their_original_time() -> None:
    docs, _ = fold([requested("t1", "ann", seconds=0, specialty="nlp"), requested("t2", "bob", seconds=50)])
    match = found(docs, "t1", "t2", 60)
    mid = match.data.match_id  # type: ignore[attr-defined]
    abandoned = ev(
        SessionAbandoned(session_id=mid, abandoned_by="ann", reason="partner-absent", no_show="bob"), 900
    )
    docs, emitted = fold_events(MatchingProjection(), [match, abandoned, abandoned], docs)
    assert docs[(MATCHES, mid)]["ended"] is True
    (requeue,) = emitted
    assert isinstance(requeue, MatchRequested)
    assert (requeue.ticket_id, requeue.learner_id, requeue.requeue_of) == (
        requeue_ticket_id(mid, "ann"),
        "ann",
        mid,
    )
    assert requeue.requested_at == T0 and requeue.specialty == "nlp"  # the original time and wishes
    docs, _ = fold_events(MatchingProjection(), [ev(requeue, 900), ev(requeue, 901)], docs)
    ticket = docs[(TICKETS, requeue.ticket_id)]
    assert ticket["status"] == "waiting" and ticket["queued_at"] == domain.stamp(T0 + timedelta(seconds=900))


def test_a_completed_session_ends_the_match_without_requeue() -> None:
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob")])
    match = found(docs, "t1", "t2")
    mid = match.data.match_id  # type: ignore[attr-defined]
    done = ev(SessionCompleted(session_id=mid, completed_by="ann", duration_s=1800), 2000)
    docs, emitted = fold_events(MatchingProjection(), [match, done], docs)
    assert docs[(MATCHES, mid)]["ended"] is True and emitted == []


@st.composite
def skill_logs(draw: st.DrawFn) -> list[CloudEvent]:
    """One skill's partition: requests, then decisions that may conflict, cancels and expiries."""
    learners = ["ann", "bob", "cy", "dee"]
    events = [requested(f"t{i}", learners[i % 4], seconds=i) for i in range(draw(st.integers(2, 8)))]
    docs, _ = fold(events)
    ids = sorted(t for (c, t) in docs if c == TICKETS)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["match", "cancel", "expire"]))
        a = draw(st.sampled_from(ids))
        if kind == "match":
            b = draw(st.sampled_from(ids))
            if a != b:
                events.append(found(docs, a, b, 10))
        else:
            t = docs[(TICKETS, a)]
            payload: Payload = (
                MatchCancelled(ticket_id=a, learner_id=t["learner_id"], skill=ML, reason="x")
                if kind == "cancel"
                else MatchExpired(ticket_id=a, learner_id=t["learner_id"], skill=ML)
            )
            events.append(ev(payload, 20))
    return events


@settings(max_examples=60, deadline=None)
@given(skill_logs(), st.data())
def test_redeliveries_change_nothing_and_no_ticket_is_matched_twice(
    events: list[CloudEvent], data: st.DataObject
) -> None:
    once, _ = fold(events)
    replayed = list(events)
    for e in events:
        if data.draw(st.booleans()):
            replayed.insert(data.draw(st.integers(replayed.index(e) + 1, len(replayed))), e)
    again, _ = fold(replayed)
    assert json.dumps(sorted(again.items(), key=str), default=str) == json.dumps(
        sorted(once.items(), key=str), default=str
    )
    partners = [t["match_id"] for (c, _), t in once.items() if c == TICKETS and t["status"] == "matched"]
    assert all(partners.count(m) == 2 for m in partners)  # every match has exactly its two tickets


def test_a_session_end_folded_before_its_match_is_kept() -> None:
    """Kafka keeps no order across topics: the end may be folded before the MatchFound."""
    docs, _ = fold([requested("t1", "ann"), requested("t2", "bob", seconds=5)])
    match = found(docs, "t1", "t2", 10)
    mid = match.data.match_id  # type: ignore[attr-defined]
    abandoned = ev(
        SessionAbandoned(session_id=mid, abandoned_by="ann", reason="partner-absent", no_show="bob"), 900
    )
    in_order, emitted_in_order = fold_events(MatchingProjection(), [match, abandoned], docs)
    early, emitted_early = fold_events(MatchingProjection(), [abandoned, match, abandoned], docs)
    assert early[(MATCHES, mid)]["ended"] is True
    assert early[(MATCHES, mid)]["tickets"] == in_order[(MATCHES, mid)]["tickets"]
    assert [p.ticket_id for p in emitted_early] == [p.ticket_id for p in emitted_in_order]  # type: ignore[attr-defined]
    assert [p.ticket_id for p in emitted_early] == [requeue_ticket_id(mid, "ann")]  # type: ignore[attr-defined]
    done = ev(SessionCompleted(session_id=mid, completed_by="ann", duration_s=60), 900)
    completed, emitted = fold_events(MatchingProjection(), [done, match], docs)
    assert completed[(MATCHES, mid)]["ended"] is True and emitted == []
