"""Evidence rules (pure): which ratings become evidence, and how evidence is addressed.

One evidence item per rating received in a completed session, by a participant,
about their partner. Items are keyed ``learner/skill/occurred_at/evidence_id`` so the
trail of a learner (or of one skill) is a key-prefix scan, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events.envelope import deterministic_id
from shared.events.payloads import EvidenceRecorded, RatingSubmitted


class NotEvidence(ValueError):
    """A rating that cannot become evidence (the reason goes to the dead-letter record)."""


@dataclass(frozen=True)
class SessionFacts:
    skill: str
    specialty: str | None
    format: str | None
    participants: tuple[str, str]
    status: str  # scheduled | started | completed | abandoned

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SessionFacts:
        return cls(
            skill=doc["skill"],
            specialty=doc.get("specialty"),
            format=doc.get("format"),
            participants=(doc["participants"][0], doc["participants"][1]),
            status=doc["status"],
        )


def evidence_id_for(rating_id: str) -> str:
    return deterministic_id("evidence", rating_id)


def trail_prefix(learner_id: str, skill: str | None = None) -> str:
    return f"{learner_id}/{skill}/" if skill else f"{learner_id}/"


def evidence_key(learner_id: str, skill: str, occurred_at: datetime, evidence_id: str) -> str:
    stamp = occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{trail_prefix(learner_id, skill)}{stamp}/{evidence_id}"


def evidence_from_rating(
    session: SessionFacts | None, rating: RatingSubmitted, occurred_at: datetime
) -> EvidenceRecorded:
    if session is None:
        raise NotEvidence(f"rating {rating.rating_id} names unknown session {rating.session_id}")
    if session.status != "completed":
        raise NotEvidence(f"rating {rating.rating_id} arrived for a session that is {session.status}")
    if rating.rater_id not in session.participants or rating.ratee_id not in session.participants:
        raise NotEvidence(f"rating {rating.rating_id} is not between the session's participants")
    if rating.rater_id == rating.ratee_id:
        raise NotEvidence(f"rating {rating.rating_id} is a self-rating")
    if rating.skill != session.skill:
        raise NotEvidence(f"rating {rating.rating_id} names skill {rating.skill}, session is {session.skill}")
    return EvidenceRecorded(
        evidence_id=evidence_id_for(rating.rating_id),
        learner_id=rating.ratee_id,
        skill=rating.skill,
        specialty=session.specialty,
        session_id=rating.session_id,
        rater_id=rating.rater_id,
        scores=dict(rating.scores),
        format=session.format,
        occurred_at=occurred_at,
    )
