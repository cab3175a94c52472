"""HTTP routes of the matching service: open, read and cancel match tickets.

Commands run under the service's write lock (shared with the levels fold), so loading
the queue, deciding and committing is one step: no ticket is paired twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.matching import domain
from services.matching.domain import LEVELS, OPEN, TICKETS, WAITING, Decision
from shared.auth import PrincipalDep
from shared.catalog import get_catalog
from shared.events.envelope import CloudEvent, deterministic_id, new_event
from shared.problems import Problem
from shared.service import ContextDep, ServiceContext

router = APIRouter(prefix="/v1", tags=["matching"])
_PAGE = 500


class MatchRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: str = Field(min_length=1, max_length=100)
    specialty: str | None = Field(default=None, min_length=1, max_length=100)
    format: str | None = Field(default=None, min_length=1, max_length=100)


class Ticket(BaseModel):
    ticket_id: str
    learner_id: str
    skill: str
    specialty: str | None
    format: str | None
    level: float
    status: Literal["waiting", "matched", "cancelled", "expired"]
    session_id: str | None = Field(description="the match id, which is the session id; set when matched")
    partner_id: str | None = Field(description="the other learner; set when matched")
    requested_at: str


def _events(ctx: ServiceContext, decision: Decision, now: datetime) -> list[CloudEvent]:
    """Wrap the payloads; ids are derived from the ticket or match, later events are caused by the first."""
    events: list[CloudEvent] = []
    for payload in decision.emit:
        subject = getattr(payload, "match_id", None) or getattr(payload, "ticket_id", "")
        event_id = deterministic_id(ctx.name, type(payload).__name__, str(subject))
        events.append(
            new_event(payload, source=ctx.name, time=now, id=event_id, cause=events[0] if events else None)
        )
    return events


async def _waiting_tickets(ctx: ServiceContext, skill: str) -> list[domain.Doc]:
    ids: list[str] = []
    after: str | None = None
    while True:
        rows = await ctx.store.scan(WAITING, domain.waiting_prefix(skill), after=after, limit=_PAGE)
        ids.extend(str(doc["ticket_id"]) for _, doc in rows)
        if len(rows) < _PAGE:
            break
        after = rows[-1][0]
    found = await ctx.store.get_many(TICKETS, ids)
    return [found[i] for i in ids if i in found]


def _view(ticket: domain.Doc) -> Ticket:
    return Ticket.model_validate(domain.ticket_view(ticket))


@router.post(
    "/match-requests",
    status_code=202,
    response_model=Ticket,
    responses={200: {"model": Ticket, "description": "The learner already waits in this skill: that ticket"}},
)
async def request_match(
    body: MatchRequestBody, principal: PrincipalDep, ctx: ContextDep, request: Request, response: Response
) -> Ticket:
    if problems := get_catalog().problems(body.skill, specialty=body.specialty, format=body.format):
        raise Problem(422, "; ".join(problems))
    wanted = domain.MatchRequest(
        ticket_id=str(uuid.uuid4()),
        learner_id=principal.learner_id,
        skill=body.skill,
        specialty=body.specialty,
        format=body.format,
    )
    async with ctx.lock:
        now = datetime.now(UTC)  # inside the lock: request times follow commit order
        pointer = await ctx.store.get(OPEN, domain.open_key(wanted.learner_id, wanted.skill))
        open_ticket = await ctx.store.get(TICKETS, str(pointer["ticket_id"])) if pointer else None
        level = domain.level_of(
            await ctx.store.get(LEVELS, domain.level_key(wanted.learner_id, wanted.skill))
        )
        decision = domain.request_match(
            wanted,
            level=level,
            now=now,
            open_ticket=open_ticket,
            waiting=await _waiting_tickets(ctx, wanted.skill),
            max_gap=getattr(request.app.state, "max_level_gap", None),
        )
        if decision.changed:
            await ctx.commit(decision.changes, _events(ctx, decision, now))
    if not decision.changed:
        response.status_code = 200
    response.headers["Location"] = f"/v1/match-requests/{decision.ticket['ticket_id']}"
    return _view(decision.ticket)


@router.get("/match-requests/{ticket_id}", response_model=Ticket)
async def get_match_request(ticket_id: str, ctx: ContextDep) -> Ticket:
    ticket = await ctx.store.get(TICKETS, ticket_id)
    if ticket is None:
        raise Problem(404, f"no match request {ticket_id!r}")
    return _view(ticket)


@router.delete("/match-requests/{ticket_id}", response_model=Ticket)
async def cancel_match_request(ticket_id: str, principal: PrincipalDep, ctx: ContextDep) -> Ticket:
    async with ctx.lock:
        now = datetime.now(UTC)  # inside the lock: event times follow commit order
        ticket = await ctx.store.get(TICKETS, ticket_id)
        if ticket is None:
            raise Problem(404, f"no match request {ticket_id!r}")
        decision = domain.cancel_ticket(ticket, by=principal.learner_id, by_ops=principal.is_ops, now=now)
        if decision.changed:
            await ctx.commit(decision.changes, _events(ctx, decision, now))
    return _view(decision.ticket)
