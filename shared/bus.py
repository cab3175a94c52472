"""The Kafka bus: FastStream broker set-up, the outbox publisher, batch subscriber options.

Producer acks and idempotence are settings: the local Tansu broker rejects the
idempotent producer (InitProducerId), real Kafka gets ``acks=all`` with idempotence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.events.registry import Topic
from shared.settings import Settings
from shared.store.base import OutboxRecord

#: Partitions per topic. Keys keep the events that must stay in order together.
PARTITIONS: dict[Topic, int] = {
    Topic.PASSPORT: 3,
    Topic.MATCHING: 3,
    Topic.SESSIONS: 3,
    Topic.EVIDENCE: 3,
    Topic.SCI: 3,
    Topic.DLQ: 1,
}


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    acks: Any = "all" if settings.kafka_acks == "all" else int(settings.kafka_acks)
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks=acks,
        enable_idempotence=settings.kafka_idempotence,
        log_level=logging.DEBUG,  # per-message lines at DEBUG; failures still at ERROR
    )


def batch_subscription(settings: Settings, group_id: str) -> dict[str, Any]:
    """Batch subscriber options: a consumer group, from the start, commit after the write."""
    return {
        "batch": True,
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "max_records": settings.consumer_max_records,
        "batch_timeout_ms": 100,
    }


def highwater_of(consumer: Any, records: Sequence[Any]) -> dict[tuple[str, int], int]:
    """Partition end offsets as last seen by the consumer (for the lag gauge)."""
    ends: dict[tuple[str, int], int] = {}
    if consumer is None or not hasattr(consumer, "highwater"):
        return ends
    for topic, partition in {(r.topic, r.partition) for r in records}:
        end = consumer.highwater(TopicPartition(topic, partition))
        if end is not None:
            ends[(topic, partition)] = end
    return ends


class BrokerPublisher:
    """Publishes outbox records with their keys; waits until the broker has them all."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def __call__(self, records: Sequence[OutboxRecord]) -> None:
        futures = [
            await self._broker.publish(
                r.value,
                r.topic,
                key=r.key.encode(),
                headers={"content-type": "application/cloudevents+json"},
                no_confirm=True,
            )
            for r in records
        ]
        await asyncio.gather(*futures)


async def ensure_topics(bootstrap: str, partitions: dict[Topic, int] | None = None) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    wanted = partitions or PARTITIONS
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=t.value, num_partitions=n, replication_factor=1)
            for t, n in wanted.items()
            if t.value not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()
