"""Read routes of the sci service (public): scores per skill, and one score explained.

Both recompute the score from every stored fact and the skill's current calibration, with
Freshness decayed to ``?freshness_at=`` (default now), so it falls even when no new event
arrives. The tier is the one earned at the newest evidence (it does not lapse by itself).

``freshness_at`` only moves the clock Freshness decays to: it is not a view of the past (later
facts and today's calibration still count). The parameter was called ``as_of``, which promised
a past view; ``as_of`` still works, deprecated (a ``Deprecation`` header says so). What the
score was at a past time comes from the log: ``lemma replay sci --as-of TIME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.sci.domain import TIER_NAMES, Correction, EvidenceItem, explain, specialty_depth
from services.sci.projection import (
    CALIBRATIONS,
    RECEIVED,
    SCORES,
    current_score,
    facts_from_doc,
    items_of,
    received_prefix,
    score_key,
    visible,
)
from shared.catalog import get_catalog
from shared.freshness_param import DeprecatedAsOf, FreshnessAt, freshness_time
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext
from shared.store import Store

router = APIRouter(prefix="/v1", tags=["sci"])


class SkillScore(BaseModel):
    skill: str
    sci: float
    practice: float
    proof: float
    reliability: float
    freshness: float
    tier: int
    sessions: int
    as_of: datetime
    band: float = Field(description="half-width of the 90% band around the SCI: sci ± band")
    low: float = Field(description="the band's low end, where the tier is earned")
    high: float


class LearnerScores(BaseModel):
    learner_id: str
    skills: list[SkillScore]


class Part(BaseModel):
    value: float
    max: float
    reason: str
    band: float = Field(
        default=0.0, description="half-width of the part's 90% band; only Proof estimates, the rest count"
    )


class Band(BaseModel):
    """How sure the SCI is: for 9 learners in 10, a score built on their true skill lies in low..high."""

    half_width: float
    low: float
    high: float
    confidence: float = 0.9
    meaning: str


class SpecialtyDepth(BaseModel):
    sessions: int
    mean_rating: float


class DimensionLevel(BaseModel):
    """The learner's level on one rubric dimension."""

    dimension: str
    name: str
    level: float = Field(
        description="1..5, the rubric's scale: the learner's overall level plus what their raters saw of "
        "this dimension, corrected for each rater's severity on it and shrunk while ratings are few"
    )
    ratings: int = Field(description="the ratings that scored this dimension")


class CalibrationUsed(BaseModel):
    version: str
    ratings: int
    digest: str


class ScoreDetail(BaseModel):
    learner_id: str
    skill: str
    sci: float
    tier: int
    tier_name: str
    sessions: int
    distinct_raters: int
    parts: dict[str, Part]
    specialties: dict[str, SpecialtyDepth]
    rubric: list[DimensionLevel] = Field(default_factory=list, description="depth per rubric dimension")
    next_tier: str | None
    calibration: CalibrationUsed
    as_of: datetime
    band: Band


async def _correction(store: Store, skill: str) -> Correction:
    return Correction.from_doc(await store.get(CALIBRATIONS, skill))


async def _received(ctx: ServiceContext, learner_id: str, skill: str) -> list[EvidenceItem]:
    prefix = received_prefix(skill, learner_id)
    items: list[EvidenceItem] = []
    after: str | None = None
    while page := await ctx.store.scan(RECEIVED, prefix, after=after, limit=500):
        items += [item for _, doc in page for item in items_of(doc)]
        after = page[-1][0]
    return items


@router.get("/scores/{learner_id}", response_model=LearnerScores)
async def learner_scores(
    ctx: ContextDep,
    learner_id: str,
    response: Response,
    freshness_at: FreshnessAt = None,
    as_of: DeprecatedAsOf = None,
) -> LearnerScores:
    """Every skill the learner claimed or has evidence in (an empty list if none)."""
    at = freshness_time(freshness_at, as_of, response)
    rows = await ctx.store.scan(SCORES, f"{learner_id}/", limit=1000)
    skills: list[SkillScore] = []
    for _, doc in rows:
        if doc["learner_id"] != learner_id or not visible(doc):
            continue  # another learner whose id extends this one with a "/"
        s = current_score(doc, await _correction(ctx.store, doc["skill"]), at)
        skills.append(
            SkillScore(
                skill=doc["skill"],
                sci=s.sci,
                practice=s.practice,
                proof=s.proof,
                reliability=s.reliability,
                freshness=s.freshness,
                tier=s.tier,
                sessions=s.sessions,
                as_of=at,
                band=s.band,
                low=s.low,
                high=s.high,
            )
        )
    return LearnerScores(learner_id=learner_id, skills=skills)


@router.get(
    "/scores/{learner_id}/{skill}",
    response_model=ScoreDetail,
    responses={
        404: {"description": "The learner has no claim or evidence in the skill"},
        422: {"description": "Unknown skill, or a bad freshness_at"},
    },
)
async def skill_score(
    ctx: ContextDep,
    learner_id: str,
    skill: str,
    response: Response,
    freshness_at: FreshnessAt = None,
    as_of: DeprecatedAsOf = None,
) -> ScoreDetail:
    if problems := get_catalog().problems(skill):
        raise Problem(422, "; ".join(problems))
    doc = await ctx.store.get(SCORES, score_key(learner_id, skill))
    if doc is None or not visible(doc):
        raise Problem(404, f"learner {learner_id!r} has no claim or evidence in {skill!r}")
    at = freshness_time(freshness_at, as_of, response)
    correction = await _correction(ctx.store, skill)
    return score_detail(doc, await _received(ctx, learner_id, skill), correction, at)


def score_detail(
    doc: Mapping[str, Any], items: list[EvidenceItem], correction: Correction, at: datetime
) -> ScoreDetail:
    """One score explained: the facts of a ``scores`` document and the evidence items behind
    them, under ``correction``, with Freshness at ``at`` (also what an audit of the log shows)."""
    facts = facts_from_doc(doc)
    explained = explain(facts, at, correction, earned_at=facts.last_evidence_at, learner_id=doc["learner_id"])
    result, parts = explained.score, explained.parts
    found = get_catalog().get(doc["skill"])
    names = {d.id: d.name for d in found.rubric} if found else {}
    order = {d: n for n, d in enumerate(names)}  # the catalog's order of the rubric
    return ScoreDetail(
        learner_id=doc["learner_id"],
        skill=doc["skill"],
        sci=result.sci,
        tier=result.tier,
        tier_name=TIER_NAMES[result.tier],
        sessions=result.sessions,
        distinct_raters=result.distinct_raters,
        parts={
            name: Part(
                value=p.value, max=p.max, reason=p.reason, band=result.band if name == "proof" else 0.0
            )
            for name, p in parts.items()
        },
        next_tier=explained.next_tier,
        specialties={
            name: SpecialtyDepth(sessions=d.sessions, mean_rating=d.mean_rating)
            for name, d in specialty_depth(items, correction).items()
        },
        rubric=[
            DimensionLevel(
                dimension=d.dimension,
                name=names.get(d.dimension, d.dimension),
                level=d.level,
                ratings=d.ratings,
            )
            for d in sorted(result.rubric, key=lambda d: (order.get(d.dimension, len(order)), d.dimension))
        ],
        calibration=CalibrationUsed(
            version=correction.version, ratings=correction.ratings, digest=correction.digest
        ),
        as_of=at,
        band=Band(half_width=result.band, low=result.low, high=result.high, meaning=explained.band),
    )
