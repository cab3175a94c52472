"""Matching rules (pure): learner levels, tickets, the pairing rule and cancelling.

Documents the service keeps (collection -> key -> doc):

- ``tickets``: ``ticket_id`` -> the ticket (its status is the truth);
- ``waiting``: ``f"{skill}/{ticket_id}"`` -> ``{ticket_id, level, learner_id, requested_at}``,
  the queue index, scanned by the prefix ``f"{skill}/"``;
- ``open``: ``f"{learner_id}/{skill}"`` -> ``{ticket_id}``, one open ticket per learner and skill;
- ``levels``: ``f"{learner_id}/{skill}"`` -> the learner's level (folded by ``projection.py``).

The functions here take the loaded documents and return the document changes and the
event payloads; the API only loads, calls and commits. A ticket that leaves the queue
leaves ``waiting`` and ``open`` in the same change set, so it can never be assigned twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from shared.errors import Refused
from shared.events.envelope import deterministic_id
from shared.events.payloads import MatchCancelled, MatchedTicket, MatchFound, MatchRequested, Payload
from shared.projection.fold import DocRef

Doc = dict[str, Any]

TICKETS: Final = "tickets"
WAITING: Final = "waiting"
OPEN: Final = "open"
LEVELS: Final = "levels"

STATUS_WAITING: Final = "waiting"
STATUS_MATCHED: Final = "matched"
STATUS_CANCELLED: Final = "cancelled"
STATUS_EXPIRED: Final = "expired"

SELF_LEVELS: Final[Mapping[str, float]] = {
    "beginner": 1.0,
    "intermediate": 2.0,
    "advanced": 3.0,
    "expert": 4.0,
}
#: The level of a learner the service knows nothing about (no claim, no SCI): a beginner.
DEFAULT_LEVEL: Final = 1.0


class TicketError(Refused):
    """A command the ticket's state or the caller does not allow."""


