"""The deadline sweep: closes the windows of confirmations and no-show claims nobody answered.

Every few seconds (``interval_for``: a twentieth of the window, between 0.2 s and 60 s) each
replica scans the ``deadlines`` index from its start (the earliest deadline first) and, for
every entry whose deadline has passed, runs ``confirmation.settle_due`` as a command on the
session: SessionConfirmed for a completion nobody disputed, NoShowUpheld for a claim nobody
contested. Nothing is kept in memory: the index is in the store, written with the session
(``services.sessions.deadlines``), so a restarted replica sweeps what the last one left, and a
store rebuilt from the log holds the same deadlines.

Replicas sweep side by side. Each firing is a compare-and-set command on the session
(``services.sessions.commands``): of two replicas firing one deadline, one writes the event and
the other, deciding again from a fresh read, finds nothing left to do. An entry whose session
no longer waits on it (answered meanwhile, or an index entry left by an older release) is
deleted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.sessions import commands, deadlines
from services.sessions.confirmation import settle_due
from services.sessions.deadlines import DEADLINES
from shared.service import ServiceContext
from shared.store import Change

log = logging.getLogger(__name__)

PAGE = 200  # index entries read at once


def interval_for(window: timedelta) -> float:
    """How often to sweep: often enough that a deadline fires within a twentieth of its window."""
    return min(60.0, max(0.2, window.total_seconds() / 20))


class DeadlineSweep:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def tick(self) -> int:
        """Fire every deadline that has passed; returns how many events it wrote."""
        fired = 0
        after: str | None = None
        now = datetime.now(UTC)
        while page := await self.ctx.store.scan(DEADLINES, after=after, limit=PAGE):
            for key, entry in page:
                if not deadlines.is_due(key, now):
                    return fired
                fired += await self.fire(key, str(entry["session_id"]))
            after = page[-1][0]
        return fired

    async def fire(self, key: str, session_id: str) -> int:
        result = await commands.run(
            self.ctx, session_id, lambda doc, now: settle_due(doc, session_id, now), writer="sweep"
        )
        if result is not None and result.event is not None:
            log.info("session %s: %s", session_id, type(result.event).__name__)
            return 1
        entry = deadlines.entry_of(result.doc if result is not None else None)
        if entry is None or entry[0] != key:  # the session does not wait on this entry
            await self.ctx.store.write([Change(DEADLINES, key, None)])
        return 0
