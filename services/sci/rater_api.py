"""A learner's own rater profile (the learner or operators only): what the calibration of each
skill learned of them as a rater, in plain words (``services.sci.domain.rater_profile``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.sci.domain import Correction
from services.sci.domain.rater_profile import rater_profile
from services.sci.projection import CALIBRATIONS
from shared.auth import PrincipalDep
from shared.catalog import get_catalog
from shared.problems import Problem
from shared.service import ContextDep

router = APIRouter(prefix="/v1/raters", tags=["sci"])


class SkillRaterProfile(BaseModel):
    skill: str
    ratings: int = Field(description="how many of the learner's ratings the calibration rests on")
    bias: float = Field(
        description="how far their ratings run above (+) or below (-) their peers', in points"
    )
    agreement: float = Field(description="how well their ratings tell partners apart, as peers' do (0..1)")
    weight: float = Field(description="what one of their ratings counts, relative to a typical rater's")
    summary: list[str] = Field(description="the same in plain words")
    calibrated_over: int = Field(description="ratings in the skill's calibration")


class RaterProfiles(BaseModel):
    learner_id: str
    skills: list[SkillRaterProfile]


@router.get(
    "/{learner_id}",
    response_model=RaterProfiles,
    responses={403: {"description": "Another learner's profile (only they and operators see it)"}},
)
async def rater_profiles(learner_id: str, ctx: ContextDep, principal: PrincipalDep) -> RaterProfiles:
    """How the learner rates, per skill whose calibration saw their ratings (an empty list if none)."""
    if principal.learner_id != learner_id and not principal.is_ops:
        raise Problem(403, "a rater profile is shown only to its learner and to operators")
    skills = [skill.id for skill in get_catalog().skills]
    docs = await ctx.store.get_many(CALIBRATIONS, skills)
    found: list[SkillRaterProfile] = []
    for skill in skills:
        if skill not in docs:
            continue
        correction = Correction.from_doc(docs[skill])
        profile = rater_profile(skill, learner_id, correction)
        if profile is not None:
            found.append(
                SkillRaterProfile(
                    skill=skill,
                    ratings=profile.ratings,
                    bias=profile.bias,
                    agreement=profile.agreement,
                    weight=profile.weight,
                    summary=profile.summary,
                    calibrated_over=correction.ratings,
                )
            )
    return RaterProfiles(learner_id=learner_id, skills=found)
