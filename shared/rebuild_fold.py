"""The loop of a rebuild: read some partitions from where a version stands to their ends, and fold.

No consumer group: the rebuild reads its partitions itself (the lease in the versions document
keeps it alone), so a restart never waits for a dead member's session to end. The consumer is
placed on the version's offsets by ``StoreOffsetsListener``, which checks the log first and
carries out the runtime's retries. ``fold_to_head`` runs in the rebuild's process, or in one of
its worker processes for a share of the partitions (``shared.rebuild_workers``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka_connection import KafkaConnection
from shared.positions import StoreOffsetsListener
from shared.projection.catchup import CatchUpRuntime
from shared.projection.fold import CatchUp, Projection
from shared.projection.order import Partition
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings
from shared.store.base import Store

#: In catch-up mode, what is folded in memory is written at least this often.
FLUSH_S = 5.0


@dataclass
class Progress:
    """Where a rebuild stands: per partition the next offset to read and the log's end."""

    folded: int = 0
    started: float = field(default_factory=time.monotonic)
    positions: dict[Partition, int] = field(default_factory=dict)
    ends: dict[Partition, int] = field(default_factory=dict)
    #: records redriven into the live version, redriven into the new one at the end
    redriven: int = 0
    #: the peak resident memory of each worker process (MiB), when partitions were folded in some
    worker_peak_rss_mib: list[float] = field(default_factory=list)

    @property
    def lag(self) -> dict[Partition, int]:
        return {tp: max(end - self.positions.get(tp, 0), 0) for tp, end in sorted(self.ends.items())}

    @property
    def rate(self) -> float:
        return self.folded / max(time.monotonic() - self.started, 1e-9)

    @property
    def caught_up(self) -> bool:
        return bool(self.ends) and not any(self.lag.values())


class RebuildStopped(Exception):
    """The rebuild cannot go on (a partition parked); run it again once the cause is fixed."""


class _Subscriber:
    """What ``StoreOffsetsListener`` reads of a FastStream subscriber: its consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer


def make_runtime(
    projection: Projection, store: Store, *, service: str, version: int, window: int
) -> ProjectionRuntime:
    """Catch-up mode for a projection that can fold facts alone (``CatchUp``), written ``window``
    events at a time; otherwise the live runtime, emitting nothing."""
    if isinstance(projection, CatchUp):
        return CatchUpRuntime(projection, store, service=service, version=version, window=window)
    return ProjectionRuntime(projection, store, service=service, version=version, emit=False)


async def fold_to_head(
    settings: Settings,
    runtime: ProjectionRuntime,
    partitions: Collection[TopicPartition],
    progress: Progress,
    on_progress: Callable[[Progress], None] = lambda _: None,
    tick: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Fold ``partitions`` from the offsets of the runtime's version until each is at its end
    (as the broker tells it after a fetch) with nothing held back, everything written.

    ``tick`` runs after every fetch (the rebuild's heartbeat). Raises ``RebuildStopped`` when a
    partition parks, after writing what the others folded."""
    catching_up = runtime if isinstance(runtime, CatchUpRuntime) else None
    if catching_up is not None:
        await catching_up.flush()
        catching_up.reread_positions()  # another process may have moved them
    kafka = KafkaConnection.of(settings)
    listener = StoreOffsetsListener(runtime, kafka)
    consumer = kafka.consumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.consumer_max_records,
    )
    listener.bind(_Subscriber(consumer))
    flushed = time.monotonic()
    await consumer.start()
    try:
        consumer.assign(list(partitions))
        await listener.on_partitions_assigned(set(partitions))  # checks the log, seeks to the offsets
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=settings.consumer_max_records)
            records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
            if records:
                folded = await runtime.handle(records)  # not ``+= await``: workers add to it meanwhile
                progress.folded += folded
            assigned = consumer.assignment()
            ends = _ends(consumer, assigned)
            positions = {
                (tp.topic, tp.partition): await consumer.position(tp)
                for tp in assigned
                if (tp.topic, tp.partition) not in runtime.held
            }
            progress.ends.update(ends)
            progress.positions.update(positions)
            on_progress(progress)
            if tick is not None:
                await tick()
            if catching_up is not None and time.monotonic() - flushed >= FLUSH_S:
                await catching_up.flush()  # a kill loses at most this long
                flushed = time.monotonic()
            parked = {tp: f.describe() for tp, f in runtime.faults.items() if f.parked}
            if parked:
                if catching_up is not None:
                    await catching_up.flush()  # what the other partitions folded is kept
                raise RebuildStopped(
                    "a partition failed every try: "
                    + "; ".join(parked.values())
                    + ". Fix the cause and run the same command again: it resumes here"
                )
            whole = len(ends) == len(assigned)  # every end known (one fetch each)
            at_end = all(positions.get(tp, 0) >= end for tp, end in ends.items())
            if assigned and whole and at_end and not runtime.held and not records:
                if catching_up is None:
                    break
                await catching_up.flush()  # a failed write stops its partitions: they fold it again
                if not catching_up.pending and not runtime.held:
                    break
    finally:
        listener.close()
        await consumer.stop()


def _ends(consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> dict[Partition, int]:
    ends: dict[Partition, int] = {}
    for tp in assigned:
        end = consumer.highwater(tp)
        if end is not None:
            ends[(tp.topic, tp.partition)] = end
    return ends
