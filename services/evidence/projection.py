"""The evidence fold (pure): session facts from ``lemma.sessions.v1``, one item per rating.

Collections: ``sessions`` (session facts by session id), ``evidence`` (the all-skills
trail), ``evidence_by_skill`` (the per-skill trails) and ``evidence_ids`` (one index
document per evidence id). The index, not the trail key, decides whether a rating was
already recorded: a second copy of a rating under a new event id and a later time has the
same evidence id (it follows from the rating id) but would get another trail key.

A rating counts only once its session is confirmed. A SessionCompleted with a deadline
(``confirm_by``) leaves the session ``confirmation: pending``, and a rating folded then is
checked and held in the session's document (``held``: evidence id -> the evidence it makes,
dated as the rating). SessionConfirmed records the held evidence, as it would have been recorded
when the rating came, and emits it; SessionDisputed drops it (``confirmation: disputed``). All
of a session's events share its partition, so they come in the order the sessions service
wrote them. A SessionCompleted logged before confirmations has no deadline and counts at once:
its documents are what they always were, and a confirmed session's document goes back to that
shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.evidence.domain import (
    SessionFacts,
    evidence_from_rating,
    evidence_id_for,
    skill_trail_key,
    trail_key,
)
from shared.catalog import Catalog
from shared.errors import EventRefused
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
    SessionScheduled,
    SessionStarted,
)
from shared.events.registry import Topic
from shared.projection.fold import NOTHING, CatchUpPhase, Changes, Doc, DocRef, Outcome

SESSIONS = "sessions"
EVIDENCE = "evidence"
EVIDENCE_BY_SKILL = "evidence_by_skill"
EVIDENCE_IDS = "evidence_ids"
#: ``sessions/{id}.confirmation`` while the session waits on the partner, and once disputed
#: (absent: it counts, or is not completed)
PENDING, DISPUTED = "pending", "disputed"


class EvidenceProjection:
    name = "evidence"
    #: Every document is a session's or a rating's, and its records are keyed by the session:
    #: a rebuild may fold the partitions apart (``shared.rebuild_workers``).
    catch_up_phases = (CatchUpPhase((Topic.SESSIONS,), apart=True),)

    def __init__(self, catalog: Catalog) -> None:
        """``catalog``: what ratings are checked against (skill, specialty, rubric)."""
        self.catalog = catalog

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, RatingSubmitted):
            return [(SESSIONS, data.session_id), (EVIDENCE_IDS, evidence_id_for(data.rating_id))]
        session_id = getattr(data, "session_id", None)
        return [(SESSIONS, session_id)] if session_id else []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, RatingSubmitted):
            return self._rating(docs, event, data)
        if isinstance(data, SessionConfirmed):
            return self._confirmed(docs, data)
        return Outcome(changes=self.fold(docs, event))

    def fold(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Changes:
        """The changes of ``apply``, without the evidence to emit (catch-up)."""
        data = event.data
        if isinstance(data, SessionScheduled):
            ref = (SESSIONS, data.session_id)
            if docs.get(ref) is not None:
                return {}
            doc = {
                "skill": data.skill,
                "specialty": data.specialty,
                "format": data.format,
                "participants": list(data.participants),
                "status": "scheduled",
            }
            return {ref: doc}
        if isinstance(data, SessionStarted | SessionCompleted | SessionAbandoned):
            ref = (SESSIONS, data.session_id)
            current = docs.get(ref)
            if current is None:
                raise EventRefused(f"{event.type} for unknown session {data.session_id}")
            status = {
                SessionStarted: "started",
                SessionCompleted: "completed",
                SessionAbandoned: "abandoned",
            }[type(data)]
            if current["status"] in ("completed", "abandoned"):
                return {}  # terminal; a redelivery changes nothing
            if isinstance(data, SessionCompleted) and not data.counts_at_once:
                return {ref: {**current, "status": status, "confirmation": PENDING, "held": {}}}
            return {ref: {**current, "status": status}}
        if isinstance(data, RatingSubmitted):
            return self._rating(docs, event, data).changes
        if isinstance(data, SessionConfirmed):
            return self._confirmed(docs, data).changes
        if isinstance(data, SessionDisputed):
            ref = (SESSIONS, data.session_id)
            current = docs.get(ref)
            if current is None or current.get("confirmation") != PENDING:
                return {}  # unknown here, or settled already (a redelivery)
            kept = {k: v for k, v in current.items() if k != "held"}
            return {ref: {**kept, "confirmation": DISPUTED}}  # its ratings never count
        return {}

    def _confirmed(self, docs: Mapping[DocRef, Doc | None], data: SessionConfirmed) -> Outcome:
        """The session counts: its held ratings become evidence, dated as they came."""
        ref = (SESSIONS, data.session_id)
        current = docs.get(ref)
        if current is None or current.get("confirmation") != PENDING:
            return NOTHING  # unknown here, or settled already (a redelivery)
        changes: dict[DocRef, Doc | None] = {
            ref: {k: v for k, v in current.items() if k not in ("confirmation", "held")}
        }
        emitted: list[EvidenceRecorded] = []
        for _, held in sorted(current["held"].items()):
            evidence = EvidenceRecorded.model_validate(held)
            changes.update(_recorded(evidence))
            emitted.append(evidence)
        return Outcome(changes=changes, emit=tuple(emitted))

    def _rating(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent, data: RatingSubmitted) -> Outcome:
        if docs.get((EVIDENCE_IDS, evidence_id_for(data.rating_id))) is not None:
            return NOTHING  # already recorded (same event again, or another copy of the rating)
        ref = (SESSIONS, data.session_id)
        session_doc = docs.get(ref)
        session = SessionFacts.from_doc(session_doc) if session_doc else None
        evidence = evidence_from_rating(session, data, event.time, self.catalog)
        assert session_doc is not None  # else refused above
        if session_doc.get("confirmation") == DISPUTED:
            # never counts; the sessions service takes no rating once disputed, so this is a copy
            # of one given before (an outbox may publish a record twice)
            return NOTHING
        if session_doc.get("confirmation") == PENDING:  # counts once the session is confirmed
            if evidence.evidence_id in session_doc["held"]:
                return NOTHING
            held = {**session_doc["held"], evidence.evidence_id: evidence.model_dump(mode="json")}
            return Outcome(changes={ref: {**session_doc, "held": dict(sorted(held.items()))}})
        return Outcome(changes=_recorded(evidence), emit=(evidence,))


def _recorded(evidence: EvidenceRecorded) -> dict[DocRef, Doc | None]:
    """The documents that record ``evidence``: both trails and the index, keyed by when it happened."""
    learner, eid, at = evidence.learner_id, evidence.evidence_id, evidence.occurred_at
    by_time = trail_key(learner, at, eid)
    by_skill = skill_trail_key(learner, evidence.skill, at, eid)
    index = {"learner_id": learner, "skill": evidence.skill, "trail_key": by_time, "skill_key": by_skill}
    item = evidence.model_dump(mode="json")  # one document under two keys (documents are never mutated)
    return {(EVIDENCE, by_time): item, (EVIDENCE_BY_SKILL, by_skill): item, (EVIDENCE_IDS, eid): index}
