"""Rebuilding a projection beside the live one, from the start of the log (``lemma replay``).

The rebuild runs in its own process, reads every partition of the projection's topics itself
(no consumer group) and folds through the same ``ProjectionRuntime`` as the service, into a
new version of the store (``shared.projection.versions``): its own collections and offsets,
invisible to readers. It
emits no events while it builds (the announcements come when it goes live). Its position is its
store offsets, so a rebuild that was killed and started again goes on where it stopped; a
heartbeat in the versions document tells a second ``lemma replay`` that this one is alive.

Once every partition is folded up to the log's head it stops and hands the version over
(``handover``); the service takes it from there (``shared.handover``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events.envelope import new_event
from shared.events.payloads import OperatorActed
from shared.events.registry import Topic
from shared.handover import read_versions
from shared.log_records import partitions_of
from shared.outbox import outbox_records
from shared.positions import StoreOffsetsListener
from shared.projection.fold import Projection
from shared.projection.order import Partition
from shared.projection.redrive import FOLDED, carry_over
from shared.projection.runtime import ProjectionRuntime
from shared.projection.versions import VERSIONS, Version, Versions, consumer_of
from shared.settings import Settings
from shared.store.base import Change, Store
from shared.store.versioned import VersionStore

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
#: A rebuild not heard of for this long is taken for dead: the next ``lemma replay`` resumes it.
STALE_S = 15.0


def this_process() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


@dataclass
class Progress:
    """Where a rebuild stands: per partition the next offset to read and the log's end."""

    folded: int = 0
    started: float = field(default_factory=time.monotonic)
    positions: dict[Partition, int] = field(default_factory=dict)
    ends: dict[Partition, int] = field(default_factory=dict)
    #: records redriven into the live version, redriven into the new one at the end
    redriven: int = 0

    @property
    def lag(self) -> dict[Partition, int]:
        return {tp: max(end - self.positions.get(tp, 0), 0) for tp, end in sorted(self.ends.items())}

    @property
    def rate(self) -> float:
        return self.folded / max(time.monotonic() - self.started, 1e-9)

    @property
    def caught_up(self) -> bool:
        return bool(self.ends) and not any(self.lag.values())


def on_this_host(owner: str) -> bool:
    return owner.partition("@")[2] == socket.gethostname()


def dead_here(owner: str) -> bool:
    """Whether ``owner`` (``pid@host``) is a process of this host that no longer runs."""
    pid, _, host = owner.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RebuildStopped(Exception):
    """The rebuild cannot go on (a partition parked); run it again once the cause is fixed."""


