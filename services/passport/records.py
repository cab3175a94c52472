"""Reads and writes of the passport's own records that the JSON routes and the pages share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.passport import domain
from services.passport.domain import HANDLES, LEARNERS, PERSONAL_HANDLES, PROFILES, WAITLIST
from shared.commands import Attempt, attempt
from shared.service import ServiceContext
from shared.store import Change, Store

#: Where a release before the personal data moved kept the waitlist (a versioned name).
LEGACY_WAITLIST = "waitlist"


async def find_learner(store: Store, who: str) -> dict[str, Any] | None:
    """A learner's document by learner id, else by handle (an id is looked up first), with
    the handle and display name from the personal profile (the handle, the id, when there is
    none). A learner who erased their data is found by id only, as ``erased``, with no handle
    and ``domain.DELETED_LEARNER`` for a name."""
    learner = await store.get(LEARNERS, who)
    if learner is None:
        owner = await store.get(PERSONAL_HANDLES, who) or await store.get(HANDLES, who)
        learner = await store.get(LEARNERS, owner["learner_id"]) if owner else None
    if learner is not None and learner.get("erased"):
        return {**learner, "handle": None, "display_name": domain.DELETED_LEARNER}
    if not domain.is_registered(learner):
        return None
    assert learner is not None
    profile = await store.get(PROFILES, learner["learner_id"]) or {}
    handle = learner.get("handle") or profile.get("handle") or learner["learner_id"]
    return {**learner, "handle": handle, "display_name": profile.get("display_name") or handle}


async def add_to_waitlist(ctx: ServiceContext, email: str, skill: str | None) -> None:
    """Record ``email`` (already normalised) on the waitlist, idempotently; no event."""

    async def once(tx: Attempt) -> None:
        existing = await tx.get(WAITLIST, email)
        decision = domain.join_waitlist(existing, email, skill, datetime.now(UTC))
        await tx.commit(decision.docs, [ctx.event(p) for p in decision.events])

    await attempt(ctx, once, writer="waitlist")


async def move_personal_data(store: Store) -> int:
    """Move what an earlier release kept with the rebuildable documents into the ``personal_*``
    collections: display names out of ``learners`` (version 1: nothing else had them) and the
    emails of ``waitlist``. Each page moves in one write, so a crash leaves nothing half moved
    and the next start goes on. Returns the documents moved."""
    moved = 0
    after: str | None = None
    while page := await store.scan(LEARNERS, after=after, limit=500):
        named = [(key, doc) for key, doc in page if "display_name" in doc]
        changes = [Change(PROFILES, key, {"display_name": doc["display_name"]}) for key, doc in named]
        changes += [
            Change(LEARNERS, key, {k: v for k, v in doc.items() if k != "display_name"}) for key, doc in named
        ]
        if changes:
            await store.write(changes)
        moved += len(named)
        after = page[-1][0]
    while page := await store.scan(LEGACY_WAITLIST, limit=500):
        await store.write(
            [Change(WAITLIST, key, doc) for key, doc in page]
            + [Change(LEGACY_WAITLIST, key, None) for key, _ in page]
        )
        moved += len(page)
    return moved
