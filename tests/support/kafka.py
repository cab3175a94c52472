"""Small real-broker helpers for tests: a topic namespace, publish raw records, read a topic
from the start."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.events.envelope import CloudEvent, encode
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.log_records import end_offsets
from shared.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Namespace:
    """Topics and consumer groups named with ``prefix`` on the broker at ``bootstrap``."""

    bootstrap: str
    prefix: str

    def topic(self, topic: Topic) -> str:
        return self.prefix + topic.value

    def settings(self, **values: Any) -> Settings:
        """Test settings of a service on this namespace (``values`` override)."""
        base: dict[str, Any] = {"environment": "test", "kafka_bootstrap": self.bootstrap}
        return Settings(**{**base, "kafka_prefix": self.prefix, **values})

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        await publish(self.bootstrap, events, prefix=self.prefix)

    async def read_until(
        self, topic: Topic, done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout: float = 15.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        return await read_until(self.bootstrap, self.topic(topic), done, timeout)


async def publish(bootstrap: str, events: Sequence[CloudEvent], *, prefix: str = "") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await producer.send(prefix + e.topic, value=encode(e), key=e.key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 15.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning (no group) until ``done(records)`` or the timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(seen):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                seen.extend(records)
        return seen
    finally:
        await consumer.stop()


@overload
async def eventually(check: Callable[[], Awaitable[T]], timeout: float = ..., interval: float = ...) -> T: ...
@overload
async def eventually(check: Callable[[], T], timeout: float = ..., interval: float = ...) -> T: ...
async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        result = check()
        value = await result if inspect.isawaitable(result) else result
        last = value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def everything_in(bootstrap: str, topics: Sequence[str]) -> list[bytes]:
    """Every record's key and value bytes in ``topics``, from the start to the end each
    partition has now (no group)."""
    ends = {tp: end for tp, end in (await end_offsets(KafkaConnection(bootstrap), topics)).items() if end > 0}
    if not ends:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[bytes] = []
    try:
        partitions = [TopicPartition(t, p) for t, p in ends]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        left = set(partitions)
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                found += [(r.key or b"") + b"\x00" + (r.value or b"") for r in records]
                if records and records[-1].offset + 1 >= ends[(tp.topic, tp.partition)]:
                    left.discard(tp)
        assert not left, f"partitions not read to their end: {left}"
        return found
    finally:
        await consumer.stop()
