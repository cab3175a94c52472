"""Reading given records back from the log by their place (topic, partition, offset)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

from shared.kafka_connection import KafkaConnection

Place = tuple[str, int, int]


async def read_records(
    kafka: KafkaConnection, places: Iterable[Place], *, timeout_s: float = 5.0
) -> dict[Place, ConsumerRecord[bytes, bytes]]:
    """The records at ``places`` that the log holds. A place missing from the answer is gone
    (before the log's start, at or past its end, or an offset no record has: a transaction
    marker, a record of an aborted transaction); committed records only. Each place is given
    ``timeout_s`` to come, so one slow partition does not turn the others into gone ones."""
    wanted: dict[TopicPartition, set[int]] = defaultdict(set)
    for topic, partition, offset in places:
        wanted[TopicPartition(topic, partition)].add(offset)
    found: dict[Place, ConsumerRecord[bytes, bytes]] = {}
    if not wanted:
        return found
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(list(wanted))
        ends = await consumer.end_offsets(list(wanted))
        consumer.assign(list(wanted))
        for tp, offsets in sorted(wanted.items()):
            for offset in sorted(o for o in offsets if starts[tp] <= o < ends[tp]):
                consumer.seek(tp, offset)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    records = (await consumer.getmany(tp, timeout_ms=200, max_records=1)).get(tp, [])
                    if records:
                        if records[0].offset == offset:
                            found[(tp.topic, tp.partition, offset)] = records[0]
                        break
                    if await consumer.position(tp) > offset:
                        break  # passed it without a record (a marker, an aborted record)
                    await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return found


async def partitions_of(kafka: KafkaConnection, topic: str) -> list[int]:
    """The partitions ``topic`` has on the cluster (none if it does not exist)."""
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described if t.get("error_code", 0) == 0 for p in t["partitions"])


async def missing_partitions(
    kafka: KafkaConnection, partitions: Iterable[tuple[str, int]]
) -> list[tuple[str, int]]:
    """Those of ``partitions`` (topic, partition) the cluster does not have: the topic is not
    there (or is no valid name) or has fewer partitions. Reading one would wait for it in vain."""
    wanted = sorted(set(partitions))
    if not wanted:
        return []
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_topics(sorted({topic for topic, _ in wanted}))
    finally:
        await admin.close()
    there = {
        (t["topic"], p["partition"])
        for t in described
        if t.get("error_code", 0) == 0
        for p in t["partitions"]
    }
    return [place for place in wanted if place not in there]


async def end_offsets(kafka: KafkaConnection, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The offset the next record of every partition of ``topics`` will take (its end now)."""
    wanted = [TopicPartition(topic, p) for topic in topics for p in await partitions_of(kafka, topic)]
    if not wanted:
        return {}
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(wanted)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def group_members(kafka: KafkaConnection, group: str) -> int:
    """How many consumers are members of consumer group ``group`` now (0: none, or no group)."""
    admin = kafka.admin()
    await admin.start()
    try:
        answers = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members = 0
    for answer in answers:
        for described in answer.to_object()["groups"]:
            if described["group"] == group:
                members += len(described["members"])
    return members
