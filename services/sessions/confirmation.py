"""No unilateral harm (pure): a session counts, and a no-show costs, only with the other side's say.

- **Completion.** The first participant to complete (or confirm) a started session confirms it:
  SessionCompleted, with the deadline ``now + window``. The partner then confirms
  (SessionConfirmed: it counts), disputes before the deadline (SessionDisputed: it never counts:
  no Practice, no ratings, no cost to anyone), or stays silent, and the sweep confirms it once
  the deadline has passed (``settle_due``).
- **No-show claims.** Abandoning a session naming the partner as a no-show opens a claim with
  the same window: the accused may contest it before the deadline (NoShowContested: it costs
  neither side), else the sweep upholds it (NoShowUpheld: it costs the accused Reliability).

A window is half open: an answer at the deadline is late, and the sweep fires at it. A repeated
command that has had its effect changes nothing and emits nothing (a client's retry).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.sessions.document import (
    CONFIRMED,
    CONTESTED,
    DISPUTED,
    PENDING,
    Doc,
    SessionError,
    Transition,
    moved,
    parse,
    upgraded,
)
from shared.events.payloads import (
    ContestReason,
    DisputeReason,
    NoShowContested,
    NoShowUpheld,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
)

#: How long the partner has to dispute, or the accused to contest (``LEMMA_SESSION_CONFIRM_WINDOW_S``).
DEFAULT_WINDOW = timedelta(hours=48)


def require(doc: Doc | None, session_id: str, actor: str) -> Doc:
    """The session (as the current rules see it), if ``actor`` takes part in it: else 404 or 403."""
    if doc is None:
        raise SessionError(404, f"session {session_id} not found")
    if actor not in doc["participants"]:
        raise SessionError(403, f"only the participants of session {session_id} may do this")
    return upgraded(doc)


def conflict(doc: Doc, action: str) -> SessionError:
    return SessionError(409, f"cannot {action} session {doc['session_id']}: it is {doc['status']}")


def _closed(deadline: str, now: datetime) -> bool:
    return now >= parse(deadline)


def _due(part: Doc | None, now: datetime) -> bool:
    """Whether a pending confirmation or claim has reached its deadline."""
    return part is not None and part["state"] == PENDING and _closed(part["deadline"], now)


def confirm(
    doc: Doc | None, session_id: str, actor: str, now: datetime, window: timedelta = DEFAULT_WINDOW
) -> Transition:
    """A participant says the session took place: the first confirmation completes it; the
    partner's makes it count. ``complete`` and ``confirm`` are this one command."""
    session = require(doc, session_id, actor)
    status = session["status"]
    if status == "started":
        duration_s = max(int((now - parse(session["started_at"])).total_seconds()), 0)
        completed = SessionCompleted(
            session_id=session_id, completed_by=actor, duration_s=duration_s, confirm_by=now + window
        )
        return moved(session, completed, now)
    if status != "completed":
        raise conflict(session, "confirm")
    confirmation = session["confirmation"]
    if actor in confirmation["by"] or confirmation["state"] == CONFIRMED:
        return Transition(session)  # said already (a retry), or it counts already
    if confirmation["state"] == DISPUTED:
        raise SessionError(409, f"session {session_id} was disputed by {confirmation['disputed_by']}")
    return moved(session, SessionConfirmed(session_id=session_id, confirmed_by=actor), now)


def dispute(doc: Doc | None, session_id: str, actor: str, reason: DisputeReason, now: datetime) -> Transition:
    """The partner of the participant who completed the session says it did not take place as
    claimed, before the deadline: the session ends disputed and never counts."""
    session = require(doc, session_id, actor)
    if session["status"] != "completed":
        raise conflict(session, "dispute")
    confirmation = session["confirmation"]
    if confirmation["state"] == DISPUTED:
        if confirmation["disputed_by"] == actor:
            return Transition(session)
        raise SessionError(409, f"session {session_id} is disputed already")
    if confirmation["state"] == CONFIRMED:
        raise SessionError(409, f"session {session_id} is confirmed; it can no longer be disputed")
    if actor in confirmation["by"]:
        raise SessionError(409, f"{actor} confirmed session {session_id}; only the partner may dispute it")
    if _closed(confirmation["deadline"], now):
        closed_at = confirmation["deadline"]
        raise SessionError(409, f"the window to dispute session {session_id} closed at {closed_at}")
    return moved(session, SessionDisputed(session_id=session_id, disputed_by=actor, reason=reason), now)


def contest(
    doc: Doc | None, session_id: str, actor: str, reason: ContestReason | None, now: datetime
) -> Transition:
    """The learner named as a no-show contests the claim before the deadline: it costs nobody."""
    session = require(doc, session_id, actor)
    claim = session["no_show_claim"]
    if claim is None:
        raise SessionError(409, f"session {session_id} has no no-show claim to contest")
    if claim["no_show"] != actor:
        raise SessionError(409, f"the no-show claim of session {session_id} names the other participant")
    if claim["state"] == CONTESTED:
        return Transition(session)
    if claim["state"] != PENDING:
        raise SessionError(409, f"the no-show claim of session {session_id} is {claim['state']}")
    if _closed(claim["deadline"], now):
        raise SessionError(409, f"the window to contest session {session_id} closed at {claim['deadline']}")
    return moved(session, NoShowContested(session_id=session_id, contested_by=actor, reason=reason), now)


def settle_due(doc: Doc | None, session_id: str, now: datetime) -> Transition | None:
    """What the sweep does at ``now``: confirm a completion nobody disputed in time, uphold a
    no-show claim nobody contested in time. ``None``: no such session."""
    if doc is None:
        return None
    session = upgraded(doc)
    confirmation, claim = session["confirmation"], session["no_show_claim"]
    if _due(confirmation, now):
        return moved(session, SessionConfirmed(session_id=session_id), now)
    if _due(claim, now):
        assert claim is not None
        upheld = NoShowUpheld(session_id=session_id, no_show=claim["no_show"], claimed_by=claim["claimed_by"])
        return moved(session, upheld, now)
    return Transition(session)
