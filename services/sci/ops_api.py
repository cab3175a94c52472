"""Operators' view of suspected collusion (ops only, on the service port; never a public label)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.sci.collusion import rings
from services.sci.domain import Correction
from services.sci.projection import CALIBRATIONS
from shared.auth import OpsDep
from shared.catalog import get_catalog
from shared.service import ContextDep

router = APIRouter(prefix="/ops", tags=["ops"])


class SkillCollusion(BaseModel):
    skill: str
    calibrated_over: int = Field(description="ratings in the skill's last calibration")
    pairs: list[list[str]] = Field(description="learners who rate each other far above how others rate them")
    groups: list[list[str]] = Field(description="the pairs joined where they share a learner (rings)")


class Collusion(BaseModel):
    skills: list[SkillCollusion]


@router.get("/collusion", response_model=Collusion)
async def collusion(
    ctx: ContextDep, _: OpsDep, skill: str | None = Query(default=None, description="one skill only")
) -> Collusion:
    """Per skill, the pairs and rings the last calibration suspects: their ratings of each other
    are discounted in the calibration and in their Proof (``docs/sci.md``)."""
    skills = [s.id for s in get_catalog().skills if skill is None or s.id == skill]
    docs = await ctx.store.get_many(CALIBRATIONS, skills)
    found: list[SkillCollusion] = []
    for name in skills:
        if name not in docs:
            continue
        correction = Correction.from_doc(docs[name])
        pairs = sorted(correction.collusive)
        found.append(
            SkillCollusion(
                skill=name,
                calibrated_over=correction.ratings,
                pairs=[list(p) for p in pairs],
                groups=[list(g) for g in rings(pairs)],
            )
        )
    return Collusion(skills=found)
