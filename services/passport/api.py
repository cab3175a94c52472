"""Routes of the passport service: learners, skill claims, passports, skill pages, the waitlist.

Writes read, decide (``domain``) and commit documents and events together, if nothing they
read has changed meanwhile (``shared.commands``: any replica may take a command; a handle is
created by one registration only, the store refusing a second). Passports and skill figures
are read from the projection, which follows the event log about a second behind a write. A
passport shows Freshness (and the SCI with it) decayed to the request time (``?freshness_at=``,
default now; ``as_of``, its deprecated name), like sci's own score routes.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.passport import domain
from services.passport.domain import ERASURES, HANDLES, LEARNERS, PERSONAL_HANDLES, PROFILES, Decision
from services.passport.projection import PASSPORTS, SKILL_STATS, passport_skills, skill_figures
from services.passport.records import add_to_waitlist, find_learner
from services.passport.trail import MAX_LIMIT, BadCursor, evidence_trail
from shared.auth import Principal, PrincipalDep
from shared.catalog import Skill, get_catalog
from shared.commands import Attempt, attempt
from shared.events.payloads import SelfLevel
from shared.freshness_param import DeprecatedAsOf, FreshnessAt, freshness_time
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext

router = APIRouter(prefix="/v1", tags=["passport"])

SkillPath = Annotated[str, Path(min_length=1, max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Registration(Strict):
    handle: str = Field(pattern=domain.HANDLE_PATTERN, examples=["ada-l"])
    display_name: str = Field(min_length=1, max_length=80)


class Learner(BaseModel):
    learner_id: str
    handle: str
    display_name: str
    claims: dict[str, str]
    registered_at: str


class ClaimBody(Strict):
    self_level: SelfLevel


class Claim(BaseModel):
    learner_id: str
    skill: str
    claimed: bool
    self_level: SelfLevel | None


class PassportSkill(BaseModel):
    skill: str
    sci: float
    practice: float
    proof: float
    reliability: float
    freshness: float
    tier: int
    sessions: int
    specialties: dict[str, int]
    last_evidence_at: str | None
    self_level: str | None
    band: float | None = Field(
        default=None,
        description="half-width of the SCI's 90% band (sci ± band); the tier was earned at its low end",
    )
    rubric: dict[str, float] = Field(
        default_factory=dict,
        description="the learner's level (1..5) on each rubric dimension: their overall level plus what "
        "their raters saw of that dimension, corrected for each rater's severity on it",
    )


class Passport(BaseModel):
    """``specialties`` maps a specialty id to the number of evidence items in it; ``as_of`` is
    the time Freshness and the SCI are shown at."""

    learner_id: str
    handle: str
    display_name: str
    skills: list[PassportSkill]
    as_of: datetime


class TrailEntry(BaseModel):
    evidence_id: str
    skill: str
    specialty: str | None
    format: str | None
    occurred_at: datetime
    rating: float
    calibrated: float
    calibrated_by: bool


class EvidenceTrail(BaseModel):
    """Newest first; ``next_before`` is the ``before`` of the next, older page (``null``: no more)."""

    items: list[TrailEntry]
    next_before: str | None


class CatalogSkill(BaseModel):
    id: str
    name: str
    category: str


class Named(BaseModel):
    id: str
    name: str


class SkillPage(BaseModel):
    """Live figures; averages are over learners verifying the skill, ``null`` while there are none."""

    skill: str
    name: str
    category: str
    rubric: list[Named]
    specialties: list[Named]
    formats: list[Named]
    learners_verifying: int
    sessions_completed: int
    avg_sci: float | None
    tier_distribution: dict[str, int]
    avg_practice: float | None
    avg_proof: float | None
    avg_reliability: float | None
    avg_freshness: float | None


class WaitlistBody(Strict):
    email: str = Field(min_length=3, max_length=320, examples=["ada@example.com"])
    skill: str | None = Field(default=None, max_length=100, examples=["machine-learning"])


class WaitlistAck(BaseModel):
    status: str
    first_session_free: bool
    message: str


def _skill(skill_id: str, *, missing: int = 422) -> Skill:
    skill = get_catalog().get(skill_id)
    if skill is None:
        raise Problem(missing, f"unknown skill {skill_id!r}")
    return skill


def _may_act_for(principal: Principal, learner_id: str) -> None:
    if principal.learner_id != learner_id and not principal.is_ops:
        raise Problem(403, "only the learner (or an operator) may change these claims")


async def _learner_or_404(ctx: ServiceContext, who: str) -> dict[str, Any]:
    """The learner, or 404; 410 for one who erased their data (a deleted learner)."""
    learner = await find_learner(ctx.store, who)
    if learner is None:
        raise Problem(404, f"no learner with id or handle {who!r}")
    if learner.get("erased"):
        raise Problem(410, f"{who} is a {domain.DELETED_LEARNER}: they erased their data")
    return learner


async def _commit(
    tx: Attempt, learner_id: str, learner: dict[str, Any] | None, decision: Decision, now: datetime
) -> dict[str, Any] | None:
    """Commit the decision with the ``learners`` document that folding its events gives (the
    fold writes the same again from the log); returns that document."""
    events = [tx.ctx.event(p, time=now) for p in decision.events]
    docs = dict(decision.docs)
    for event in events:
        moved = domain.learner_applied(learner, event.data, event.time, event.id)
        if moved is not None:
            learner = docs[(LEARNERS, learner_id)] = moved
    await tx.commit(docs, events)
    return learner


#: what a command answers when it lost to other writers every time (``shared.commands``)
CONCURRENT = "changed concurrently too many times: try again"


@router.post(
    "/learners",
    status_code=status.HTTP_201_CREATED,
    response_model=Learner,
    responses={
        409: {"description": f"Registered already, the handle is taken, or {CONCURRENT}"},
        410: {"description": "The learner erased their data: the account cannot be used again"},
    },
)
async def register(body: Registration, principal: PrincipalDep, ctx: ContextDep) -> Any:
    learner_id = principal.learner_id

    async def once(tx: Attempt) -> tuple[dict[str, Any] | None, Decision]:
        existing = await tx.get(LEARNERS, learner_id)
        # expected absent: the store keeps it unique (a handle from before handles left the log
        # is in ``handles``)
        owner = await tx.get(PERSONAL_HANDLES, body.handle) or await tx.get(HANDLES, body.handle)
        now = datetime.now(UTC)
        decision = domain.register(
            learner_id,
            body.handle,
            body.display_name,
            existing=existing,
            handle_owner=owner,
            erased=await tx.get(ERASURES, learner_id),
            now=now,
        )
        return await _commit(tx, learner_id, existing, decision, now), decision

    learner, decision = await attempt(ctx, once, writer="register")
    assert learner is not None  # registering moves the learner
    return {**learner, **(decision.docs[(PROFILES, learner_id)] or {})}  # the handle, the name


CLAIM_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The token is neither the learner's nor an operator's"},
    404: {"description": "The learner is not registered (to unclaim: or has not claimed the skill)"},
    409: {"description": f"The learner {CONCURRENT}"},
    410: {"description": "The learner erased their data"},
    422: {"description": "Unknown skill, or a request that does not fit the schema"},
}


@router.put("/learners/{learner_id}/skills/{skill}", response_model=Claim, responses=CLAIM_REFUSALS)
async def claim_skill(
    learner_id: str, skill: SkillPath, body: ClaimBody, principal: PrincipalDep, ctx: ContextDep
) -> Claim:
    _may_act_for(principal, learner_id)
    _skill(skill)

    async def once(tx: Attempt) -> None:
        learner = await tx.get(LEARNERS, learner_id)
        decision = domain.claim(learner, learner_id, skill, body.self_level)
        await _commit(tx, learner_id, learner, decision, domain.command_time(learner, datetime.now(UTC)))

    await attempt(ctx, once, writer="claim")
    return Claim(learner_id=learner_id, skill=skill, claimed=True, self_level=body.self_level)


@router.delete("/learners/{learner_id}/skills/{skill}", response_model=Claim, responses=CLAIM_REFUSALS)
async def unclaim_skill(learner_id: str, skill: SkillPath, principal: PrincipalDep, ctx: ContextDep) -> Claim:
    _may_act_for(principal, learner_id)
    _skill(skill)

    async def once(tx: Attempt) -> None:
        learner = await tx.get(LEARNERS, learner_id)
        decision = domain.unclaim(learner, learner_id, skill)
        await _commit(tx, learner_id, learner, decision, domain.command_time(learner, datetime.now(UTC)))

    await attempt(ctx, once, writer="claim")
    return Claim(learner_id=learner_id, skill=skill, claimed=False, self_level=None)


GONE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No learner with this id or handle"},
    410: {"description": "A deleted learner: they erased their data"},
}


@router.get("/passports/{who}", response_model=Passport, responses=GONE)
async def passport(
    who: str,
    ctx: ContextDep,
    response: Response,
    freshness_at: FreshnessAt = None,
    as_of: DeprecatedAsOf = None,
) -> Passport:
    """A passport by learner id, else by handle (a learner id is looked up first).

    Skills listed are those claimed or with evidence, highest SCI first. ``specialties`` maps a
    specialty id to the number of evidence items in it; ``sessions`` counts distinct sessions
    with evidence; ``self_level`` is the current claim (``null`` once unclaimed). Freshness and
    the SCI are decayed from the newest evidence to ``freshness_at`` (default now; ``as_of`` is
    its deprecated name); the tier is the one sci last set (it does not lapse by itself).
    """
    at = freshness_time(freshness_at, as_of, response)
    learner = await _learner_or_404(ctx, who)
    projected = await ctx.store.get(PASSPORTS, learner["learner_id"])
    return Passport(
        learner_id=learner["learner_id"],
        handle=learner["handle"],
        display_name=learner["display_name"],
        skills=[PassportSkill(**s) for s in passport_skills(projected, at)],
        as_of=at,
    )


@router.get(
    "/passports/{who}/evidence",
    response_model=EvidenceTrail,
    responses={**GONE, 422: {"description": "A cursor this service did not issue, or a bad query"}},
)
async def passport_evidence(
    who: str,
    ctx: ContextDep,
    before: Annotated[
        str | None, Query(min_length=1, max_length=400, description="the next_before of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> EvidenceTrail:
    """The evidence trail behind a passport (by learner id, else handle), newest first.

    ``rating`` is the mean rubric score; ``calibrated`` is it less the rater's bias in the skill
    (sci's rater calibration), held to 1..5; ``calibrated_by`` says whether a bias was known.
    Pass ``next_before`` as ``before`` for the next, older page (``null``: no more).
    """
    learner = await _learner_or_404(ctx, who)
    try:
        page = await evidence_trail(ctx.store, learner["learner_id"], before=before, limit=limit)
    except BadCursor as error:
        raise Problem(422, str(error)) from error
    return EvidenceTrail(
        items=[TrailEntry(**asdict(item)) for item in page.items], next_before=page.next_before
    )


@router.get("/skills", response_model=list[CatalogSkill])
async def catalog() -> list[CatalogSkill]:
    return [CatalogSkill(id=s.id, name=s.name, category=s.category) for s in get_catalog().skills]


@router.get("/skills/{skill}", response_model=SkillPage, responses={404: {"description": "No such skill"}})
async def skill_page(skill: SkillPath, ctx: ContextDep) -> SkillPage:
    found = _skill(skill, missing=404)
    stats = await ctx.store.get(SKILL_STATS, skill)

    def named(items: tuple[Any, ...]) -> list[Named]:
        return [Named(id=i.id, name=i.name) for i in items]

    return SkillPage(
        skill=found.id,
        name=found.name,
        category=found.category,
        rubric=named(found.rubric),
        specialties=named(found.specialties),
        formats=named(found.formats),
        **skill_figures(stats),
    )


@router.post("/waitlist", status_code=status.HTTP_202_ACCEPTED, response_model=WaitlistAck)
async def join_waitlist(body: WaitlistBody, ctx: ContextDep) -> WaitlistAck:
    """Public. The same answer whether the email is new or known, so it reveals nothing."""
    if body.skill is not None:
        _skill(body.skill)
    email = domain.normalise_email(body.email)
    if email is None:
        raise Problem(422, "email is not a valid address")
    await add_to_waitlist(ctx, email, body.skill)
    return WaitlistAck(
        status="accepted",
        first_session_free=True,
        message="You are on the waitlist. Your first peer session is free.",
    )
