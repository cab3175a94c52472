"""HTTP routes of the matching service: open, read (or wait for) and cancel match tickets.

A command publishes its event (MatchRequested, MatchCancelled) and then waits, up to
``LEMMA_MATCHING_SETTLE_S``, for the log to settle it: the ticket's state is whatever the
skill's partition says (``shared.ticket_log``), folded by ``projection.py``. So a request
answers with the ticket as the log has it (often already matched), and a cancel that lost a
race with a match answers 409 with the matched ticket's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.matching import domain
from services.matching.domain import BUSY, LEVELS, MATCHES, OPEN, TICKETS, learner_key
from shared.auth import OpsDep, Principal, PrincipalDep
from shared.catalog import get_catalog
from shared.events.envelope import deterministic_id, new_event
from shared.events.payloads import MatchRequested, Payload
from shared.log_context import request_correlation
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext

router = APIRouter(prefix="/v1", tags=["matching"])

MAX_WAIT_S = 60


class MatchRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: str = Field(min_length=1, max_length=100, examples=["machine-learning"])
    specialty: str | None = Field(default=None, min_length=1, max_length=100, examples=["nlp"])
    format: str | None = Field(default=None, min_length=1, max_length=100)


class Ticket(BaseModel):
    ticket_id: str
    learner_id: str
    skill: str
    specialty: str | None
    format: str | None
    level: float = Field(description="the level the ticket was queued (and matched) at")
    status: Literal["waiting", "matched", "cancelled", "expired"]
    session_id: str | None = Field(description="the match id, which is the session id; set when matched")
    partner_id: str | None = Field(description="the other learner; set when matched")
    requested_at: str
    requeue_of: str | None = Field(
        default=None, description="set when the learner was put back after a partner's no-show"
    )


def _view(ticket: dict[str, Any]) -> Ticket:
    return Ticket.model_validate(domain.ticket_view(ticket))


async def _publish(ctx: ServiceContext, payload: Payload, subject: str, now: datetime) -> None:
    event_id = deterministic_id(ctx.name, type(payload).__name__, subject)
    event = new_event(payload, source=ctx.name, time=now, id=event_id, correlationid=request_correlation())
    await ctx.commit([], [event])


async def _until(request: Request, seconds: float, check: Callable[[], Awaitable[Any]]) -> Any:
    """Re-run ``check`` after every fold write until it returns something, or ``seconds`` pass.

    The check runs holding the condition, so a write between the check and the wait is not missed.
    """
    changed: asyncio.Condition = request.app.state.watch.changed
    deadline = time.monotonic() + seconds
    async with changed:
        while True:
            if (found := await check()) is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, 1.0))


@router.post(
    "/match-requests",
    status_code=202,
    response_model=Ticket,
    responses={
        200: {"model": Ticket, "description": "The learner already waits in this skill: that ticket"},
        409: {"description": "The learner is in a session of this skill that has not ended"},
    },
)
async def request_match(
    body: MatchRequestBody, principal: PrincipalDep, ctx: ContextDep, request: Request, response: Response
) -> Ticket:
    if problems := get_catalog().problems(body.skill, specialty=body.specialty, format=body.format):
        raise Problem(422, "; ".join(problems))
    learner, skill = principal.learner_id, body.skill
    key = learner_key(learner, skill)

    async def open_ticket() -> dict[str, Any] | None:
        pointer = await ctx.store.get(OPEN, key)
        return await ctx.store.get(TICKETS, str(pointer["ticket_id"])) if pointer else None

    if (waiting := await open_ticket()) is not None:
        response.status_code = 200
        response.headers["Location"] = f"/v1/match-requests/{waiting['ticket_id']}"
        return _view(waiting)
    busy = await ctx.store.get(BUSY, key)
    match = await ctx.store.get(MATCHES, str(busy["match_id"])) if busy else None
    domain.request_refused(learner, skill, busy=busy, match=match)
    now = datetime.now(UTC)
    requested = MatchRequested(
        ticket_id=str(uuid.uuid4()),
        learner_id=learner,
        skill=skill,
        specialty=body.specialty,
        format=body.format,
        level=domain.level_of(await ctx.store.get(LEVELS, key)),
        requested_at=now,
    )
    await _publish(ctx, requested, requested.ticket_id, now)

    async def settled() -> dict[str, Any] | None:
        mine = await ctx.store.get(TICKETS, requested.ticket_id)
        return mine if mine is not None else await open_ticket()

    ticket = await _until(request, request.app.state.rules.settle_s, settled)
    if ticket is None:  # not folded back yet: the ticket as requested
        ticket = domain.ticket_doc(requested, now)
    elif ticket["ticket_id"] != requested.ticket_id:
        response.status_code = 200  # another request of this learner got there first
    response.headers["Location"] = f"/v1/match-requests/{ticket['ticket_id']}"
    return _view(ticket)


NO_TICKET: dict[int | str, dict[str, Any]] = {404: {"description": "No match request with that id"}}


@router.get(
    "/match-requests/{ticket_id}",
    response_model=Ticket,
    responses={
        403: {"description": "The ticket is another learner's"},
        **NO_TICKET,
        429: {"description": "The caller already holds as many long-polls as one may"},
    },
)
async def get_match_request(
    ticket_id: str,
    ctx: ContextDep,
    principal: PrincipalDep,
    request: Request,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="hold the request up to this many seconds until a waiting ticket changes",
        ),
    ] = 0,
) -> Ticket:
    """A ticket, to its learner and operators only; ``wait`` holds the answer until a waiting
    ticket changes (a few long-polls per caller at a time: one more is answered 429)."""

    async def known() -> dict[str, Any] | None:
        return await ctx.store.get(TICKETS, ticket_id)

    ticket = await known()
    if ticket is None and not wait:
        raise Problem(404, f"no match request {ticket_id!r}")
    if ticket is not None:
        _owner_or_ops(ticket, principal)
    if not wait or (ticket is not None and ticket["status"] != domain.STATUS_WAITING):
        assert ticket is not None
        return _view(ticket)
    with request.app.state.waits.held(principal.learner_id):
        if ticket is None:  # a ticket just requested may not be folded yet
            ticket = await _until(request, wait, known)
            if ticket is None:
                raise Problem(404, f"no match request {ticket_id!r}")
            _owner_or_ops(ticket, principal)
        if ticket["status"] == domain.STATUS_WAITING:

            async def changed() -> dict[str, Any] | None:
                now = await known()
                return now if now is not None and now["status"] != domain.STATUS_WAITING else None

            ticket = await _until(request, wait, changed) or await known() or ticket
    return _view(ticket)


def _owner_or_ops(ticket: dict[str, Any], principal: Principal) -> None:
    if not principal.is_ops and ticket["learner_id"] != principal.learner_id:
        raise Problem(403, f"match request {ticket['ticket_id']} is another learner's")


@router.delete(
    "/match-requests/{ticket_id}",
    response_model=Ticket,
    responses={
        202: {"model": Ticket, "description": "The cancel is published but not settled yet"},
        403: {"description": "The token is neither the ticket's learner's nor an operator's"},
        **NO_TICKET,
        409: {"description": "The ticket was matched or expired (before the cancel took effect)"},
    },
)
async def cancel_match_request(
    ticket_id: str, principal: PrincipalDep, ctx: ContextDep, request: Request, response: Response
) -> Ticket:
    ticket = await ctx.store.get(TICKETS, ticket_id)
    if ticket is None:
        raise Problem(404, f"no match request {ticket_id!r}")
    cancel = domain.cancel_request(ticket, by=principal.learner_id, by_ops=principal.is_ops)
    if cancel is None:
        return _view(ticket)  # cancelled already
    await _publish(ctx, cancel, ticket_id, datetime.now(UTC))

    async def closed() -> dict[str, Any] | None:
        now = await ctx.store.get(TICKETS, ticket_id)
        return now if now is not None and now["status"] != domain.STATUS_WAITING else None

    final = await _until(request, request.app.state.rules.settle_s, closed)
    if final is None:
        response.status_code = 202
        return _view(ticket)
    if final["status"] != domain.STATUS_CANCELLED:
        raise Problem(409, f"ticket {ticket_id} was {final['status']} before the cancel took effect")
    return _view(final)


class Ownership(BaseModel):
    instance: str
    partitions: list[int] = Field(description="partitions of lemma.matching.v1 this process decides for")
    skills: list[str] = Field(description="the catalog skills in those partitions")


@router.get("/matching/ownership", response_model=Ownership, tags=["ops"])
async def ownership(ctx: ContextDep, request: Request, _: OpsDep) -> Ownership:
    """Which skills this matcher process decides for (they follow its partitions in the engine group)."""
    matcher = request.app.state.matcher
    return Ownership(
        instance=ctx.settings.instance,
        partitions=sorted(matcher.ownership.partitions),
        skills=matcher.owned_skills(),
    )
