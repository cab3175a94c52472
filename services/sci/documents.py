"""The sci store's documents (pure): their keys, the ``Facts`` they hold, the score and the
SciUpdated a document gives. The fold that writes them is ``services.sci.projection``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.sci.domain import (
    SCORE_MODEL,
    Correction,
    EvidenceItem,
    Facts,
    RubricTally,
    Score,
    Tally,
    score,
    utc,
)
from shared.events.payloads import SciUpdated
from shared.projection.fold import Doc

SCORES = "scores"
RECEIVED = "received"
SESSION_SKILL = "session_skill"
CALIBRATIONS = "calibrations"


def score_key(learner_id: str, skill: str) -> str:
    return f"{learner_id}/{skill}"


def received_key(skill: str, learner_id: str, session_id: str) -> str:
    return f"{skill}/{learner_id}/{session_id}"


def received_prefix(skill: str, learner_id: str | None = None) -> str:
    """Scan prefix of a skill's received evidence, or of one learner's in it."""
    return f"{skill}/" if learner_id is None else f"{skill}/{learner_id}/"


def facts_from_doc(doc: Mapping[str, Any]) -> Facts:
    last = doc["last_evidence_at"]
    return Facts(
        sessions=int(doc["sessions"]),
        no_shows=int(doc["no_shows"]),
        raters={rater: Tally.from_doc(t) for rater, t in doc["raters"].items()},
        last_evidence_at=utc(datetime.fromisoformat(last)) if last else None,
        rubric={rater: RubricTally.from_doc(t) for rater, t in doc.get("rubric", {}).items()},
    )


def facts_to_doc(facts: Facts) -> dict[str, Any]:
    """The facts' fields of a ``scores`` document (raters already in sorted order)."""
    last = facts.last_evidence_at
    return {
        "sessions": facts.sessions,
        "no_shows": facts.no_shows,
        "raters": {rater: tally.to_doc() for rater, tally in facts.raters.items()},
        "last_evidence_at": last.isoformat() if last else None,
        "rubric": {rater: tally.to_doc() for rater, tally in facts.rubric.items()},
    }


def items_of(received: Mapping[str, Any]) -> list[EvidenceItem]:
    """The evidence items of one ``received`` document."""
    return [EvidenceItem.from_doc(evidence_id, item) for evidence_id, item in received["items"].items()]


def visible(doc: Mapping[str, Any] | None) -> bool:
    """Shown by the read routes: a claimed skill or one with evidence (no-shows alone are not)."""
    return doc is not None and (bool(doc["claimed"]) or bool(doc["raters"]))


def as_of_of(doc: Mapping[str, Any]) -> datetime | None:
    return utc(datetime.fromisoformat(doc["as_of"])) if doc["as_of"] else None


def facts_at(doc: Mapping[str, Any]) -> tuple[str, Facts, datetime]:
    """(learner, facts, as-of) of a ``scores`` document that holds facts."""
    as_of = as_of_of(doc)
    assert as_of is not None, "a document with facts has an as-of"
    return doc["learner_id"], facts_from_doc(doc), as_of


def current_score(doc: Mapping[str, Any], correction: Correction, at: datetime | None = None) -> Score:
    """The score at ``at`` (default: the document's as-of), with the tier earned at the newest evidence."""
    facts = facts_from_doc(doc)
    when = at or as_of_of(doc)
    assert when is not None, "a document with facts has an as-of"
    return score(facts, when, correction, earned_at=facts.last_evidence_at, learner_id=doc["learner_id"])


def sci_updated(doc: Mapping[str, Any], new: Score, correction: Correction) -> SciUpdated:
    return SciUpdated(
        learner_id=doc["learner_id"],
        skill=doc["skill"],
        sci=new.sci,
        practice=new.practice,
        proof=new.proof,
        reliability=new.reliability,
        freshness=new.freshness,
        tier=new.tier,
        sessions=new.sessions,
        as_of=new.as_of,
        revision=int(doc["facts"]),
        calibration=correction.ratings,
        model=SCORE_MODEL,
        last_evidence_at=new.last_evidence_at,
        band=new.band,
        rubric={d.dimension: d.level for d in new.rubric} or None,
    )


def _empty(learner_id: str, skill: str) -> Doc:
    return {
        "learner_id": learner_id,
        "skill": skill,
        "claimed": False,
        "facts": 0,
        "sessions": 0,
        "no_shows": 0,
        "raters": {},
        "rubric": {},
        "last_evidence_at": None,
        "as_of": None,
    }


def _later(current: str | None, at: datetime) -> str:
    """The later of a stored ISO time and ``at``, as ISO (a max: order-independent)."""
    moment = utc(at)
    if current is not None:
        stored = utc(datetime.fromisoformat(current))
        if stored >= moment:
            return stored.isoformat()
    return moment.isoformat()
