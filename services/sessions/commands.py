"""A command on one session, as every route and the deadline sweep run it.

It loads the session, asks the pure domain for the transition at the current time and commits
the document, its ``deadlines`` index entry and its event in one store write, if the session is
still as it was read (any replica may run it: ``shared.commands``; a conflict decides again from
a fresh read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from services.sessions import deadlines
from services.sessions.document import Doc, Transition
from services.sessions.projection import SESSIONS
from shared.commands import Attempt, attempt
from shared.projection.fold import DocRef
from shared.service import ServiceContext

#: ``(session as stored or None, now) -> Transition`` (``None``: nothing to do)
Command = Callable[[Doc | None, datetime], Transition | None]


async def run(
    ctx: ServiceContext,
    session_id: str,
    command: Command,
    *,
    writer: str = "session",
    also: Mapping[DocRef, Doc | None] | None = None,
    correlationid: str | None = None,
) -> Transition | None:
    """``also``: documents written with the event, if the command publishes one (a rating's
    comment, which is kept apart from the log). ``correlationid``: the chain the event starts
    (a rating: its request's); by default it continues the session's (a session is one trace)."""

    async def once(tx: Attempt) -> Transition | None:
        doc = await tx.get(SESSIONS, session_id)
        now = datetime.now(UTC)
        result = command(doc, now)
        if result is not None and result.event is not None:
            chain = correlationid or result.doc.get("correlation_id")
            event = ctx.event(result.event, time=now, correlationid=chain)
            changes = {
                (SESSIONS, session_id): result.doc,
                **deadlines.changes(doc, result.doc),
                **(also or {}),
            }
            await tx.commit(changes, [event])
        return result

    return await attempt(ctx, once, writer=writer)
