"""The evidence fold (pure): session facts from ``lemma.sessions.v1``, one item per rating.

Collections: ``sessions`` (session facts by session id), ``evidence`` (the all-skills
trail), ``evidence_by_skill`` (the per-skill trails) and ``evidence_ids`` (one index
document per evidence id). The index, not the trail key, decides whether a rating was
already recorded: a second copy of a rating under a new event id and a later time has the
same evidence id (it follows from the rating id) but would get another trail key.
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
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionScheduled,
    SessionStarted,
)
from shared.events.registry import Topic
from shared.projection.fold import NOTHING, CatchUpPhase, Changes, Doc, DocRef, Outcome

SESSIONS = "sessions"
EVIDENCE = "evidence"
EVIDENCE_BY_SKILL = "evidence_by_skill"
EVIDENCE_IDS = "evidence_ids"


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
            return {ref: {**current, "status": status}}
        if isinstance(data, RatingSubmitted):
            return self._rating(docs, event, data).changes
        return {}

    def _rating(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent, data: RatingSubmitted) -> Outcome:
        if docs.get((EVIDENCE_IDS, evidence_id_for(data.rating_id))) is not None:
            return NOTHING  # already recorded (same event again, or another copy of the rating)
        session_doc = docs.get((SESSIONS, data.session_id))
        session = SessionFacts.from_doc(session_doc) if session_doc else None
        evidence = evidence_from_rating(session, data, event.time, self.catalog)
        learner, eid = evidence.learner_id, evidence.evidence_id
        by_time = trail_key(learner, event.time, eid)
        by_skill = skill_trail_key(learner, evidence.skill, event.time, eid)
        index = {"learner_id": learner, "skill": evidence.skill, "trail_key": by_time, "skill_key": by_skill}
        item = evidence.model_dump(mode="json")  # one document under two keys (documents are never mutated)
        changes: dict[DocRef, Doc | None] = {
            (EVIDENCE, by_time): item,
            (EVIDENCE_BY_SKILL, by_skill): item,
            (EVIDENCE_IDS, eid): index,
        }
        return Outcome(changes=changes, emit=(evidence,))
