"""Commands under optimistic concurrency: read, decide, write only if nothing read has changed.

Replicas of a service take commands side by side on one store, so no in-process lock can keep
two commands (or a command and a fold) from interleaving. A command reads through an
``Attempt``, which notes each document's revision; its write expects them all unchanged
(``Store.write(expect=...)``). If another writer got there first the store refuses the write
(``Conflict``) and the command runs again from a fresh read; after ``COMMAND_TRIES`` refusals
it answers 409, so the client may retry. Uniqueness is the store's too: a document expected
absent (a handle) is created by one command only.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from shared.events.envelope import CloudEvent
from shared.metrics import WRITE_CONFLICTS
from shared.problems import Problem
from shared.projection.fold import Doc, DocRef
from shared.store.base import ABSENT, Change, Conflict

if TYPE_CHECKING:
    from shared.service import ServiceContext

T = TypeVar("T")

#: Tries of one command before it answers 409 (each after a conflict with another writer).
COMMAND_TRIES = 6


class Attempt:
    """One try of a command: what it read (with revisions) and the one write it may make."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        #: (collection, key) -> the revision read (``ABSENT``: it did not exist)
        self.read_revisions: dict[DocRef, str] = {}

    async def get(self, collection: str, key: str) -> Doc | None:
        stored = (await self.ctx.store.read(collection, [key])).get(key)
        self.read_revisions[(collection, key)] = ABSENT if stored is None else stored.rev
        return None if stored is None else stored.doc

    async def commit(
        self, changes: Sequence[Change] | Mapping[DocRef, Doc | None], events: Sequence[CloudEvent] = ()
    ) -> None:
        """Write ``changes`` and ``events`` if nothing this attempt read has changed since."""
        await self.ctx.commit(changes, events, expect=self.read_revisions)


async def attempt(ctx: ServiceContext, command: Callable[[Attempt], Awaitable[T]], *, writer: str = "") -> T:
    """Run ``command`` until its write lands (or it decides without one); 409 after
    ``COMMAND_TRIES`` conflicts."""
    for tries in range(1, COMMAND_TRIES + 1):
        try:
            return await command(Attempt(ctx))
        except Conflict:
            WRITE_CONFLICTS.labels(ctx.name, writer or "command").inc()
            await asyncio.sleep(random.uniform(0, 0.002 * 2**tries))
    raise Problem(409, "the resource changed concurrently too many times; try again")
