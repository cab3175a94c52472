"""The matching replay's reading of the ticket log rule (bench/matching_replay/referee.py) and its walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.matching_replay.referee import Referee, sessions_overlap
from services.matching.domain import match_found, ticket_doc
from services.matching.projection import MatchingProjection
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchRequested,
    Payload,
    SessionCompleted,
)
from shared.projection import fold_events

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
SKILL = "machine-learning"


def at(payload: Payload, seconds: float) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(seconds=seconds))


def request(ticket: str, learner: str) -> MatchRequested:
    return MatchRequested(ticket_id=ticket, learner_id=learner, skill=SKILL, level=2.0, requested_at=T0)


def test_the_referee_reads_the_log_as_the_projection_does() -> None:
    a, b, c, d = request("t1", "ann"), request("t2", "bob"), request("t3", "cy"), request("t4", "ann")
    ab = match_found(ticket_doc(a, T0), ticket_doc(b, T0), now=T0)
    bc = match_found(ticket_doc(b, T0), ticket_doc(c, T0), now=T0)  # loses: t2 is matched first
    log = [
        at(a, 0),
        at(b, 0),
        at(c, 0),
        at(d, 1),  # ann already waits: refused
        at(ab, 2),
        at(bc, 2),
        at(MatchCancelled(ticket_id="t1", learner_id="ann", skill=SKILL, reason="x"), 3),  # lost to the match
        at(a, 4),  # a copy
        at(MatchExpired(ticket_id="t3", learner_id="cy", skill=SKILL), 5),
    ]
    referee = Referee()
    verdicts = [referee.apply(e) for e in log]
    assert verdicts == ["effective"] * 3 + ["refused", "effective", "void", "void", "copy", "effective"]
    docs, _ = fold_events(MatchingProjection(), log)
    folded = {key: doc["status"] for (col, key), doc in docs.items() if col == "tickets"}
    assert folded == {t: referee.status(t) for t in ("t1", "t2", "t3", "t4")}
    assert {key for col, key in docs if col == "matches"} == set(referee.matches) == {ab.match_id}
    assert referee.void_found_causes == {"matched": 1}
    assert referee.void_closed_causes == {"MatchCancelled:matched": 1}
    assert all(seen.terminal_events == 1 for seen in referee.tickets.values())


def test_the_session_walk_finds_a_learner_in_two_open_sessions() -> None:
    a, b, c, d = request("t1", "ann"), request("t2", "bob"), request("t3", "ann"), request("t4", "cy")
    referee = Referee()
    first = match_found(ticket_doc(a, T0), ticket_doc(b, T0), now=T0)
    second = match_found(ticket_doc(c, T0), ticket_doc(d, T0), now=T0)
    for event in (at(a, 0), at(b, 0), at(first, 1)):
        referee.apply(event)
    end_first = at(SessionCompleted(session_id=first.match_id, completed_by="ann", duration_s=1), 5)
    for event in (at(c, 6), at(d, 6), at(second, 7)):
        referee.apply(event)
    assert sessions_overlap(referee.matches.values(), [end_first]) == (1, 0, [])
    late_end = at(SessionCompleted(session_id=first.match_id, completed_by="ann", duration_s=1), 8)
    most, orphans, twice = sessions_overlap(referee.matches.values(), [late_end, late_end])
    assert most == 2 and orphans == 0 and twice == [first.match_id]
