"""The evidence fold (pure): session facts from ``lemma.sessions.v1``, one item per rating."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.evidence.domain import SessionFacts, evidence_from_rating, evidence_id_for, evidence_key
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionScheduled,
    SessionStarted,
)
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome

SESSIONS = "sessions"
EVIDENCE = "evidence"


class EvidenceProjection:
    name = "evidence"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, RatingSubmitted):
            key = evidence_key(data.ratee_id, data.skill, event.time, evidence_id_for(data.rating_id))
            return [(SESSIONS, data.session_id), (EVIDENCE, key)]
        session_id = getattr(data, "session_id", None)
        return [(SESSIONS, session_id)] if session_id else []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, SessionScheduled):
            ref = (SESSIONS, data.session_id)
            if docs.get(ref) is not None:
                return NOTHING
            doc = {
                "skill": data.skill,
                "specialty": data.specialty,
                "format": data.format,
                "participants": list(data.participants),
                "status": "scheduled",
            }
            return Outcome(changes={ref: doc})
        if isinstance(data, SessionStarted | SessionCompleted | SessionAbandoned):
            ref = (SESSIONS, data.session_id)
            current = docs.get(ref)
            if current is None:
                raise ValueError(f"{event.type} for unknown session {data.session_id}")
            status = {
                SessionStarted: "started",
                SessionCompleted: "completed",
                SessionAbandoned: "abandoned",
            }[type(data)]
            if current["status"] in ("completed", "abandoned"):
                return NOTHING  # terminal; a redelivery changes nothing
            return Outcome(changes={ref: {**current, "status": status}})
        if isinstance(data, RatingSubmitted):
            session_doc = docs.get((SESSIONS, data.session_id))
            session = SessionFacts.from_doc(session_doc) if session_doc else None
            evidence = evidence_from_rating(session, data, event.time)
            ref = (
                EVIDENCE,
                evidence_key(evidence.learner_id, evidence.skill, event.time, evidence.evidence_id),
            )
            if docs.get(ref) is not None:
                return NOTHING  # already recorded
            return Outcome(changes={ref: evidence.model_dump(mode="json")}, emit=(evidence,))
        return NOTHING
