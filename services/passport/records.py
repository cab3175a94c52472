"""Reads and writes of the passport's own records that the JSON routes and the pages share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.passport import domain
from services.passport.domain import HANDLES, LEARNERS, PROFILES, WAITLIST
from shared.service import ServiceContext
from shared.store import Store


async def find_learner(store: Store, who: str) -> dict[str, Any] | None:
    """A learner's document by learner id, else by handle (an id is looked up first), with
    the display name from the personal profile (the handle when there is none)."""
    learner = await store.get(LEARNERS, who)
    if learner is None:
        owner = await store.get(HANDLES, who)
        learner = await store.get(LEARNERS, owner["learner_id"]) if owner else None
    if not domain.is_registered(learner):
        return None
    assert learner is not None
    profile = await store.get(PROFILES, learner["learner_id"]) or {}
    # a learners document written before profiles were kept apart holds the name itself
    name = profile.get("display_name") or learner.get("display_name") or learner["handle"]
    return {**learner, "display_name": name}


async def add_to_waitlist(ctx: ServiceContext, email: str, skill: str | None) -> None:
    """Record ``email`` (already normalised) on the waitlist, idempotently; no event."""
    async with ctx.lock:
        existing = await ctx.store.get(WAITLIST, email)
        decision = domain.join_waitlist(existing, email, skill, datetime.now(UTC))
        await ctx.commit(decision.docs, [ctx.event(p) for p in decision.events])
