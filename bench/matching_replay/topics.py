"""Reading the topics back: each partition's records once and in log order.

On our topics offsets are dense (an idempotent producer and no transactions), but nothing here
relies on it: a partition is read to its end offset, which Kafka reports as the next offset to
be written, and a skip in offsets (a transaction marker, compaction) is never waited on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.projection.order import unfolded

Records = list[ConsumerRecord[bytes, bytes]]


@dataclass
class InOrder:
    """Hands on each partition's records once, as the projection runtime takes them
    (``shared.projection.order.unfolded``): a redelivery of what was taken is dropped."""

    done: dict[tuple[str, int], int] = field(default_factory=dict)

    def take(self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]]) -> Records:
        taken = unfolded(records, self.done)
        if taken:
            self.done[(tp.topic, tp.partition)] = taken[-1].offset
        return taken


async def read_topic(
    bootstrap: str, topic: str, partitions: int, stall_s: float = 30.0
) -> dict[int, Records]:
    """Every record of ``topic`` (which nobody writes to any more), by partition, in log order:
    read until each partition's position reaches the end offset it had when the read began.
    Raises ``TimeoutError`` when no partition moves for ``stall_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, Records] = {p: [] for p in range(partitions)}
        in_order = InOrder()
        moved = time.monotonic()

        async def behind() -> list[TopicPartition]:
            return [tp for tp in tps if await consumer.position(tp) < ends[tp]]

        while waiting := await behind():
            if time.monotonic() - moved > stall_s:
                raise TimeoutError(
                    f"{topic}: {waiting} did not reach their end offsets {ends} in {stall_s:g} s"
                )
            for tp, records in (await consumer.getmany(*waiting, timeout_ms=200, max_records=10_000)).items():
                out[tp.partition].extend(in_order.take(tp, records))
                moved = time.monotonic()
        return out
    finally:
        await consumer.stop()
