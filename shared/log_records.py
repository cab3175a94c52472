"""Reading given records back from the log by their place (topic, partition, offset)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

Place = tuple[str, int, int]


async def read_records(
    bootstrap: str, places: Iterable[Place], *, timeout_s: float = 10.0
) -> dict[Place, ConsumerRecord[bytes, bytes]]:
    """The records at ``places`` that the log still holds (a place missing from the answer is
    gone: deleted, or never written). Committed records only."""
    wanted: dict[TopicPartition, set[int]] = defaultdict(set)
    for topic, partition, offset in places:
        wanted[TopicPartition(topic, partition)].add(offset)
    found: dict[Place, ConsumerRecord[bytes, bytes]] = {}
    if not wanted:
        return found
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(wanted))
        consumer.assign(list(wanted))
        deadline = time.monotonic() + timeout_s
        for tp, offsets in sorted(wanted.items()):
            for offset in sorted(o for o in offsets if 0 <= o < ends[tp]):
                consumer.seek(tp, offset)
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(tp, timeout_ms=200, max_records=1)
                    records = batch.get(tp, [])
                    if records:
                        if records[0].offset == offset:
                            found[(tp.topic, tp.partition, offset)] = records[0]
                        break
                    await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return found


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partitions ``topic`` has on the cluster (none if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described if t.get("error_code", 0) == 0 for p in t["partitions"])