class NotOwner(TicketError):
    """Only the ticket's learner (or an operator) may do this (403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail)


class NotOpen(TicketError):
    """The ticket has left the queue: matched or expired (409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


# -- keys and times -------------------------------------------------------------------------------


def waiting_prefix(skill: str) -> str:
    return f"{skill}/"


def waiting_key(skill: str, ticket_id: str) -> str:
    return f"{waiting_prefix(skill)}{ticket_id}"


def open_key(learner_id: str, skill: str) -> str:
    return f"{learner_id}/{skill}"


def level_key(learner_id: str, skill: str) -> str:
    return f"{learner_id}/{skill}"


def stamp(moment: datetime) -> str:
    """A UTC timestamp that sorts as a string (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# -- levels ---------------------------------------------------------------------------------------


def level_from_sci(sci: float) -> float:
    return round(1 + 3 * sci / 100, 4)


def level_from(self_level: str | None, sci: float | None) -> float | None:
    """An SCI, once present, wins over the self-declared level; ``None`` when neither is known."""
    if sci is not None:
        return level_from_sci(sci)
    if self_level is not None:
        return SELF_LEVELS[self_level]
    return None


def level_of(doc: Mapping[str, Any] | None) -> float:
    """The level a new ticket takes: the folded level, else a beginner's."""
    if doc is None or doc.get("level") is None:
        return DEFAULT_LEVEL
    return float(doc["level"])


# -- pairing --------------------------------------------------------------------------------------


def pick_partner(
    learner_id: str,
    skill: str,
    level: float,
    candidates: Sequence[Mapping[str, Any]],
    *,
    max_gap: float | None = None,
) -> Mapping[str, Any] | None:
    """The waiting ticket of the same skill, of another learner, whose level is closest
    (ties: the longest waiting, then the smaller ticket id).

    ``max_gap`` bounds the level gap (``None``: any gap pairs, the default of this first
    version, so nobody waits for ever while tickets do not expire yet).
    """
    eligible = [
        c
        for c in candidates
        if c["status"] == STATUS_WAITING
        and c["skill"] == skill
        and c["learner_id"] != learner_id
        and (max_gap is None or abs(float(c["level"]) - level) <= max_gap + 1e-9)
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (abs(float(c["level"]) - level), c["requested_at"], c["ticket_id"]))


def match_id_for(ticket_a: str, ticket_b: str) -> str:
    """The same two tickets always give the same match (and session) id, whatever their order."""
    first, second = sorted((ticket_a, ticket_b))
    return deterministic_id("match", first, second)


def _agreed(newer: str | None, older: str | None) -> str | None:
    """A preference both tickets accept: the shared one, the only one given, else the older ticket's."""
    if newer is None:
        return older
    if older is None or older == newer:
        return newer
    return older


@dataclass(frozen=True)
class MatchRequest:
    ticket_id: str
    learner_id: str
    skill: str
    specialty: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class Decision:
    """What a command decided: the caller's ticket as it now stands, whether anything changed,
    the document changes (``None`` deletes) and the payloads to publish, in order."""

    ticket: Doc
    changed: bool
    changes: dict[DocRef, Doc | None] = field(default_factory=dict)
    emit: tuple[Payload, ...] = ()


def new_ticket(request: MatchRequest, *, level: float, now: datetime) -> Doc:
    return {
        "ticket_id": request.ticket_id,
        "learner_id": request.learner_id,
        "skill": request.skill,
        "specialty": request.specialty,
        "format": request.format,
        "level": level,
        "status": STATUS_WAITING,
        "requested_at": stamp(now),
        "match_id": None,
        "session_id": None,
        "partner_id": None,
        "closed_at": None,
    }


def request_match(
    request: MatchRequest,
    *,
    level: float,
    now: datetime,
    open_ticket: Mapping[str, Any] | None,
    waiting: Sequence[Mapping[str, Any]],
    max_gap: float | None = None,
) -> Decision:
    """Open a ticket and pair it at once when a partner waits.

    ``open_ticket`` is the learner's open ticket in the skill (if any) and ``waiting`` the
    tickets in the skill's queue. A second request while one waits returns that ticket.
    """
    if (
        open_ticket is not None
        and open_ticket["status"] == STATUS_WAITING
        and open_ticket["learner_id"] == request.learner_id
        and open_ticket["skill"] == request.skill
    ):
        return Decision(ticket=dict(open_ticket), changed=False)
    ticket = new_ticket(request, level=level, now=now)
    requested = MatchRequested(
        ticket_id=request.ticket_id,
        learner_id=request.learner_id,
        skill=request.skill,
        specialty=request.specialty,
        format=request.format,
        level=level,
        requested_at=now,
    )
    partner = pick_partner(request.learner_id, request.skill, level, waiting, max_gap=max_gap)
    if partner is None:
        return Decision(
            ticket=ticket,
            changed=True,
            changes={
                (TICKETS, request.ticket_id): ticket,
                (WAITING, waiting_key(request.skill, request.ticket_id)): {
                    "ticket_id": request.ticket_id,
                    "level": level,
                    "learner_id": request.learner_id,
                    "requested_at": ticket["requested_at"],
                },
                (OPEN, open_key(request.learner_id, request.skill)): {"ticket_id": request.ticket_id},
            },
            emit=(requested,),
        )
    found = match_found(partner, ticket, now=now)
    older = matched(partner, found, partner_id=request.learner_id, now=now)
    newer = matched(ticket, found, partner_id=str(partner["learner_id"]), now=now)
    return Decision(
        ticket=newer,
        changed=True,
        changes={
            (TICKETS, request.ticket_id): newer,
            (TICKETS, older["ticket_id"]): older,
            (WAITING, waiting_key(request.skill, older["ticket_id"])): None,
            (OPEN, open_key(older["learner_id"], request.skill)): None,
            (OPEN, open_key(request.learner_id, request.skill)): None,
        },
        emit=(requested, found),
    )


def match_found(older: Mapping[str, Any], newer: Mapping[str, Any], *, now: datetime) -> MatchFound:
    """The MatchFound of two tickets; ``older`` is the one that waited."""
    waited = now - parse_stamp(str(older["requested_at"]))
    return MatchFound(
        match_id=match_id_for(str(older["ticket_id"]), str(newer["ticket_id"])),
        skill=str(newer["skill"]),
        specialty=_agreed(newer.get("specialty"), older.get("specialty")),
        format=_agreed(newer.get("format"), older.get("format")),
        tickets=(
            MatchedTicket(
                ticket_id=older["ticket_id"], learner_id=older["learner_id"], level=float(older["level"])
            ),
            MatchedTicket(
                ticket_id=newer["ticket_id"], learner_id=newer["learner_id"], level=float(newer["level"])
            ),
        ),
        level_gap=round(abs(float(older["level"]) - float(newer["level"])), 4),
        waited_ms=max(int(waited.total_seconds() * 1000), 0),
    )


def matched(ticket: Mapping[str, Any], found: MatchFound, *, partner_id: str, now: datetime) -> Doc:
    """The ticket once paired: the session id is the match id (the sessions service uses it)."""
    return {
        **ticket,
        "status": STATUS_MATCHED,
        "match_id": found.match_id,
        "session_id": found.match_id,
        "partner_id": partner_id,
        "closed_at": stamp(now),
    }


# -- cancelling -----------------------------------------------------------------------------------


def cancel_ticket(ticket: Mapping[str, Any], *, by: str, by_ops: bool, now: datetime) -> Decision:
    """Take a waiting ticket out of the queue. Cancelling a cancelled ticket changes nothing."""
    if ticket["learner_id"] != by and not by_ops:
        raise NotOwner("only the ticket's learner may cancel it")
    status = ticket["status"]
    if status == STATUS_CANCELLED:
        return Decision(ticket=dict(ticket), changed=False)
    if status != STATUS_WAITING:
        raise NotOpen(f"ticket {ticket['ticket_id']} is {status}; only a waiting ticket can be cancelled")
    cancelled = {**ticket, "status": STATUS_CANCELLED, "closed_at": stamp(now)}
    reason = "cancelled by learner" if ticket["learner_id"] == by else "cancelled by an operator"
    return Decision(
        ticket=cancelled,
        changed=True,
        changes={
            (TICKETS, ticket["ticket_id"]): cancelled,
            (WAITING, waiting_key(ticket["skill"], ticket["ticket_id"])): None,
            (OPEN, open_key(ticket["learner_id"], ticket["skill"])): None,
        },
        emit=(
            MatchCancelled(
                ticket_id=ticket["ticket_id"],
                learner_id=ticket["learner_id"],
                skill=ticket["skill"],
                reason=reason,
            ),
        ),
    )


def ticket_view(ticket: Mapping[str, Any]) -> Doc:
    """The public shape of a ticket (the read route and the command answers)."""
    is_matched = ticket["status"] == STATUS_MATCHED
    return {
        "ticket_id": ticket["ticket_id"],
        "learner_id": ticket["learner_id"],
        "skill": ticket["skill"],
        "specialty": ticket.get("specialty"),
        "format": ticket.get("format"),
        "level": ticket["level"],
        "status": ticket["status"],
        "session_id": ticket.get("session_id") if is_matched else None,
        "partner_id": ticket.get("partner_id") if is_matched else None,
        "requested_at": ticket["requested_at"],
    }
