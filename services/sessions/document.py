"""The session document (pure): its shape, and how each of the session's own events moves it.

A command writes exactly what folding its event gives (``applied``), with the event's time, so
the log alone rebuilds every session (``lemma replay sessions``). Each event only moves a
session forward, so one the document already reflects changes nothing (``None``).

Two parts of the document say whether the session counts, so no participant alone can harm
the other:

- ``confirmation`` (once completed): ``{state, by, deadline, settled_at, disputed_by, reason}``.
  ``state`` is ``pending`` (one participant confirmed; the partner may dispute until
  ``deadline``), ``confirmed`` (both did, or the window closed) or ``disputed``.
- ``no_show_claim`` (once abandoned naming a no-show): ``{no_show, claimed_by, state, deadline,
  settled_at, reason}``; ``state`` is ``pending`` (the accused may contest until ``deadline``),
  ``upheld`` or ``contested``.

Events logged before these rules carry no deadline: their completion is confirmed and their
no-show claim upheld at once, as they counted then. A document stored before the rules has
neither part; ``upgraded`` gives it the parts its events would give it now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import Refused
from shared.events.payloads import (
    NoShowContested,
    NoShowUpheld,
    Payload,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
    SessionScheduled,
    SessionStarted,
)

Doc = dict[str, Any]
TERMINAL: frozenset[str] = frozenset({"completed", "abandoned"})
PENDING, CONFIRMED, DISPUTED = "pending", "confirmed", "disputed"
UPHELD, CONTESTED = "upheld", "contested"


class SessionError(Refused):
    """A refused command; ``status`` is the HTTP status it answers with (403, 404, 409, 422)."""


@dataclass(frozen=True)
class Transition:
    """The session after a command, and the event it causes (``None``: nothing changed)."""

    doc: Doc
    event: Payload | None = None


def stamp(at: datetime) -> str:
    return at.isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


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
        "confirmation": None,
        "abandoned_at": None,
        "abandoned_by": None,
        "abandon_reason": None,
        "no_show": None,
        "no_show_claim": None,
        "ratings": [],
        "correlation_id": correlation_id,
    }


def upgraded(doc: Doc) -> Doc:
    """``doc`` with the parts a document stored before confirmations lacks: what its events
    give when folded now (a completion confirmed, a no-show claim upheld, when they happened)."""
    if "confirmation" in doc and "no_show_claim" in doc:
        return doc
    confirmation = None
    if doc["status"] == "completed":
        confirmation = _confirmation(CONFIRMED, doc["completed_by"], None, doc["completed_at"])
    claim = None
    if doc["status"] == "abandoned" and doc.get("no_show"):
        claim = _claim(doc["no_show"], doc["abandoned_by"], UPHELD, None, doc["abandoned_at"])
    return {**doc, "confirmation": confirmation, "no_show_claim": claim}


def _confirmation(state: str, by: str, deadline: str | None, settled_at: str | None) -> Doc:
    return {
        "state": state,
        "by": [by],
        "deadline": deadline,
        "settled_at": settled_at,
        "disputed_by": None,
        "reason": None,
    }


def _claim(no_show: str, claimed_by: str, state: str, deadline: str | None, settled_at: str | None) -> Doc:
    return {
        "no_show": no_show,
        "claimed_by": claimed_by,
        "state": state,
        "deadline": deadline,
        "settled_at": settled_at,
        "reason": None,
    }


def applied(doc: Doc | None, event: Payload, at: datetime, correlation_id: str | None = None) -> Doc | None:
    """The session after one of its own events, logged at ``at``: what the command that
    published it wrote. ``None``: the event changes nothing (the document reflects it already,
    is past it, or the session is unknown)."""
    if isinstance(event, SessionScheduled):
        return scheduled(event, at, correlation_id) if doc is None else None
    if doc is None:
        return None
    doc = upgraded(doc)
    if isinstance(event, SessionStarted):
        if doc["status"] != "scheduled":
            return None
        return {**doc, "status": "started", "started_at": stamp(at), "started_by": event.started_by}
    if isinstance(event, SessionCompleted):
        return _completed(doc, event, at)
    if isinstance(event, SessionConfirmed | SessionDisputed):
        return _settled(doc, event, at)
    if isinstance(event, SessionAbandoned):
        return _abandoned(doc, event, at)
    if isinstance(event, NoShowContested | NoShowUpheld):
        return _claim_settled(doc, event, at)
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


def _completed(doc: Doc, event: SessionCompleted, at: datetime) -> Doc | None:
    if doc["status"] != "started":
        return None
    if event.confirm_by is None:  # the old rule: one participant's word counted at once
        confirmation = _confirmation(CONFIRMED, event.completed_by, None, stamp(at))
    else:
        confirmation = _confirmation(PENDING, event.completed_by, stamp(event.confirm_by), None)
    return {
        **doc,
        "status": "completed",
        "completed_at": stamp(at),
        "completed_by": event.completed_by,
        "duration_s": event.duration_s,
        "confirmation": confirmation,
    }


def _settled(doc: Doc, event: SessionConfirmed | SessionDisputed, at: datetime) -> Doc | None:
    current = doc["confirmation"]
    if doc["status"] != "completed" or current is None or current["state"] != PENDING:
        return None
    if isinstance(event, SessionDisputed):
        settled = {**current, "state": DISPUTED, "disputed_by": event.disputed_by, "reason": event.reason}
    else:
        by = current["by"] if event.confirmed_by is None else [*current["by"], event.confirmed_by]
        settled = {**current, "state": CONFIRMED, "by": by}
    return {**doc, "confirmation": {**settled, "settled_at": stamp(at)}}


def _abandoned(doc: Doc, event: SessionAbandoned, at: datetime) -> Doc | None:
    if doc["status"] in TERMINAL:
        return None
    claim = None
    if event.no_show is not None:
        if event.contest_by is None:  # the old rule: the claim stood at once
            claim = _claim(event.no_show, event.abandoned_by, UPHELD, None, stamp(at))
        else:
            claim = _claim(event.no_show, event.abandoned_by, PENDING, stamp(event.contest_by), None)
    return {
        **doc,
        "status": "abandoned",
        "abandoned_at": stamp(at),
        "abandoned_by": event.abandoned_by,
        "abandon_reason": event.reason,
        "no_show": event.no_show,
        "no_show_claim": claim,
    }


def _claim_settled(doc: Doc, event: NoShowContested | NoShowUpheld, at: datetime) -> Doc | None:
    claim = doc["no_show_claim"]
    if claim is None or claim["state"] != PENDING:
        return None
    if isinstance(event, NoShowContested):
        settled = {**claim, "state": CONTESTED, "reason": event.reason}
    else:
        settled = {**claim, "state": UPHELD}
    return {**doc, "no_show_claim": {**settled, "settled_at": stamp(at)}}


def moved(doc: Doc, event: Payload, now: datetime) -> Transition:
    """A command's transition: the event and the document folding it gives."""
    new = applied(doc, event, now)
    assert new is not None, "a command's event moves its session"
    return Transition(new, event)
