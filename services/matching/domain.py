"""Matching rules (pure): keys, levels, ticket documents, and what a command or a decision emits.

The queue is a projection of ``lemma.matching.v1`` (``projection.py``): the HTTP commands only
publish MatchRequested / MatchCancelled, the matcher (``matcher.py``, deciding from its
in-memory ``book.py`` with ``engine.py``) publishes MatchFound / MatchExpired, and every
ticket's state is what the skill's partition says (``shared.ticket_log``: the first effective
event wins). Documents (collection -> key -> doc):

- ``tickets``: ``ticket_id`` -> the ticket (its status is the truth of the log);
- ``waiting``: ``f"{skill}/{ticket_id}"`` -> ``{ticket_id}``, the queue, scanned by ``f"{skill}/"``;
- ``open``: ``f"{learner_id}/{skill}"`` -> ``{ticket_id}``, a learner's one open ticket in a skill;
- ``matches``: ``match_id`` -> the two tickets and whether their session has ended;
- ``busy``: ``f"{learner_id}/{skill}"`` -> ``{match_id}``, the learner's latest match in a skill;
- ``partners``: ``f"{learner_id}/{skill}"`` -> ``{partners: [...], matches: [...]}``, their latest
  partners, oldest first, and the matches they met in (``partners.PartnerMemory`` merges them);
- ``promised``: ``ticket_id`` -> ``{match_id, at}``, tickets a decision named that the log has
  not settled yet (so the matcher does not offer them twice);
- ``levels``: ``f"{learner_id}/{skill}"`` -> the learner's level.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from services.matching.engine import Pair, Ticket
from shared.errors import Refused
from shared.events.envelope import deterministic_id
from shared.events.payloads import MatchCancelled, MatchedTicket, MatchExpired, MatchFound, MatchRequested
from shared.ticket_log import CANCELLED, EXPIRED, MATCHED, WAITING

Doc = dict[str, Any]

TICKETS: Final = "tickets"
WAITING_INDEX: Final = "waiting"
OPEN: Final = "open"
MATCHES: Final = "matches"
BUSY: Final = "busy"
PARTNERS: Final = "partners"
PROMISED: Final = "promised"
LEVELS: Final = "levels"

STATUS_WAITING: Final = WAITING
STATUS_MATCHED: Final = MATCHED
STATUS_CANCELLED: Final = CANCELLED
STATUS_EXPIRED: Final = EXPIRED

#: How many partners per learner and skill the projection remembers (the rule uses the last N).
PARTNERS_KEPT: Final = 10

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


class Busy(TicketError):
    """The learner is in a session of this skill that has not ended (409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


# -- keys and times -------------------------------------------------------------------------------


def waiting_prefix(skill: str) -> str:
    return f"{skill}/"


def waiting_key(skill: str, ticket_id: str) -> str:
    return f"{waiting_prefix(skill)}{ticket_id}"


def learner_key(learner_id: str, skill: str) -> str:
    """The key of a learner's documents in a skill (``open``, ``busy``, ``partners``, ``levels``)."""
    return f"{learner_id}/{skill}"


open_key = learner_key
level_key = learner_key


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


# -- tickets --------------------------------------------------------------------------------------


def ticket_doc(requested: MatchRequested, queued_at: datetime) -> Doc:
    """A ticket as the log opened it. ``queued_at`` (the event's time) starts its time to live;
    ``requested_at`` (kept by a requeued ticket) sets its place and window."""
    return {
        "ticket_id": requested.ticket_id,
        "learner_id": requested.learner_id,
        "skill": requested.skill,
        "specialty": requested.specialty,
        "format": requested.format,
        "level": requested.level,
        "status": STATUS_WAITING,
        "requested_at": stamp(requested.requested_at),
        "queued_at": stamp(queued_at),
        "requeue_of": requested.requeue_of,
        "match_id": None,
        "session_id": None,
        "partner_id": None,
        "closed_at": None,
        "reason": None,
    }


def match_id_for(ticket_a: str, ticket_b: str) -> str:
    """The same two tickets always give the same match (and session) id, whatever their order."""
    first, second = sorted((ticket_a, ticket_b))
    return deterministic_id("match", first, second)


def agreed(newer: str | None, older: str | None) -> str | None:
    """A preference both tickets accept: the shared one, the only one given, else the older ticket's."""
    if newer is None:
        return older
    if older is None or older == newer:
        return newer
    return older


def match_found(older: Mapping[str, Any], newer: Mapping[str, Any], *, now: datetime) -> MatchFound:
    """The MatchFound of two waiting tickets; ``older`` is the one that waited longer."""
    waited = now - parse_stamp(str(older["requested_at"]))
    return MatchFound(
        match_id=match_id_for(str(older["ticket_id"]), str(newer["ticket_id"])),
        skill=str(newer["skill"]),
        specialty=agreed(newer.get("specialty"), older.get("specialty")),
        format=agreed(newer.get("format"), older.get("format")),
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


def expired(ticket: Mapping[str, Any]) -> MatchExpired:
    return MatchExpired(ticket_id=ticket["ticket_id"], learner_id=ticket["learner_id"], skill=ticket["skill"])


def request_refused(
    learner_id: str, skill: str, *, busy: Mapping[str, Any] | None, match: Mapping[str, Any] | None
) -> None:
    """Refuse a request while the learner's latest match in the skill has a session still open."""
    if busy is not None and match is not None and not match.get("ended"):
        raise Busy(
            f"{learner_id} is in session {busy['match_id']} of {skill}, which has not ended; "
            "request a partner once it has"
        )


def cancel_request(ticket: Mapping[str, Any], *, by: str, by_ops: bool) -> MatchCancelled | None:
    """What cancelling publishes; ``None`` when the ticket is already cancelled (nothing to do)."""
    if ticket["learner_id"] != by and not by_ops:
        raise NotOwner("only the ticket's learner may cancel it")
    status = ticket["status"]
    if status == STATUS_CANCELLED:
        return None
    if status != STATUS_WAITING:
        raise NotOpen(f"ticket {ticket['ticket_id']} is {status}; only a waiting ticket can be cancelled")
    reason = "cancelled by learner" if ticket["learner_id"] == by else "cancelled by an operator"
    return MatchCancelled(
        ticket_id=ticket["ticket_id"], learner_id=ticket["learner_id"], skill=ticket["skill"], reason=reason
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
        "requeue_of": ticket.get("requeue_of"),
    }


# -- decisions ------------------------------------------------------------------------------------


def engine_ticket(doc: Mapping[str, Any]) -> Ticket:
    """The engine's view of a waiting ticket's document."""
    return Ticket(
        ticket_id=doc["ticket_id"],
        learner_id=doc["learner_id"],
        level=float(doc["level"]),
        requested_at=parse_stamp(doc["requested_at"]),
        specialty=doc.get("specialty"),
        format=doc.get("format"),
        queued_at=parse_stamp(doc["queued_at"]) if doc.get("queued_at") else None,
    )


def pair_found(pair: Pair, skill: str, *, now: datetime, match_id: str | None = None) -> MatchFound:
    """The MatchFound of a pair the engine made, at the levels the tickets were matched at (as
    ``match_found`` gives it for their documents)."""
    older, newer = pair.older, pair.newer
    waited = now - older.requested_at
    return MatchFound(
        match_id=match_id or match_id_for(older.ticket_id, newer.ticket_id),
        skill=skill,
        specialty=agreed(newer.specialty, older.specialty),
        format=agreed(newer.format, older.format),
        tickets=(
            MatchedTicket(ticket_id=older.ticket_id, learner_id=older.learner_id, level=older.level),
            MatchedTicket(ticket_id=newer.ticket_id, learner_id=newer.learner_id, level=newer.level),
        ),
        level_gap=round(abs(older.level - newer.level), 4),
        waited_ms=max(int(waited.total_seconds() * 1000), 0),
    )


def ticket_expired(ticket: Ticket, skill: str) -> MatchExpired:
    return MatchExpired(ticket_id=ticket.ticket_id, learner_id=ticket.learner_id, skill=skill)
