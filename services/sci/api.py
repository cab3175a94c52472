"""Read routes of the sci service (public): scores per skill, and one score explained.

Both recompute the score at request time (``?as_of=``, default now) from the stored facts and
the skill's current calibration, so Freshness decays even when no new event arrives. The tier
is the one earned at the newest evidence (it does not lapse by itself).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.sci.domain import TIER_NAMES, Correction, EvidenceItem, explain, specialty_depth, utc
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
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext
from shared.store import Store

router = APIRouter(prefix="/v1", tags=["sci"])

AsOf = Annotated[
    datetime | None,
    Query(description="ISO 8601 time to evaluate the score at (default now; naive means UTC)"),
]


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


class LearnerScores(BaseModel):
    learner_id: str
    skills: list[SkillScore]


class Part(BaseModel):
    value: float
    max: float
    reason: str


class SpecialtyDepth(BaseModel):
    sessions: int
    mean_rating: float


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
    next_tier: str | None
    calibration: CalibrationUsed
    as_of: datetime


def _at(as_of: datetime | None) -> datetime:
    """The evaluation time in UTC; 422 for a time UTC cannot hold (e.g. year 1 at +01:00)."""
    if as_of is None:
        return datetime.now(UTC)
    try:
        return utc(as_of)
    except (OverflowError, ValueError) as error:
        raise Problem(422, f"as_of {as_of.isoformat()} is outside the range of UTC times") from error


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
async def learner_scores(ctx: ContextDep, learner_id: str, as_of: AsOf = None) -> LearnerScores:
    """Every skill the learner claimed or has evidence in (an empty list if none)."""
    at = _at(as_of)
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
            )
        )
    return LearnerScores(learner_id=learner_id, skills=skills)


@router.get("/scores/{learner_id}/{skill}", response_model=ScoreDetail)
async def skill_score(ctx: ContextDep, learner_id: str, skill: str, as_of: AsOf = None) -> ScoreDetail:
    if problems := get_catalog().problems(skill):
        raise Problem(422, "; ".join(problems))
    doc = await ctx.store.get(SCORES, score_key(learner_id, skill))
    if doc is None or not visible(doc):
        raise Problem(404, f"learner {learner_id!r} has no claim or evidence in {skill!r}")
    at = _at(as_of)
    correction = await _correction(ctx.store, skill)
    facts = facts_from_doc(doc)
    explained = explain(facts, at, correction, earned_at=facts.last_evidence_at)
    result, parts = explained.score, explained.parts
    items = await _received(ctx, learner_id, skill)
    return ScoreDetail(
        learner_id=learner_id,
        skill=skill,
        sci=result.sci,
        tier=result.tier,
        tier_name=TIER_NAMES[result.tier],
        sessions=result.sessions,
        distinct_raters=result.distinct_raters,
        parts={name: Part(value=p.value, max=p.max, reason=p.reason) for name, p in parts.items()},
        next_tier=explained.next_tier,
        specialties={
            name: SpecialtyDepth(sessions=d.sessions, mean_rating=d.mean_rating)
            for name, d in specialty_depth(items, correction).items()
        },
        calibration=CalibrationUsed(
            version=correction.version, ratings=correction.ratings, digest=correction.digest
        ),
        as_of=at,
    )
