"""Property tests: the sessions' own events rebuild what the commands (and the deadline sweep)
wrote, the deadlines index with them, and folding them again beside the commands (the live
service, at any lag) changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sessions import deadlines
from services.sessions.deadlines import DEADLINES
from services.sessions.domain import SessionError, schedule
from services.sessions.projection import SESSIONS, SessionsProjection
from shared.events import decode, encode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchRequested
from shared.projection.fold import Doc, DocRef, fold_events
from tests.unit.test_sessions_properties import FOUND, SID, T0, commands, run


def logged(event: CloudEvent) -> CloudEvent:
    """The event as a consumer reads it back from the log."""
    return decode(encode(event))


def command_log(sequence: list[tuple[Any, ...]]) -> tuple[Doc, list[CloudEvent], dict[DocRef, Doc]]:
    """What the commands wrote (the session, the deadlines index), and the events they published
    (with the times they used)."""
    scheduled = schedule(FOUND, T0, "corr-1")
    assert scheduled.event is not None
    doc = scheduled.doc
    events = [logged(new_event(scheduled.event, source="sessions", time=T0, correlationid="corr-1"))]
    index: dict[DocRef, Doc] = {}
    for step, command in enumerate(sequence):
        now = T0 + timedelta(minutes=step, microseconds=step * 7)
        try:
            result = run(doc, command, now)
        except SessionError:
            continue
        if result.event is not None:
            event = new_event(result.event, source="sessions", time=now, correlationid="corr-1")
            events.append(logged(event))
            for ref, entry in deadlines.changes(doc, result.doc).items():
                if entry is None:
                    del index[ref]
                else:
                    index[ref] = entry
        doc = result.doc
    return doc, events, index


def deadline_docs(docs: dict[DocRef, Doc]) -> dict[DocRef, Doc]:
    return {ref: doc for ref, doc in docs.items() if ref[0] == DEADLINES}


def tickets() -> list[CloudEvent]:
    return [
        logged(
            new_event(
                MatchRequested(
                    ticket_id=t, learner_id=who, skill="machine-learning", level=1.0, requested_at=T0
                ),
                source="matching",
                time=T0,
            )
        )
        for t, who in (("a", "ann"), ("b", "bob"))
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=20), st.data())
def test_the_log_alone_rebuilds_the_session_the_commands_wrote(
    sequence: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    written, events, index = command_log(sequence)
    match = logged(new_event(FOUND, source="matching", time=T0, correlationid="corr-1"))
    # a rebuild reads the two topics in any interleaving; each keeps its own order
    matching = [*tickets(), match]
    ordered: list[CloudEvent] = []
    while matching or events:
        side = (
            matching
            if not events
            else events
            if not matching
            else data.draw(st.sampled_from([matching, events]))
        )
        ordered.append(side.pop(0))
    rebuilt, _ = fold_events(SessionsProjection(), ordered)
    assert rebuilt[(SESSIONS, SID)] == written
    assert deadline_docs(rebuilt) == index


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=20), st.data())
def test_folding_the_own_events_beside_the_commands_changes_nothing(
    sequence: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """Live, the fold reads a command's event after the command wrote its document: at any
    point it catches up to, the document it finds is the one the commands left."""
    written, events, index = command_log(sequence)
    caught_up = data.draw(st.integers(0, len(events)))
    state: dict[DocRef, Doc] = {(SESSIONS, SID): written, **index}
    folded, emitted = fold_events(SessionsProjection(), events[:caught_up], state)
    assert folded[(SESSIONS, SID)] == written
    assert deadline_docs(folded) == index
    assert emitted == []
