"""The HTTP side of consistency tokens (``shared.consistency``), one middleware for every route.

Before the route: a request carrying ``Lemma-After`` waits (bounded) until this service has seen
those positions; past the bound the answer says ``Lemma-Possibly-Stale: true``. A malformed token
is a 422 problem. After the route: if it wrote events (``ServiceContext.commit`` notes them), the
answer waits for the relay to put them on the log and carries their positions as a token.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from shared.consistency import (
    AFTER_HEADER,
    STALE_HEADER,
    TOKEN_HEADER,
    BadToken,
    Positions,
    decode_tokens,
    encode_token,
)
from shared.problems import problem_response
from shared.store.base import OutboxRecord

if TYPE_CHECKING:
    from shared.service import ServiceContext

log = logging.getLogger(__name__)

#: The events the current request wrote (set by the middleware, filled by ``note_written``).
_WRITTEN: contextvars.ContextVar[list[OutboxRecord] | None] = contextvars.ContextVar(
    "lemma_written", default=None
)
#: How long an answer waits for its events to be relayed before it goes without a token.
RELAY_WAIT_S = 5.0


def note_written(records: Sequence[OutboxRecord]) -> None:
    """Called with the outbox records a request's write stored."""
    holder = _WRITTEN.get()
    if holder is not None:
        holder.extend(records)


async def token_for(ctx: ServiceContext, records: Sequence[OutboxRecord]) -> str | None:
    """The token of ``records``: where this replica's relay put them; if another relay took one,
    the end of its topic now (no earlier than the record: waiting on it is safe, if longer)."""
    placed = await ctx.relay.placed([r.seq for r in records], RELAY_WAIT_S)
    positions: Positions = {}
    if placed is not None:
        for topic, partition, offset in placed.values():
            positions[(topic, partition)] = max(positions.get((topic, partition), -1), offset)
    else:
        try:
            for topic in {ctx.settings.kafka_prefix + r.topic for r in records}:
                for place, end in (await ctx.progress.ends(topic)).items():
                    if end > 0:
                        positions[place] = end - 1
        except Exception:  # the cluster does not answer: no token, the write stands
            log.warning("no consistency token for a write of %s", ctx.name, exc_info=True)
            return None
    return encode_token(positions) if positions else None


def consistency_middleware(
    ctx: ServiceContext,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        stale = False
        if header := request.headers.get(AFTER_HEADER):
            try:
                positions = decode_tokens(header)
            except BadToken as error:
                return problem_response(request, 422, str(error))
            stale = not await ctx.consistency.wait(positions)
        written: list[OutboxRecord] = []
        reset = _WRITTEN.set(written)
        try:
            response = await call_next(request)
        finally:
            _WRITTEN.reset(reset)
        if stale:
            response.headers[STALE_HEADER] = "true"
        if written and response.status_code < 400:
            token = await token_for(ctx, written)
            if token is not None:
                response.headers[TOKEN_HEADER] = token
        return response

    return middleware
