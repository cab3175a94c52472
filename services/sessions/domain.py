"""Session rules (pure): the lifecycle of a session and the ratings made after it.

A session is one document, keyed by its id (= the match id of the MatchFound that
created it). Each command is a function ``(doc, actor, ..., now) -> Transition`` that
either returns the new document and the event it causes, or raises ``SessionError``
carrying the HTTP status the refusal maps to. A repeated command that has already had
its effect (start twice, complete twice, abandon twice) returns the document unchanged
and no event, so clients may retry safely.

    scheduled ──start──> started ──complete──> completed ──(ratings, one per rater)
        └──────abandon──────┴──abandon──> abandoned
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.catalog import Catalog, get_catalog
from shared.errors import EventRefused, Refused
from shared.events.envelope import deterministic_id
from shared.events.payloads import (
    MatchFound,
    Payload,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionScheduled,
    SessionStarted,
)

Doc = dict[str, Any]
TERMINAL: frozenset[str] = frozenset({"completed", "abandoned"})
MAX_COMMENT = 2000  # RatingSubmitted.comment's limit


class SessionError(Refused):
    """A refused command; ``status`` is the HTTP status it answers with (403, 404, 409, 422)."""


@dataclass(frozen=True)
class Transition:
    """The session after a command, and the event it causes (``None``: nothing changed)."""

    doc: Doc
    event: Payload | None = None


def stamp(at: datetime) -> str:
    return at.isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def rating_id_for(session_id: str, rater_id: str) -> str:
    """One rating per rater per session, so the id follows from the pair (a retry cannot fork it)."""
    return deterministic_id("rating", session_id, rater_id)


def schedule(match: MatchFound, at: datetime, correlation_id: str | None = None) -> Transition:
    """The session a MatchFound creates; ``at`` is the MatchFound's event time."""
    participants = (match.tickets[0].learner_id, match.tickets[1].learner_id)
    if participants[0] == participants[1]:
        raise EventRefused(f"match {match.match_id} pairs learner {participants[0]} with itself")
    event = SessionScheduled(
        session_id=match.match_id,
        match_id=match.match_id,
        skill=match.skill,
        specialty=match.specialty,
        format=match.format,
        participants=participants,
    )
    return Transition(scheduled(event, at, correlation_id), event)


def scheduled(event: SessionScheduled, at: datetime, correlation_id: str | None) -> Doc:
    """The document of a session just scheduled (``at``: the event's time)."""
    return {
        "session_id": event.session_id,
        "match_id": event.match_id,
        "skill": event.skill,
        "specialty": event.specialty,
        "format": event.format,
        "participants": list(event.participants),
        "status": "scheduled",
        "scheduled_at": stamp(at),
        "started_at": None,
        "started_by": None,
        "completed_at": None,
        "completed_by": None,
        "duration_s": None,
        "abandoned_at": None,
        "abandoned_by": None,
        "abandon_reason": None,
        "no_show": None,
        "ratings": [],
        "correlation_id": correlation_id,
    }


def applied(doc: Doc | None, event: Payload, at: datetime, correlation_id: str | None = None) -> Doc | None:
    """The session after one of its own events, logged at ``at``: what the command that
    published it wrote, so folding the log gives the documents the commands did. Each step
    only moves a session forward (scheduled, started, then completed or abandoned; one rating
    per rater), so an event the document already reflects changes nothing (``None``), and so
    does one the document is past or lacks the session for."""
    if isinstance(event, SessionScheduled):
        return scheduled(event, at, correlation_id) if doc is None else None
    if doc is None:
        return None
    status = doc["status"]
    if isinstance(event, SessionStarted):
        if status != "scheduled":
            return None
        return {**doc, "status": "started", "started_at": stamp(at), "started_by": event.started_by}
    if isinstance(event, SessionCompleted):
        if status != "started":
            return None
        return {
            **doc,
            "status": "completed",
            "completed_at": stamp(at),
            "completed_by": event.completed_by,
            "duration_s": event.duration_s,
        }
    if isinstance(event, SessionAbandoned):
        if status in TERMINAL:
            return None
        return {
            **doc,
            "status": "abandoned",
            "abandoned_at": stamp(at),
            "abandoned_by": event.abandoned_by,
            "abandon_reason": event.reason,
            "no_show": event.no_show,
        }
    if isinstance(event, RatingSubmitted):
        if any(r["rater_id"] == event.rater_id for r in doc["ratings"]):
            return None
        entry = {
            "rating_id": event.rating_id,
            "rater_id": event.rater_id,
            "ratee_id": event.ratee_id,
            "rated_at": stamp(at),
        }
        return {**doc, "ratings": [*doc["ratings"], entry]}
    return None


