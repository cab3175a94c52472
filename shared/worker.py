"""A periodic background job of a service (recalibration, matching sweeps), run by its lifespan.

``tick`` runs every ``interval_s`` seconds, one at a time; an exception is logged and the job
goes on at the next tick, so a bad moment never kills the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A background job a service's lifespan starts and stops."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class PeriodicWorker:
    def __init__(self, name: str, interval_s: float, tick: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._tick = tick
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._tick()
            except Exception:
                log.exception("%s failed; trying again in %s s", self.name, self.interval_s)
