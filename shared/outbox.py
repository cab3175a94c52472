"""The transactional outbox: events are stored with the change that caused them, then relayed.

A command handler or a projection writes its documents and its outgoing events in
one store write; ``OutboxRelay`` publishes what is pending and then deletes it. A
crash between the two republishes on restart (at-least-once), and every consumer
is idempotent by event id or by the set semantics of its fold.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from shared.events.envelope import CloudEvent, encode
from shared.metrics import EVENTS_PUBLISHED
from shared.store.base import OutboxRecord, Store

log = logging.getLogger(__name__)
_counter = itertools.count()

PublishFn = Callable[[Sequence[OutboxRecord]], Awaitable[None]]


def outbox_records(events: Sequence[CloudEvent]) -> list[OutboxRecord]:
    """Outbox records in publishing order. The sequence is time, process and a counter, so
    two processes writing to one store never collide (a service is meant to have one writer;
    see docs/operations.md)."""
    stamp = time.time_ns()
    pid = os.getpid()
    return [
        OutboxRecord(
            seq=f"{stamp:020d}-{pid:08d}-{next(_counter):09d}", topic=e.topic, key=e.key, value=encode(e)
        )
        for e in events
    ]


class OutboxRelay:
    """Publishes pending outbox records; woken after each write, and every ``interval`` anyway."""

    def __init__(self, store: Store, publish: PublishFn, *, service: str, interval: float = 0.5) -> None:
        self._store = store
        self._publish = publish
        self._service = service
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def kick(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._service}-outbox")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.drain()

    async def drain(self) -> int:
        """Publish everything pending now; returns how many records went out."""
        sent = 0
        async with self._lock:
            while batch := await self._store.pending_outbox(500):
                await self._publish(batch)
                await self._store.ack_outbox([r.seq for r in batch])
                for record in batch:
                    EVENTS_PUBLISHED.labels(self._service, _type_of(record)).inc()
                sent += len(batch)
        return sent

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # broker away: keep the records, try again
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(self._interval)


def _type_of(record: OutboxRecord) -> str:
    # cheap: the type sits near the front of the JSON envelope
    head = record.value[:400].decode(errors="replace")
    start = head.find('"type":"')
    if start < 0:
        return "unknown"
    start += len('"type":"')
    return head[start : head.find('"', start)]
