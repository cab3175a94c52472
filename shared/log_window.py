"""Reading a window of the log: some partitions, from their start up to what they held at a
moment (an audit as of a past time, or a rebuild of one learner's documents).

"Held at a moment" is read off the records' Kafka timestamps: a partition's window ends at its
first record stamped after the moment (Kafka's time index answers that offset, ``ListOffsets``
by time), so it is a prefix of the partition, the one a reader would have got then. Our topics
keep the producer's time (``CreateTime``: when the outbox relayed the event), not the event's own
``time`` (when it happened), which can be much older than when the log got it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.partitioner import murmur2

from shared.kafka_connection import KafkaConnection

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2 of the key, the Java client's and
    aiokafka's, which every producer of ours uses) gives a record keyed ``key``."""
    return (int(murmur2(key.encode())) & 0x7FFFFFFF) % partitions


def logged_at(record: Record) -> datetime:
    """The record's Kafka timestamp as an aware UTC time."""
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


@dataclass
class Window:
    """Per partition the offsets to read: from ``start`` up to, not including, ``stop``."""

    bounds: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    #: records read, and records kept by the filter (what an audit reports about its cost)
    read: int = 0
    kept: int = 0

    @property
    def records(self) -> int:
        return sum(stop - start for start, stop in self.bounds.values())


async def window(
    kafka: KafkaConnection, partitions: Iterable[TopicPartition], until: datetime | None
) -> Window:
    """The window of ``partitions`` holding what they held at ``until`` (None: everything now)."""
    wanted = sorted(set(partitions), key=lambda tp: (tp.topic, tp.partition))
    if not wanted:
        return Window()
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(wanted)
        ends = await consumer.end_offsets(wanted)
        stops = dict(ends)
        if until is not None:
            # the first record stamped after ``until`` (timestamps are whole milliseconds)
            after = int(until.timestamp() * 1000) + 1
            found = await consumer.offsets_for_times(dict.fromkeys(wanted, after))
            stops = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in wanted}
    finally:
        await consumer.stop()
    return Window({tp: (starts[tp], max(starts[tp], stops[tp])) for tp in wanted})


async def read(
    kafka: KafkaConnection,
    span: Window,
    keep: Callable[[Record], bool] = lambda _: True,
    *,
    max_records: int = 5000,
    idle_timeout_s: float = 30.0,
) -> AsyncIterator[list[Record]]:
    """The records of ``span`` that ``keep`` keeps, a batch at a time, in offset order within
    each partition (committed records only). ``keep`` sees undecoded records: a filter on the
    key or on bytes of the value spares decoding what is not wanted."""
    todo = {tp: bounds for tp, bounds in span.bounds.items() if bounds[0] < bounds[1]}
    if not todo:
        return
    consumer = kafka.consumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_records,
    )
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        quiet_since = time.monotonic()
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=200, max_records=max_records)
            kept: list[Record] = []
            for tp in sorted(batch, key=lambda t: (t.topic, t.partition)):
                stop = todo[tp][1] if tp in todo else -1
                within = [r for r in batch[tp] if r.offset < stop]
                span.read += len(within)
                kept += [r for r in within if keep(r)]
            span.kept += len(kept)
            if kept:
                yield kept
            done = [tp for tp in todo if await consumer.position(tp) >= todo[tp][1]]
            for tp in done:
                del todo[tp]
            if batch or done:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > idle_timeout_s:
                raise TimeoutError(
                    f"the log sent nothing for {idle_timeout_s:.0f} s: {sorted(map(str, todo))}"
                )
            if done and todo:
                consumer.pause(*done)
    finally:
        await consumer.stop()
