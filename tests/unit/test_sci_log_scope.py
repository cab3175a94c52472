"""Which sessions records a scoped sci rebuild decodes and folds: a no-show counts once it stands
(upheld, or logged before claims could be contested), and only for the learner it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from services.sci.log_scope import Scope, Selection
from shared.events import encode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    NoShowContested,
    NoShowUpheld,
    Payload,
    SessionAbandoned,
    SessionScheduled,
    SessionStarted,
)
from shared.settings import Settings

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TOPIC = "lemma.sessions.v1"


def record(event: CloudEvent) -> ConsumerRecord[bytes, bytes]:
    value = encode(event)
    key = event.key.encode()
    return ConsumerRecord(TOPIC, 0, 0, 0, 0, key, value, None, len(key), len(value), ())


def event(payload: Payload) -> CloudEvent:
    return new_event(payload, source="test", time=T0)


def test_a_scoped_fold_keeps_standing_no_shows_of_its_learner_only() -> None:
    selection = Selection(Scope(learner="ann", skill="machine-learning"), Settings())
    schedule = event(
        SessionScheduled(
            session_id="s1", match_id="s1", skill="machine-learning", participants=("ann", "bob")
        )
    )
    assert selection.keep(record(schedule)) and selection.select(schedule)
    upheld = event(NoShowUpheld(session_id="s1", no_show="ann", claimed_by="bob"))
    old_rule = event(SessionAbandoned(session_id="s1", abandoned_by="bob", reason="other", no_show="ann"))
    for standing in (upheld, old_rule):
        assert selection.keep(record(standing)) and selection.select(standing)
    open_claim = event(
        SessionAbandoned(
            session_id="s1",
            abandoned_by="bob",
            reason="other",
            no_show="ann",
            contest_by=T0 + timedelta(days=2),
        )
    )
    assert not selection.select(open_claim)  # decoded (it may name the learner), never folded
    against_bob = event(NoShowUpheld(session_id="s1", no_show="bob", claimed_by="ann"))
    assert not selection.select(against_bob)
    for other in (
        event(NoShowContested(session_id="s1", contested_by="ann")),
        event(SessionStarted(session_id="s1", started_by="ann")),
    ):
        assert not selection.keep(record(other))
