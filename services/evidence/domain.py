"""Evidence rules (pure): which ratings become evidence, and how evidence is addressed.

One evidence item per rating received in a completed session (once it is confirmed: the
fold holds it until then, ``services.evidence.projection``), by a participant,
about their partner, whose scores fit the skill's rubric in the catalog. Each item is
stored twice so every trail is one key-prefix scan, newest first:

- the all-skills trail, keyed ``learner/occurred_at/evidence_id``;
- the per-skill trail, keyed ``learner/skill/occurred_at/evidence_id``.

Key timestamps are UTC with a fixed width, so key order is time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from shared.catalog import Catalog
from shared.errors import EventRefused
from shared.events.envelope import deterministic_id
from shared.events.payloads import EvidenceRecorded, RatingSubmitted


class NotEvidence(EventRefused):
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


@lru_cache(maxsize=8192)
def evidence_id_for(rating_id: str) -> str:
    """The evidence id of a rating (cached: a fold asks for it twice, in ``refs`` and ``apply``)."""
    return deterministic_id("evidence", rating_id)


def trail_prefix(learner_id: str, skill: str | None = None) -> str:
    """The key prefix of a learner's trail (all skills, or one skill's)."""
    return f"{learner_id}/{skill}/" if skill else f"{learner_id}/"


def key_stamp(occurred_at: datetime) -> str:
    """Fixed-width UTC stamp (``YYYY-MM-DDTHH:MM:SS.ffffffZ``); a naive time is taken as UTC."""
    utc = occurred_at if occurred_at.tzinfo is None else occurred_at.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def trail_key(learner_id: str, occurred_at: datetime, evidence_id: str) -> str:
    """Key in the all-skills trail."""
    return f"{trail_prefix(learner_id)}{key_stamp(occurred_at)}/{evidence_id}"


def skill_trail_key(learner_id: str, skill: str, occurred_at: datetime, evidence_id: str) -> str:
    """Key in the per-skill trail."""
    return f"{trail_prefix(learner_id, skill)}{key_stamp(occurred_at)}/{evidence_id}"


def evidence_from_rating(
    session: SessionFacts | None, rating: RatingSubmitted, occurred_at: datetime, catalog: Catalog
) -> EvidenceRecorded:
    """The evidence a rating gives, or ``NotEvidence`` saying why it gives none."""
    rid = rating.rating_id
    if session is None:
        raise NotEvidence(f"rating {rid} names unknown session {rating.session_id}")
    if session.status != "completed":
        raise NotEvidence(f"rating {rid} arrived for a session that is {session.status}")
    if rating.rater_id not in session.participants or rating.ratee_id not in session.participants:
        raise NotEvidence(f"rating {rid} is not between the session's participants")
    if rating.rater_id == rating.ratee_id:
        raise NotEvidence(f"rating {rid} is a self-rating")
    if rating.skill != session.skill:
        raise NotEvidence(f"rating {rid} names skill {rating.skill}, session is {session.skill}")
    problems = catalog.problems(rating.skill, specialty=session.specialty, scores=dict(rating.scores))
    if problems:
        raise NotEvidence(f"rating {rid} does not fit the catalog: {'; '.join(problems)}")
    return EvidenceRecorded(
        evidence_id=evidence_id_for(rid),
        learner_id=rating.ratee_id,
        skill=rating.skill,
        specialty=session.specialty,
        session_id=rating.session_id,
        rater_id=rating.rater_id,
        scores=dict(rating.scores),
        format=session.format,
        occurred_at=occurred_at,
    )
