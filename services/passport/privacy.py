"""A learner's own data: take it with them (export) and erase it.

Erasure removes the personal data the passport holds (the display name, the handle and their
documents; no email is tied to a learner) and publishes ``LearnerErased``, on which sessions
deletes the rating comments by or about them. The log keeps no handle, name or comment of
theirs, so there is nothing to shred there (``docs/security.md`` says what is left); scores others earned from
sessions with them stay, and their ratings keep counting, under an id that no longer leads to a
person.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from services.passport import domain
from services.passport.domain import ERASURES, LEARNERS, PROFILES
from services.passport.projection import PASSPORTS, passport_skills
from services.passport.records import find_learner
from services.passport.trail import MAX_LIMIT, evidence_trail
from shared.auth import Principal, PrincipalDep
from shared.commands import Attempt, attempt
from shared.problems import Problem
from shared.service import ContextDep

router = APIRouter(prefix="/v1", tags=["passport"])

MINE: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only the learner (or an operator) may do this"},
    404: {"description": "No learner with this id"},
}


class Erased(BaseModel):
    learner_id: str
    erased: bool
    erased_at: str


def _self_or_ops(principal: Principal, learner_id: str) -> None:
    if principal.learner_id != learner_id and not principal.is_ops:
        raise Problem(403, "only the learner (or an operator) may do this")


@router.delete(
    "/learners/{learner_id}",
    response_model=Erased,
    responses={**MINE, 409: {"description": "The learner changed concurrently too many times: try again"}},
)
async def erase_learner(learner_id: str, principal: PrincipalDep, ctx: ContextDep) -> Erased:
    """Erase the learner's personal data (idempotent: erasing again answers the same)."""
    _self_or_ops(principal, learner_id)

    async def once(tx: Attempt) -> str:
        """When the learner was erased (now, or by an earlier call)."""
        learner = await tx.get(LEARNERS, learner_id)
        now = datetime.now(UTC)
        decision = domain.erase(learner, learner_id, await tx.get(PROFILES, learner_id), now)
        if not decision.events:
            held = await tx.get(ERASURES, learner_id) or {}
            return str(held.get("erased_at", now.isoformat()))
        events = [ctx.event(p, time=now) for p in decision.events]
        docs = dict(decision.docs)
        for event in events:  # the learners document as folding the event gives it
            moved = domain.learner_applied(learner, event.data, event.time, event.id)
            if moved is not None:
                docs[(LEARNERS, learner_id)] = moved
        await tx.commit(docs, events)
        return now.isoformat()

    erased_at = await attempt(ctx, once, writer="erase")
    return Erased(learner_id=learner_id, erased=True, erased_at=erased_at)


@router.get("/learners/{learner_id}/export", responses={**MINE, 410: {"description": "Erased"}})
async def export_learner(learner_id: str, principal: PrincipalDep, ctx: ContextDep) -> dict[str, Any]:
    """Everything the passport holds of the learner, as JSON: the profile, the claims, the
    passport's skills and the whole evidence trail."""
    _self_or_ops(principal, learner_id)
    learner = await find_learner(ctx.store, learner_id)
    if learner is None or learner["learner_id"] != learner_id:
        raise Problem(404, f"no learner {learner_id!r}")
    if learner.get("erased"):
        raise Problem(410, f"{learner_id} erased their data: there is nothing of theirs to export")
    now = datetime.now(UTC)
    trail: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        page = await evidence_trail(ctx.store, learner_id, before=before, limit=MAX_LIMIT)
        trail += [{**asdict(item), "occurred_at": item.occurred_at.isoformat()} for item in page.items]
        if page.next_before is None:
            break
        before = page.next_before
    return {
        "exported_at": now.isoformat(),
        "learner": {
            "learner_id": learner_id,
            "handle": learner["handle"],
            "display_name": learner["display_name"],
            "registered_at": learner.get("registered_at"),
            "claims": learner.get("claims", {}),
        },
        "skills": passport_skills(await ctx.store.get(PASSPORTS, learner_id), now),
        "evidence": trail,
    }
