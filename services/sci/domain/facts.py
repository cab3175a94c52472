"""SCI facts: what the score knows of one learner's evidence, kept exactly.

Ratings are integer micro-points, so a rater's ``Tally`` is an exact sum and the same evidence
gives the same ``Facts``, bit for bit, in any folding order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from services.sci.domain.micro import to_micro
from services.sci.domain.rubric import RubricTally
from shared.errors import EventRefused
from shared.events.payloads import EvidenceRecorded
from shared.freshness import utc


@dataclass(frozen=True)
class EvidenceItem:
    """What the score needs of one piece of evidence (one rating received)."""

    evidence_id: str
    session_id: str
    rater_id: str
    mean: float  # mean rubric score, 1..5
    specialty: str | None
    occurred_at: datetime
    #: the rubric scores themselves (empty on items stored before they were kept)
    scores: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_event(cls, evidence: EvidenceRecorded) -> EvidenceItem:
        if not evidence.scores:
            raise EventRefused(f"evidence {evidence.evidence_id} has no rubric scores")
        return cls(
            evidence_id=evidence.evidence_id,
            session_id=evidence.session_id,
            rater_id=evidence.rater_id,
            mean=math.fsum(evidence.scores.values()) / len(evidence.scores),
            specialty=evidence.specialty,
            occurred_at=utc(evidence.occurred_at),
            scores=dict(sorted(evidence.scores.items())),
        )

    @classmethod
    def from_doc(cls, evidence_id: str, doc: Mapping[str, Any]) -> EvidenceItem:
        return cls(
            evidence_id=evidence_id,
            session_id=doc["session_id"],
            rater_id=doc["rater_id"],
            mean=float(doc["mean"]),
            specialty=doc.get("specialty"),
            occurred_at=utc(datetime.fromisoformat(doc["occurred_at"])),
            scores={d: int(v) for d, v in sorted(doc.get("scores", {}).items())},
        )

    def to_doc(self) -> dict[str, Any]:
        doc = {
            "session_id": self.session_id,
            "rater_id": self.rater_id,
            "mean": self.mean,
            "specialty": self.specialty,
            "occurred_at": self.occurred_at.isoformat(),
        }
        if self.scores:
            doc["scores"] = dict(self.scores)
        return doc


class Tally(NamedTuple):
    """The ratings a learner received from one rater: count, sum and sum of squares (micro-points)."""

    ratings: int = 0
    total: int = 0
    squares: int = 0

    def add(self, mean: float) -> Tally:
        micro = to_micro(mean)
        return Tally(self.ratings + 1, self.total + micro, self.squares + micro * micro)

    def to_doc(self) -> list[int]:
        return [self.ratings, self.total, self.squares]

    @classmethod
    def from_doc(cls, doc: Iterable[int]) -> Tally:
        return cls._make(doc)


@dataclass(frozen=True)
class Facts:
    """Everything the score depends on, kept exactly, so any folding order gives the same facts."""

    sessions: int = 0  # distinct sessions with evidence
    no_shows: int = 0  # no-show sessions that produced no evidence after all
    raters: Mapping[str, Tally] = field(default_factory=dict)
    last_evidence_at: datetime | None = None
    #: per rater, the residuals of the rubric scores they gave (``domain.rubric``); ratings folded
    #: before the scores were kept are in ``raters`` only
    rubric: Mapping[str, RubricTally] = field(default_factory=dict)

    @property
    def ratings(self) -> int:
        return sum(t.ratings for t in self.raters.values())

    def with_rating(
        self,
        rater_id: str,
        mean: float,
        occurred_at: datetime,
        *,
        new_session: bool,
        was_no_show: bool,
        scores: Mapping[str, int] | None = None,
    ) -> Facts:
        """These facts plus one rating. ``new_session``: the first evidence of its session;
        ``was_no_show``: that session was marked a no-show (it no longer counts as one);
        ``scores``: its rubric scores, when known."""
        raters = dict(self.raters)
        raters[rater_id] = raters.get(rater_id, Tally()).add(mean)
        rubric = self.rubric
        if scores:
            rubric = dict(rubric)
            rubric[rater_id] = rubric.get(rater_id, RubricTally()).add(scores)
            rubric = dict(sorted(rubric.items()))
        last = self.last_evidence_at
        return Facts(
            sessions=self.sessions + new_session,
            no_shows=self.no_shows - (new_session and was_no_show),
            raters=dict(sorted(raters.items())),
            last_evidence_at=occurred_at if last is None else max(last, occurred_at),
            rubric=rubric,
        )


def facts_of(items: Iterable[EvidenceItem], no_show_sessions: Iterable[str] = ()) -> Facts:
    """The facts of a set of items (duplicates by evidence id count once) and no-show sessions."""
    unique = {i.evidence_id: i for i in items}
    raters: dict[str, Tally] = {}
    rubric: dict[str, RubricTally] = {}
    for item in sorted(unique.values(), key=lambda i: i.evidence_id):
        raters[item.rater_id] = raters.get(item.rater_id, Tally()).add(item.mean)
        if item.scores:
            rubric[item.rater_id] = rubric.get(item.rater_id, RubricTally()).add(item.scores)
    attended = {i.session_id for i in unique.values()}
    return Facts(
        sessions=len(attended),
        no_shows=len(set(no_show_sessions) - attended),
        raters=dict(sorted(raters.items())),
        last_evidence_at=max((i.occurred_at for i in unique.values()), default=None),
        rubric=dict(sorted(rubric.items())),
    )
