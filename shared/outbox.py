"""The transactional outbox: events are stored with the change that caused them, then relayed.

A command handler or a projection writes its documents and its outgoing events in
one store write; ``OutboxRelay`` publishes what is pending and then deletes it. A
crash between the two republishes on restart (at-least-once), and every consumer
is idempotent by event id or by the set semantics of its fold.

Every replica of a service runs a relay on the one store: a relay publishes only the records
it claimed (``Store.claim_outbox``: a lease, taken over when it runs out), so a record goes out
once whatever the number of replicas, and a key's records are never held by two relays at once,
so they go out in order. A relay that stops gives back what it holds.
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

#: (topic on the cluster, partition, offset) a record took; None when the publisher cannot say
Placed = tuple[str, int, int]
PublishFn = Callable[[Sequence[OutboxRecord]], Awaitable[Sequence[Placed] | None]]
#: How many published records' positions a relay remembers for the writes waiting on them.
KEPT_POSITIONS = 20_000


def outbox_records(events: Sequence[CloudEvent]) -> list[OutboxRecord]:
    """Outbox records in publishing order. The sequence is time, process and a counter, so
    two processes writing to one store never collide; two writes of one key from two replicas
    are ordered by their time (a write that read what the other wrote comes later)."""
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

    def __init__(
        self,
        store: Store,
        publish: PublishFn,
        *,
        service: str,
        owner: str = "",
        interval: float = 0.5,
        lease_s: float = 30.0,
    ) -> None:
        self._store = store
        self._publish = publish
        self._service = service
        #: the name its claims are held under: stable across restarts of one replica, so a
        #: replica restarted after a crash takes back at once what it held
        self.owner = owner or service
        self._interval = interval
        self._lease_s = lease_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: seq -> where the record went, for the writes that wait on it (``placed``)
        self._placed: dict[str, Placed] = {}
        self._published = asyncio.Condition()

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
        with contextlib.suppress(Exception):
            await self._store.release_outbox(self.owner)

    async def drain(self) -> int:
        """Publish everything pending now; returns how many records went out."""
        sent = 0
        async with self._lock:
            while batch := await self._store.claim_outbox(self.owner, limit=500, lease_s=self._lease_s):
                placed = await self._publish(batch)
                await self._store.ack_outbox([r.seq for r in batch])
                if placed:
                    self._remember({r.seq: at for r, at in zip(batch, placed, strict=True)})
                for record in batch:
                    EVENTS_PUBLISHED.labels(self._service, _type_of(record)).inc()
                sent += len(batch)
        return sent

    def _remember(self, placed: dict[str, Placed]) -> None:
        self._placed.update(placed)
        while len(self._placed) > KEPT_POSITIONS:
            del self._placed[next(iter(self._placed))]
        asyncio.get_running_loop().create_task(self._tell())

    async def _tell(self) -> None:
        async with self._published:
            self._published.notify_all()

    async def placed(self, seqs: Sequence[str], timeout: float) -> dict[str, Placed] | None:
        """Where the records ``seqs`` went once this relay published them; None when one is
        gone from the outbox without this relay saying where (another replica's relay took it)
        or ``timeout`` passed first."""
        wanted = set(seqs)
        deadline = time.monotonic() + timeout
        self.kick()
        async with self._published:
            while not wanted <= self._placed.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._published.wait(), min(left, 0.25))
                if not wanted <= self._placed.keys():
                    pending = {r.seq for r in await self._store.pending_outbox(limit=KEPT_POSITIONS)}
                    if not (wanted - self._placed.keys()) & pending:
                        return None  # relayed by another replica: its place is not known here
        return {seq: self._placed[seq] for seq in wanted}

    async def flush(self, seqs: Sequence[str], timeout: float = 10.0) -> bool:
        """Wait until the records ``seqs`` are on the log (whoever relayed them); False when
        ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        wanted = set(seqs)
        while wanted:
            await self.drain()
            wanted -= self._placed.keys()
            if wanted:
                wanted &= {r.seq for r in await self._store.pending_outbox(limit=KEPT_POSITIONS)}
            if wanted:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.01)
        return True

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