class _Subscriber:
    """What ``StoreOffsetsListener`` reads of a FastStream subscriber: its consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer


class Rebuild:
    """One rebuild of ``projection`` (read from ``topics``) into a new version of ``store``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        projection: Projection,
        topics: Sequence[Topic],
        *,
        service: str,
        by: str,
        owner: str | None = None,
        finish: Callable[[Store], Awaitable[object]] | None = None,
    ) -> None:
        """``finish``: what the projection's own jobs would have added to the new version
        (the sci calibration), run on it once caught up and before it is handed over."""
        self.settings = settings
        self.store = store
        self.projection = projection
        self.topics = [settings.topic(t) for t in topics]
        self.service = service
        self.by = by
        self.owner = owner or this_process()
        self.finish = finish
        self.version: Version | None = None
        self.resumed = False

    async def begin(self) -> Version:
        """Claim the version to build: a new one, or the one a killed rebuild left (resumed).
        Raises ``VersionError`` while another rebuild is alive."""
        versions = await read_versions(self.store, self.projection.name)
        at = datetime.now(UTC).isoformat()
        current = versions.in_progress
        # a rebuild of this host is known dead or alive at once; elsewhere, by its silence
        stale_s = STALE_S
        if current is not None and on_this_host(current.owner):
            stale_s = 0.0 if dead_here(current.owner) else float("inf")
        versions, version, resumed = versions.begin(
            at=at,
            by=self.by,
            owner=self.owner,
            now=time.time(),
            stale_s=stale_s,
            model=int(getattr(self.projection, "model", 0)),
        )
        acted = OperatorActed(
            action="replay",
            service=self.service,
            projection=self.projection.name,
            by=self.by,
            detail={"version": version.number, "resumed": resumed, "from": versions.live},
        )
        event = new_event(acted, source=self.service)
        await self.store.write(
            [Change(VERSIONS, self.projection.name, versions.to_doc())], outbox=outbox_records([event])
        )
        self.version, self.resumed = version, resumed
        return version

    async def run(
        self, on_progress: Callable[[Progress], None] = lambda _: None, *, hand_over: bool = True
    ) -> Progress:
        """Fold from where the version stands to the head of the log, then hand it over (unless
        ``hand_over`` is False: a version built to compare, ``abandon`` it after)."""
        assert self.version is not None, "begin() first"
        number = self.version.number
        runtime = ProjectionRuntime(
            self.projection, self.store, service=self.service, version=number, emit=False
        )
        listener = StoreOffsetsListener(runtime, self.settings.kafka_bootstrap)
        # No consumer group: the rebuild reads every partition itself (the lease in the versions
        # document keeps it alone), so a restart never waits for a dead member's session to end.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.settings.consumer_max_records,
        )
        listener.bind(_Subscriber(consumer))
        partitions = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in await partitions_of(self.settings.kafka_bootstrap, topic)
        }
        progress = Progress()
        beat = time.monotonic()
        await consumer.start()
        try:
            consumer.assign(list(partitions))
            await listener.on_partitions_assigned(
                partitions
            )  # checks the log, seeks to the version's offsets
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=self.settings.consumer_max_records)
                records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
                if records:
                    progress.folded += await runtime.handle(records)
                assigned = consumer.assignment()
                progress.ends = _ends(consumer, assigned)
                progress.positions = {
                    (tp.topic, tp.partition): await consumer.position(tp)
                    for tp in assigned
                    if (tp.topic, tp.partition) not in runtime.held
                }
                on_progress(progress)
                if time.monotonic() - beat >= HEARTBEAT_S:
                    await self._beat(number)
                    beat = time.monotonic()
                parked = {tp: f.describe() for tp, f in runtime.faults.items() if f.parked}
                if parked:
                    raise RebuildStopped(
                        "a partition failed every try: "
                        + "; ".join(parked.values())
                        + ". Fix the cause and run the same command again: it resumes here"
                    )
                whole = len(progress.ends) == len(assigned)  # every end known (one fetch each)
                if assigned and whole and not runtime.held and not records and progress.caught_up:
                    break
        finally:
            listener.close()
            await consumer.stop()
        beating = asyncio.create_task(self._beat_every(number, HEARTBEAT_S))
        try:
            live = (await read_versions(self.store, self.projection.name)).live
            carried = await carry_over(runtime, VersionStore(self.store, live), self.settings.kafka_bootstrap)
            progress.redriven = sum(1 for r in carried if r.outcome == FOLDED)
            if self.finish is not None:
                await self.finish(runtime.store)
        finally:
            beating.cancel()
        if hand_over:
            await self._hand_over(number)
        return progress

    async def abandon(self) -> int:
        """Delete the version this rebuild built (to compare) and forget it; returns the
        documents deleted."""
        assert self.version is not None
        number = self.version.number
        versions = await read_versions(self.store, self.projection.name)
        kept = versions.abandon(number, self.owner)
        built = VersionStore(self.store, number)
        deleted = 0
        for collection in await built.collections():
            deleted += await built.drop_collection(collection)
        await self.store.drop_offsets(consumer_of(self.projection.name, number))
        await self.store.write([Change(VERSIONS, self.projection.name, kept.to_doc())])
        return deleted

    async def _beat_every(self, number: int, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._beat(number)

    async def _beat(self, number: int) -> None:
        versions = await read_versions(self.store, self.projection.name)
        beaten = versions.beat(number, self.owner, time.time())  # VersionError: taken over
        await self.store.write([Change(VERSIONS, self.projection.name, beaten.to_doc())])

    async def _hand_over(self, number: int) -> None:
        versions = await read_versions(self.store, self.projection.name)
        versions.beat(number, self.owner, time.time())  # still ours
        handed = versions.hand_over(number)
        await self.store.write([Change(VERSIONS, self.projection.name, handed.to_doc())])
        log.info("%s: version %d caught up with the log; handed over", self.projection.name, number)

    async def wait_live(self, timeout_s: float, poll_s: float = 0.3) -> Versions | None:
        """The versions once the built one is live (the service switched), or None on timeout."""
        assert self.version is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            versions = await read_versions(self.store, self.projection.name)
            if versions.live == self.version.number:
                return versions
            await asyncio.sleep(poll_s)
        return None


def _ends(consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> dict[Partition, int]:
    ends: dict[Partition, int] = {}
    for tp in assigned:
        end = consumer.highwater(tp)
        if end is not None:
            ends[(tp.topic, tp.partition)] = end
    return ends
