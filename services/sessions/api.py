"""Routes of the sessions service: read a session; start, complete, abandon and rate it.

Each command loads the session, asks the pure domain for the transition and commits the
document with its event in one store write, if the session is still as it was read (any
replica may take the command: ``shared.commands``; a conflict decides again from a fresh read).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.sessions import domain
from services.sessions.projection import SESSIONS
from shared.auth import PrincipalDep
from shared.commands import Attempt, attempt
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext
from shared.store import Change

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class RatingRef(BaseModel):
    rater_id: str
    ratee_id: str


class SessionView(BaseModel):
    session_id: str
    match_id: str
    skill: str
    specialty: str | None
    format: str | None
    participants: list[str]
    status: str
    scheduled_at: str
    started_at: str | None
    completed_at: str | None
    duration_s: int | None
    abandoned_at: str | None = None
    abandoned_by: str | None = None
    no_show: str | None = None
    ratings: list[RatingRef]


class AbandonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, examples=["my partner did not come"])
    no_show: str | None = Field(default=None, description="the partner, if they did not show up")


class RatingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratee_id: str = Field(min_length=1, description="the partner")
    scores: dict[str, int] = Field(
        description="every rubric dimension of the session's skill, scored 1..5",
        examples=[
            {
                "model-selection": 4,
                "feature-engineering": 4,
                "evaluation-metrics": 5,
                "generalization": 3,
                "deployment": 4,
            }
        ],
    )
    comment: str | None = Field(default=None, max_length=domain.MAX_COMMENT)


class RatingView(BaseModel):
    rating_id: str
    session_id: str
    rater_id: str
    ratee_id: str
    skill: str
    specialty: str | None
    scores: dict[str, int]
    comment: str | None


def _view(doc: dict[str, Any]) -> SessionView:
    return SessionView.model_validate(doc)


async def _run(
    ctx: ServiceContext, session_id: str, command: Callable[[domain.Doc | None, datetime], domain.Transition]
) -> domain.Transition:
    async def once(tx: Attempt) -> domain.Transition:
        doc = await tx.get(SESSIONS, session_id)
        now = datetime.now(UTC)
        result = command(doc, now)
        if result.event is not None:
            event = ctx.event(result.event, time=now, correlationid=result.doc.get("correlation_id"))
            await tx.commit([Change(SESSIONS, session_id, result.doc)], [event])
        return result

    return await attempt(ctx, once, writer="session")


NO_SESSION: dict[int | str, dict[str, Any]] = {404: {"description": "No session with that id"}}
#: what a participant's command may be refused with
REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The token is not a participant's"},
    **NO_SESSION,
    409: {"description": "The session's state does not allow it now, or it changed concurrently too often"},
}


@router.get(
    "/{session_id}",
    response_model=SessionView,
    responses={403: {"description": "The caller is neither a participant nor an operator"}, **NO_SESSION},
)
async def get_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    """A session, to its two participants and operators only (who met whom, and any no-show
    claim, is not public)."""
    doc = await ctx.store.get(SESSIONS, session_id)
    if doc is None:
        raise Problem(404, f"session {session_id} not found")
    if not principal.is_ops and principal.learner_id not in doc["participants"]:
        raise Problem(403, f"only the participants of session {session_id} and operators may read it")
    return _view(doc)


@router.post("/{session_id}/start", response_model=SessionView, responses=REFUSALS)
async def start_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    who = principal.learner_id
    result = await _run(ctx, session_id, lambda doc, now: domain.start(doc, session_id, who, now))
    return _view(result.doc)


@router.post("/{session_id}/complete", response_model=SessionView, responses=REFUSALS)
async def complete_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    who = principal.learner_id
    result = await _run(ctx, session_id, lambda doc, now: domain.complete(doc, session_id, who, now))
    return _view(result.doc)


@router.post("/{session_id}/abandon", response_model=SessionView, responses=REFUSALS)
async def abandon_session(
    session_id: str, body: AbandonBody, ctx: ContextDep, principal: PrincipalDep
) -> SessionView:
    who = principal.learner_id
    result = await _run(
        ctx,
        session_id,
        lambda doc, now: domain.abandon(doc, session_id, who, body.reason, body.no_show, now),
    )
    return _view(result.doc)


@router.post(
    "/{session_id}/ratings",
    response_model=RatingView,
    status_code=201,
    responses={
        **REFUSALS,
        409: {"description": "Not completed yet, rated by this participant already, or changed concurrently"},
        422: {"description": "Rating oneself or a non-participant, or not the whole rubric scored 1..5"},
    },
)
async def rate_partner(
    session_id: str, body: RatingBody, ctx: ContextDep, principal: PrincipalDep
) -> RatingView:
    who = principal.learner_id
    result = await _run(
        ctx,
        session_id,
        lambda doc, now: domain.rate(doc, session_id, who, body.ratee_id, body.scores, body.comment, now),
    )
    assert result.event is not None  # a rating is never a no-op: a repeat is refused with 409
    return RatingView.model_validate(result.event.model_dump())
