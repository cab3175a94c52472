"""The matching fold (pure): the queue from ``lemma.matching.v1``, levels, sessions' ends.

- **Tickets** follow the log rule of ``shared.ticket_log``: in a skill's partition, the first
  effective event wins. MatchRequested opens a ticket (unless it is a copy or the learner already
  waits in the skill), MatchFound matches two waiting tickets, MatchCancelled / MatchExpired
  close a waiting one; anything naming a closed ticket is void. So the waiting queue after a
  restart or a rebuild is exactly what the log says, and no ticket is assigned twice.
- **Matches** remember both tickets and whether the session ended (SessionCompleted or
  SessionAbandoned on ``lemma.sessions.v1``; a session's id is its match id). When a session is
  abandoned because one learner did not show up, the fold emits a MatchRequested that puts the
  other learner back in the queue with their original ``requested_at`` (ahead of newer tickets,
  with the window they had earned); its ticket id derives from the match, so every copy of it
  is one ticket.
- **Levels**: each source keeps its newest fact: the claim with the greatest (event time, event
  id), the SciUpdated with the greatest (model, revision, calibration, as_of, event id). An SCI, once
  present, wins over the self-declared level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.matching.domain import (
    BUSY,
    LEVELS,
    MATCHES,
    OPEN,
    PARTNERS,
    PARTNERS_KEPT,
    PROMISED,
    STATUS_CANCELLED,
    STATUS_MATCHED,
    TICKETS,
    WAITING_INDEX,
    learner_key,
    level_from,
    parse_stamp,
    stamp,
    ticket_doc,
    waiting_key,
)
from shared.errors import EventRefused
from shared.events.envelope import CloudEvent, deterministic_id
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchFound,
    MatchRequested,
    SciUpdated,
    SessionAbandoned,
    SessionCompleted,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.ticket_log import state_after, state_after_refusal, takes_effect


def _version(doc: Mapping[str, Any] | None, field: str) -> tuple[str, str]:
    if doc is None or doc.get(field) is None:
        return ("", "")
    at, event_id = doc[field]
    return (str(at), str(event_id))


def _sci_version(doc: Mapping[str, Any] | None) -> tuple[int, int, int, str, str]:
    """(model, revision, calibration, as_of, event id) of the held SCI.

    A version stored before revisions ([as_of, event id]) counts as revision 0, one stored
    before calibrations ([revision, as_of, event id]) as calibration 0, and one stored before
    models ([revision, calibration, as_of, event id]) as model 0.
    """
    if doc is None or doc.get("sci_version") is None:
        return (-1, -1, -1, "", "")
    held = list(doc["sci_version"])
    if len(held) == 2:
        held = [0, *held]
    if len(held) == 3:
        held = [held[0], 0, *held[1:]]
    if len(held) == 4:
        held = [0, *held]
    model, revision, calibration, at, event_id = held
    return (int(model), int(revision), int(calibration), str(at), str(event_id))


def fold_level(doc: Mapping[str, Any] | None, event: CloudEvent) -> Doc | None:
    """The level document after ``event``; ``None`` when the event changes nothing."""
    data = event.data
    if not isinstance(data, SkillClaimed | SkillUnclaimed | SciUpdated):
        return None
    base: Doc = (
        dict(doc)
        if doc is not None
        else {
            "learner_id": data.learner_id,
            "skill": data.skill,
            "self_level": None,
            "claim_version": None,
            "sci": None,
            "sci_version": None,
            "level": None,
        }
    )
    if isinstance(data, SciUpdated):
        sci_version = (data.model, data.revision, data.calibration, stamp(data.as_of), event.id)
        if sci_version <= _sci_version(doc):
            return None  # an older or the same update
        base.update(sci=data.sci, sci_version=list(sci_version))
    else:
        version = (stamp(event.time), event.id)
        if version <= _version(doc, "claim_version"):
            return None
        self_level = data.self_level if isinstance(data, SkillClaimed) else None
        base.update(self_level=self_level, claim_version=list(version))
    base["level"] = level_from(base["self_level"], base["sci"])
    return base


def met_again(doc: Mapping[str, Any] | None, partner: str, match_id: str) -> Doc:
    """A learner's ``partners`` document after one more match: the latest partners and the
    matches they came from (a document from before match ids has none for its older ones)."""
    partners = [*(doc["partners"] if doc else []), partner]
    matches = [*(doc.get("matches", []) if doc else []), match_id]
    return {"partners": partners[-PARTNERS_KEPT:], "matches": matches[-PARTNERS_KEPT:]}


def requeue_ticket_id(match_id: str, learner_id: str) -> str:
    return deterministic_id("requeue", match_id, learner_id)


def _status(doc: Mapping[str, Any] | None) -> str | None:
    return None if doc is None else str(doc["status"])


class MatchingProjection:
    def __init__(self, name: str = "matching") -> None:
        """``name`` is the consumer group and the name the offsets are stored under: one for
        every replica, each folding the partitions the group assigns it into the one store."""
        self.name = name

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, SkillClaimed | SkillUnclaimed | SciUpdated):
            return [(LEVELS, learner_key(data.learner_id, data.skill))]
        if isinstance(data, MatchRequested):
            return [(TICKETS, data.ticket_id), (OPEN, learner_key(data.learner_id, data.skill))]
        if isinstance(data, MatchFound):
            refs: list[DocRef] = [(MATCHES, data.match_id)]
            for t in data.tickets:
                refs += [(TICKETS, t.ticket_id), (PARTNERS, learner_key(t.learner_id, data.skill))]
            return refs
        if isinstance(data, MatchCancelled | MatchExpired):
            return [(TICKETS, data.ticket_id)]
        if isinstance(data, SessionCompleted | SessionAbandoned):
            return [(MATCHES, data.session_id)]
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, SkillClaimed | SkillUnclaimed | SciUpdated):
            ref = (LEVELS, learner_key(data.learner_id, data.skill))
            updated = fold_level(docs.get(ref), event)
            return NOTHING if updated is None else Outcome(changes={ref: updated})
        if isinstance(data, MatchRequested):
            return self._requested(docs, data, event)
        if isinstance(data, MatchFound):
            return self._found(docs, data, event)
        if isinstance(data, MatchCancelled | MatchExpired):
            return self._closed(docs, data, event)
        if isinstance(data, SessionCompleted | SessionAbandoned):
            return self._session_ended(docs, data)
        return NOTHING

    def _requested(
        self, docs: Mapping[DocRef, Doc | None], data: MatchRequested, event: CloudEvent
    ) -> Outcome:
        ticket = docs.get((TICKETS, data.ticket_id))
        pointer = docs.get((OPEN, learner_key(data.learner_id, data.skill)))
        states = {data.ticket_id: _status(ticket)}
        if not takes_effect(data, states, learner_has_open_ticket=pointer is not None):
            if state_after_refusal(data, states) is None:
                return NOTHING  # a copy
            # the learner already waits in the skill: the ticket is closed, so a copy stays void
            other = pointer["ticket_id"] if pointer else "?"
            refused = {
                **ticket_doc(data, event.time),
                "status": STATUS_CANCELLED,
                "closed_at": stamp(event.time),
                "reason": f"the learner already waits in this skill (ticket {other})",
                "refused": True,
            }
            return Outcome(changes={(TICKETS, data.ticket_id): refused})
        return Outcome(
            changes={
                (TICKETS, data.ticket_id): ticket_doc(data, event.time),
                (OPEN, learner_key(data.learner_id, data.skill)): {"ticket_id": data.ticket_id},
                (WAITING_INDEX, waiting_key(data.skill, data.ticket_id)): {"ticket_id": data.ticket_id},
            }
        )

    def _found(self, docs: Mapping[DocRef, Doc | None], data: MatchFound, event: CloudEvent) -> Outcome:
        tickets = [docs.get((TICKETS, t.ticket_id)) for t in data.tickets]
        states = {t.ticket_id: _status(doc) for t, doc in zip(data.tickets, tickets, strict=True)}
        promises: dict[DocRef, Doc | None] = {(PROMISED, t.ticket_id): None for t in data.tickets}
        if not takes_effect(data, states):
            return Outcome(changes=promises)  # void: a ticket was closed first; free the promise
        closed = stamp(event.time)
        changes: dict[DocRef, Doc | None] = dict(promises)
        sides: list[Doc] = []
        for me, other, doc in ((0, 1, tickets[0]), (1, 0, tickets[1])):
            assert doc is not None
            learner, partner = data.tickets[me].learner_id, data.tickets[other].learner_id
            if doc["learner_id"] != learner or doc["skill"] != data.skill:
                raise EventRefused(
                    f"MatchFound {data.match_id} names ticket {doc['ticket_id']} of another learner"
                )
            changes[(TICKETS, doc["ticket_id"])] = {
                **doc,
                "level": data.tickets[me].level,  # the level it was matched at
                "status": STATUS_MATCHED,
                "match_id": data.match_id,
                "session_id": data.match_id,
                "partner_id": partner,
                "closed_at": closed,
            }
            changes[(WAITING_INDEX, waiting_key(data.skill, doc["ticket_id"]))] = None
            changes[(OPEN, learner_key(learner, data.skill))] = None
            changes[(BUSY, learner_key(learner, data.skill))] = {"match_id": data.match_id}
            changes[(PARTNERS, learner_key(learner, data.skill))] = met_again(
                docs.get((PARTNERS, learner_key(learner, data.skill))), partner, data.match_id
            )
            sides.append({k: doc[k] for k in ("ticket_id", "learner_id", "specialty", "format")})
            sides[-1]["level"] = data.tickets[me].level
            sides[-1]["requested_at"] = doc["requested_at"]
        early = docs.get((MATCHES, data.match_id))  # its session's end, folded first
        match = {"match_id": data.match_id, "skill": data.skill, "tickets": sides, "ended": early is not None}
        changes[(MATCHES, data.match_id)] = match
        if early is not None and early.get("no_show"):
            return Outcome(changes=changes, emit=(requeue(match, early["no_show"], data.match_id),))
        return Outcome(changes=changes)

    def _closed(
        self, docs: Mapping[DocRef, Doc | None], data: MatchCancelled | MatchExpired, event: CloudEvent
    ) -> Outcome:
        ticket = docs.get((TICKETS, data.ticket_id))
        if ticket is None or not takes_effect(data, {data.ticket_id: _status(ticket)}):
            return NOTHING
        reason = data.reason if isinstance(data, MatchCancelled) else "no acceptable partner in time"
        return Outcome(
            changes={
                (TICKETS, data.ticket_id): {
                    **ticket,
                    "status": state_after(data),
                    "closed_at": stamp(event.time),
                    "reason": reason,
                },
                (WAITING_INDEX, waiting_key(data.skill, data.ticket_id)): None,
                (OPEN, learner_key(data.learner_id, data.skill)): None,
                (PROMISED, data.ticket_id): None,
            }
        )

    def _session_ended(
        self, docs: Mapping[DocRef, Doc | None], data: SessionCompleted | SessionAbandoned
    ) -> Outcome:
        ref = (MATCHES, data.session_id)
        match = docs.get(ref)
        no_show = data.no_show if isinstance(data, SessionAbandoned) else None
        if match is None:
            # Kafka keeps no order across topics: the end may come before its MatchFound. Keep
            # it; the MatchFound then creates the match as ended (and requeues on a no-show).
            return Outcome(changes={ref: {"match_id": data.session_id, "ended": True, "no_show": no_show}})
        if match["ended"]:
            return NOTHING  # already ended
        ended = {**match, "ended": True}
        if no_show is None:
            return Outcome(changes={ref: ended})
        return Outcome(changes={ref: ended}, emit=(requeue(match, no_show, data.session_id),))


def requeue(match: Mapping[str, Any], no_show: str, session_id: str) -> MatchRequested:
    """The ticket that puts the learner who showed up back in the queue, first in line."""
    if no_show not in [t["learner_id"] for t in match["tickets"]]:
        raise EventRefused(f"no-show {no_show} is not in match {session_id}")
    stayed = next(t for t in match["tickets"] if t["learner_id"] != no_show)
    return MatchRequested(
        ticket_id=requeue_ticket_id(session_id, stayed["learner_id"]),
        learner_id=stayed["learner_id"],
        skill=match["skill"],
        specialty=stayed["specialty"],
        format=stayed["format"],
        level=stayed["level"],
        requested_at=parse_stamp(stayed["requested_at"]),
        requeue_of=session_id,
    )
