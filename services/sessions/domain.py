"""Session rules (pure): the lifecycle of a session and the ratings made in it.

A session is one document, keyed by its id (= the match id of the MatchFound that
created it; its shape: ``services.sessions.document``). Each command is a function
``(doc, actor, ..., now) -> Transition`` that either returns the new document and the event
it causes, or raises ``SessionError`` carrying the HTTP status the refusal maps to. A repeated
command that has already had its effect (start twice, complete twice, abandon twice) returns
the document unchanged and no event, so clients may retry safely.

    scheduled ──start──> started ──complete──> completed ──(ratings, one per rater)
        └──────abandon──────┴──abandon──> abandoned

What makes a completion or a no-show count (the partner's confirmation, dispute, contest, and
the window the sweep closes) is in ``services.sessions.confirmation``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.sessions.confirmation import (
    DEFAULT_WINDOW,
    confirm,
    conflict,
    contest,
    dispute,
    require,
    settle_due,
)
from services.sessions.document import (
    DISPUTED,
    TERMINAL,
    Doc,
    SessionError,
    Transition,
    applied,
    moved,
    scheduled,
    stamp,
)
from shared.catalog import Catalog, get_catalog
from shared.errors import EventRefused
from shared.events.envelope import deterministic_id
from shared.events.payloads import (
    AbandonReason,
    MatchFound,
    RatingSubmitted,
    SessionAbandoned,
    SessionScheduled,
    SessionStarted,
)

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_COMMENT",
    "TERMINAL",
    "Doc",
    "SessionError",
    "Transition",
    "abandon",
    "applied",
    "complete",
    "confirm",
    "contest",
    "dispute",
    "partner_of",
    "rate",
    "rating_id_for",
    "schedule",
    "scheduled",
    "settle_due",
    "stamp",
    "start",
]

MAX_COMMENT = 2000  # RatingSubmitted.comment's limit


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


def start(doc: Doc | None, session_id: str, actor: str, now: datetime) -> Transition:
    session = require(doc, session_id, actor)
    if session["status"] == "started":
        return Transition(session)
    if session["status"] != "scheduled":
        raise conflict(session, "start")
    return moved(session, SessionStarted(session_id=session_id, started_by=actor), now)


def complete(
    doc: Doc | None, session_id: str, actor: str, now: datetime, window: timedelta = DEFAULT_WINDOW
) -> Transition:
    """A participant completes the session: their confirmation that it took place (``confirm``)."""
    return confirm(doc, session_id, actor, now, window)


def partner_of(session: Doc, learner_id: str) -> str:
    a, b = session["participants"]
    return str(b if learner_id == a else a)


def abandon(
    doc: Doc | None,
    session_id: str,
    actor: str,
    reason: AbandonReason,
    no_show: str | None,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
) -> Transition:
    """A participant ends a session that will not take place; naming the partner as a no-show
    opens a claim the partner may contest within ``window`` (``confirmation.contest``)."""
    session = require(doc, session_id, actor)
    if no_show is not None and no_show != partner_of(session, actor):
        raise SessionError(422, "no_show must name the other participant of the session")
    if session["status"] == "abandoned":
        return Transition(session)
    if session["status"] not in ("scheduled", "started"):
        raise conflict(session, "abandon")
    contest_by = now + window if no_show is not None else None
    abandoned = SessionAbandoned(
        session_id=session_id, abandoned_by=actor, reason=reason, no_show=no_show, contest_by=contest_by
    )
    return moved(session, abandoned, now)


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
    """A rating of the partner, once completed (confirmed by one side at least, and not
    disputed), once per rater, scoring the whole rubric. It counts (becomes evidence) once the
    session is confirmed: the evidence service holds it until then.

    Checks run in the order: who may act (403), is the request itself acceptable (422),
    does the session's state allow it (409).
    """
    session = require(doc, session_id, rater_id)
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
    if session["confirmation"]["state"] == DISPUTED:
        raise SessionError(409, f"session {session_id} was disputed; it can no longer be rated")
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
        comment=None,  # free text about a person: kept apart (``personal``), never in the log
    )
    return moved(session, event, now)