def _moved(doc: Doc, event: Payload, now: datetime) -> Transition:
    """A command's transition: the event and the document folding it gives."""
    new = applied(doc, event, now)
    assert new is not None, "a command's event moves its session"
    return Transition(new, event)


def _require(doc: Doc | None, session_id: str, actor: str) -> Doc:
    if doc is None:
        raise SessionError(404, f"session {session_id} not found")
    if actor not in doc["participants"]:
        raise SessionError(403, f"only the participants of session {session_id} may do this")
    return doc


def _conflict(doc: Doc, action: str) -> SessionError:
    return SessionError(409, f"cannot {action} session {doc['session_id']}: it is {doc['status']}")


def start(doc: Doc | None, session_id: str, actor: str, now: datetime) -> Transition:
    session = _require(doc, session_id, actor)
    if session["status"] == "started":
        return Transition(session)
    if session["status"] != "scheduled":
        raise _conflict(session, "start")
    return _moved(session, SessionStarted(session_id=session_id, started_by=actor), now)


def complete(doc: Doc | None, session_id: str, actor: str, now: datetime) -> Transition:
    session = _require(doc, session_id, actor)
    if session["status"] == "completed":
        return Transition(session)
    if session["status"] != "started":
        raise _conflict(session, "complete")
    duration_s = max(int((now - _parse(session["started_at"])).total_seconds()), 0)
    return _moved(
        session, SessionCompleted(session_id=session_id, completed_by=actor, duration_s=duration_s), now
    )


def partner_of(session: Doc, learner_id: str) -> str:
    a, b = session["participants"]
    return str(b if learner_id == a else a)


def abandon(
    doc: Doc | None, session_id: str, actor: str, reason: str, no_show: str | None, now: datetime
) -> Transition:
    session = _require(doc, session_id, actor)
    if no_show is not None and no_show != partner_of(session, actor):
        raise SessionError(422, "no_show must name the other participant of the session")
    if session["status"] == "abandoned":
        return Transition(session)
    if session["status"] not in ("scheduled", "started"):
        raise _conflict(session, "abandon")
    abandoned = SessionAbandoned(session_id=session_id, abandoned_by=actor, reason=reason, no_show=no_show)
    return _moved(session, abandoned, now)


def rate(
    doc: Doc | None,
    session_id: str,
    rater_id: str,
    ratee_id: str,
    scores: dict[str, int],
    comment: str | None,
    now: datetime,
    catalog: Catalog | None = None,
) -> Transition:
    """A rating of the partner, after completion, once per rater, scoring the whole rubric.

    Checks run in the order: who may act (403), is the request itself acceptable (422),
    does the session's state allow it (409).
    """
    session = _require(doc, session_id, rater_id)
    if ratee_id == rater_id:
        raise SessionError(422, "a participant cannot rate themselves")
    if ratee_id not in session["participants"]:
        raise SessionError(422, f"{ratee_id} is not a participant of session {session_id}")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise SessionError(422, f"comment is longer than {MAX_COMMENT} characters")
    problems = (catalog or get_catalog()).problems(session["skill"], scores=scores)
    if problems:
        raise SessionError(422, "; ".join(problems))
    if session["status"] != "completed":
        raise SessionError(
            409, f"session {session_id} can be rated only once completed; it is {session['status']}"
        )
    if any(r["rater_id"] == rater_id for r in session["ratings"]):
        raise SessionError(409, f"{rater_id} has already rated session {session_id}")
    event = RatingSubmitted(
        rating_id=rating_id_for(session_id, rater_id),
        session_id=session_id,
        rater_id=rater_id,
        ratee_id=ratee_id,
        skill=session["skill"],
        specialty=session["specialty"],
        scores=dict(scores),
        comment=comment,
    )
    return _moved(session, event, now)
