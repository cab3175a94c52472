"""Routes of the sessions service: read a session; start, complete (confirm), dispute,
abandon, contest a no-show and rate it.

Each command runs through ``services.sessions.commands``: the session is read, the pure domain
decides, and the document, its deadline entry and its event are written together if the session
is still as it was read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.sessions import commands, domain
from services.sessions.comments import comments_of
from services.sessions.document import upgraded
from services.sessions.personal import comment_docs, shown_to
from services.sessions.projection import ERASED, SESSIONS
from shared.auth import PrincipalDep
from shared.events.payloads import AbandonReason, ContestReason, DisputeReason, abandon_code
from shared.log_context import request_correlation
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class RatingRef(BaseModel):
    rater_id: str
    ratee_id: str
    comment: str | None = Field(
        default=None, description="what the rater wrote; shown to the ratee and operators only"
    )


class ConfirmationView(BaseModel):
    """Whether the completion counts: ``pending`` until the partner confirms, disputes before
    ``deadline`` or lets it pass; then ``confirmed`` or ``disputed`` (it never counts)."""

    state: str
    by: list[str] = Field(description="the participants who confirmed it, first the one who completed")
    deadline: str | None = Field(description="until when the partner may dispute (none before this rule)")
    settled_at: str | None
    disputed_by: str | None = None
    reason: str | None = None


class NoShowClaimView(BaseModel):
    """Whether the no-show named on abandoning counts against them: ``pending`` until they
    contest before ``deadline`` (``contested``: it costs nobody) or let it pass (``upheld``)."""

    no_show: str
    claimed_by: str
    state: str
    deadline: str | None
    settled_at: str | None
    reason: str | None = None


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
    abandon_reason: str | None = Field(default=None, description="why it was abandoned (a code)")
    no_show: str | None = None
    confirmation: ConfirmationView | None = None
    no_show_claim: NoShowClaimView | None = None
    ratings: list[RatingRef]

    @field_validator("abandon_reason")
    @classmethod
    def _a_code(cls, reason: str | None) -> str | None:
        """A document folded before codes may hold the participant's free text: never shown."""
        return None if reason is None else abandon_code(reason)


class AbandonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: AbandonReason = Field(description="why the session will not take place (a code)")
    no_show: str | None = Field(default=None, description="the partner, if they did not show up")


class DisputeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: DisputeReason = Field(description="why the session did not take place as completed (a code)")


class ContestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ContestReason | None = Field(default=None, description="why the claim is wrong (a code)")


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
    return SessionView.model_validate(upgraded(doc))


def _window(ctx: ServiceContext) -> timedelta:
    return timedelta(seconds=ctx.settings.session_confirm_window_s)


async def _run(
    ctx: ServiceContext,
    session_id: str,
    command: commands.Command,
    also: dict[tuple[str, str], dict[str, Any] | None] | None = None,
    correlationid: str | None = None,
) -> domain.Transition:
    result = await commands.run(ctx, session_id, command, also=also, correlationid=correlationid)
    assert result is not None  # the routes' commands always decide
    return result


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
    view = _view(doc)
    ids = [domain.rating_id_for(session_id, r.rater_id) for r in view.ratings]
    comments = await comments_of(ctx.store, ids)
    for rating_id, rating in zip(ids, view.ratings, strict=True):
        found = comments.get(rating_id)
        if found is not None and shown_to(principal.learner_id, principal.is_ops, found):
            rating.comment = str(found["comment"])
    return view


@router.post("/{session_id}/start", response_model=SessionView, responses=REFUSALS)
async def start_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    who = principal.learner_id
    result = await _run(ctx, session_id, lambda doc, now: domain.start(doc, session_id, who, now))
    return _view(result.doc)


@router.post("/{session_id}/complete", response_model=SessionView, responses=REFUSALS)
async def complete_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    who = principal.learner_id
    window = _window(ctx)
    result = await _run(ctx, session_id, lambda doc, now: domain.complete(doc, session_id, who, now, window))
    return _view(result.doc)


@router.post("/{session_id}/confirm", response_model=SessionView, responses=REFUSALS)
async def confirm_session(session_id: str, ctx: ContextDep, principal: PrincipalDep) -> SessionView:
    """A participant confirms the session took place: the first confirmation completes it (as
    ``complete`` does), the partner's makes it count at once."""
    who = principal.learner_id
    window = _window(ctx)
    result = await _run(ctx, session_id, lambda doc, now: domain.confirm(doc, session_id, who, now, window))
    return _view(result.doc)


@router.post("/{session_id}/dispute", response_model=SessionView, responses=REFUSALS)
async def dispute_session(
    session_id: str, body: DisputeBody, ctx: ContextDep, principal: PrincipalDep
) -> SessionView:
    """The partner of the participant who completed the session disputes it, within the window:
    the session ends disputed (no Practice, its ratings never count, no cost to either side)."""
    who = principal.learner_id
    result = await _run(
        ctx, session_id, lambda doc, now: domain.dispute(doc, session_id, who, body.reason, now)
    )
    return _view(result.doc)


@router.post("/{session_id}/contest", response_model=SessionView, responses=REFUSALS)
async def contest_no_show(
    session_id: str,
    ctx: ContextDep,
    principal: PrincipalDep,
    body: Annotated[ContestBody | None, Body()] = None,
) -> SessionView:
    """The learner named as a no-show contests the claim, within the window: it costs nobody."""
    who = principal.learner_id
    reason = body.reason if body is not None else None
    result = await _run(ctx, session_id, lambda doc, now: domain.contest(doc, session_id, who, reason, now))
    return _view(result.doc)


@router.post("/{session_id}/abandon", response_model=SessionView, responses=REFUSALS)
async def abandon_session(
    session_id: str, body: AbandonBody, ctx: ContextDep, principal: PrincipalDep
) -> SessionView:
    who = principal.learner_id
    window = _window(ctx)
    result = await _run(
        ctx,
        session_id,
        lambda doc, now: domain.abandon(doc, session_id, who, body.reason, body.no_show, now, window),
    )
    return _view(result.doc)


@router.post(
    "/{session_id}/ratings",
    response_model=RatingView,
    status_code=201,
    responses={
        **REFUSALS,
        409: {"description": "Not completed yet, rated by this participant already, or changed concurrently"},
        410: {"description": "The rater erased their data"},
        422: {"description": "Rating oneself or a non-participant, or not the whole rubric scored 1..5"},
    },
)
async def rate_partner(
    session_id: str, body: RatingBody, ctx: ContextDep, principal: PrincipalDep
) -> RatingView:
    who = principal.learner_id
    if await ctx.store.get(ERASED, who) is not None:
        raise Problem(410, f"{who} erased their data and can no longer rate")
    about_erased = await ctx.store.get(ERASED, body.ratee_id) is not None
    comment = None if about_erased else body.comment  # nothing is kept about an erased learner
    rating_id = domain.rating_id_for(session_id, who)
    result = await _run(
        ctx,
        session_id,
        lambda doc, now: domain.rate(doc, session_id, who, body.ratee_id, body.scores, body.comment, now),
        also=comment_docs(rating_id, session_id, who, body.ratee_id, comment),
        # a rating starts its own chain (the request's), followed alone through evidence, sci and
        # passport; its session_id ties it to the session's
        correlationid=request_correlation(),
    )
    assert result.event is not None  # a rating is never a no-op: a repeat is refused with 409
    return RatingView.model_validate({**result.event.model_dump(), "comment": comment})
