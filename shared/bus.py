"""The Kafka bus: FastStream broker set-up, the outbox publisher, batch subscriber options.

Producers use ``acks=all`` with idempotence (settings), so a retried send neither duplicates
nor reorders a partition's records. Every topic and group name goes through the settings'
prefix (``Settings.topic``, ``Settings.group``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.message import KafkaMessage

from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.positions import StoreOffsetsListener
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings
from shared.store.base import OutboxRecord

log = logging.getLogger(__name__)

#: Partitions per topic by default (``LEMMA_KAFKA_PARTITIONS`` sets the domain topics'). Keys
#: keep the events that must stay in order together.
PARTITIONS: dict[Topic, int] = {
    Topic.PASSPORT: 3,
    Topic.MATCHING: 3,
    Topic.SESSIONS: 3,
    Topic.EVIDENCE: 3,
    Topic.SCI: 3,
    Topic.DLQ: 1,
    Topic.OPS: 1,
}


#: The topics with one partition whatever the setting: read whole, in order, by operators.
SINGLE_PARTITION = frozenset({Topic.DLQ, Topic.OPS})


#: How long a stopping consumer may take to finish the batch in hand.
GRACEFUL_STOP_S = 15.0


def partitions_for(settings: Settings) -> dict[Topic, int]:
    """Partitions per topic as ``lemma topics create`` makes them for these settings."""
    return {t: 1 if t in SINGLE_PARTITION else settings.kafka_partitions for t in PARTITIONS}


class TopicsMadeElsewhere(logging.Filter):
    """Drops FastStream's warning, at every subscriber start, that it creates no topics: that is
    by design here (``make_broker``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Auto create topics is disabled" not in record.getMessage()


BROKER_LOG = logging.getLogger("lemma.broker")
BROKER_LOG.addFilter(TopicsMadeElsewhere())


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    acks: Any = "all" if settings.kafka_acks == "all" else int(settings.kafka_acks)
    kafka = KafkaConnection.of(settings)
    return KafkaBroker(
        # FastStream takes one string as one host; "a:1,b:2" must be a list of hosts
        kafka.servers,
        security=kafka.broker_security(),
        client_id=client_id,
        acks=acks,
        enable_idempotence=settings.kafka_idempotence,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        # topics are made by `lemma topics create` (partitions, replication, retention forever),
        # never by a subscriber starting first: one made with the cluster's defaults would
        # delete events after its retention (7 days by default)
        allow_auto_create_topics=False,
        # a stopping consumer finishes the batch in hand (fold, store write, commit) first
        graceful_timeout=GRACEFUL_STOP_S,
        log_level=logging.DEBUG,  # per-message lines at DEBUG; failures still at ERROR
        # through the process's handler (FastStream's own logger prints coloured text)
        logger=BROKER_LOG,
    )


def consumer_options(settings: Settings) -> dict[str, Any]:
    """What every subscriber of ours sets: batch size, liveness, committed reads only."""
    return {
        "batch": True,
        "max_records": settings.consumer_max_records,
        "session_timeout_ms": settings.consumer_session_timeout_ms,
        # Kafka's default: a member learns of a rebalance from a heartbeat's answer
        "heartbeat_interval_ms": max(min(3000, settings.consumer_session_timeout_ms // 3), 500),
        # records of aborted transactions are never folded (ours write none; a tool might)
        "isolation_level": "read_committed",
    }


def membership(settings: Settings, group: str) -> dict[str, Any]:
    """How a replica joins consumer group ``group``: as a static member named after its instance
    (``LEMMA_CONSUMER_STATIC_MEMBERSHIP``), so a replica restarted within the session timeout gets
    its partitions back with no rebalance; or as a dynamic member that leaves when it stops."""
    name = settings.group(group)
    if not settings.consumer_static_membership:
        return {"group_id": name}
    return {"group_id": name, "group_instance_id": f"{name}-{settings.instance}"}


def projection_subscriber(
    router: KafkaRouter, settings: Settings, runtime: ProjectionRuntime, *topics: Topic
) -> Callable[[Callable[..., Awaitable[None]]], Any]:
    """The one batch subscriber of a projection, over every topic it folds.

    One subscriber and one consumer group per projection: on start a consumer waits for its
    partition assignment, so a single group join beats one per topic in sequence. Positions
    come from the store; Kafka offsets are committed only after the store write, and
    rewound if the handler fails.
    """
    listener = StoreOffsetsListener(runtime, KafkaConnection.of(settings))
    subscriber = router.subscriber(
        *(settings.topic(t) for t in topics),
        **membership(settings, runtime.name),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch_timeout_ms=100,
        listener=listener,
        **consumer_options(settings),
    )
    listener.bind(subscriber)
    return cast(Callable[[Callable[..., Awaitable[None]]], Any], subscriber)


async def fold_batch(runtime: ProjectionRuntime, msg: KafkaMessage) -> None:
    """The body of every projection subscriber: hand the raw records to the runtime, then wait
    until the events the batch caused are on the log, so that the Kafka commit that follows
    says "folded, and its consequences published" (what consistency tokens rely on,
    ``shared.consistency``)."""
    records = msg.raw_message
    batch = records if isinstance(records, tuple) else (records,)
    consumer = getattr(msg, "consumer", None)
    runtime.written = []
    await runtime.handle(batch, highwater=highwater_of(consumer, batch))
    relayed = runtime.relayed
    if runtime.written and relayed is not None and not await relayed(runtime.written):
        log.warning("%s commits a batch whose events are not all relayed yet", runtime.name)


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
    """Publishes outbox records with their keys (topics named with ``prefix``); waits until
    the broker has them all."""

    def __init__(self, broker: KafkaBroker, prefix: str = "") -> None:
        self._broker = broker
        self._prefix = prefix

    async def __call__(self, records: Sequence[OutboxRecord]) -> list[tuple[str, int, int]]:
        """Publish ``records``; returns where each went (topic, partition, offset)."""
        futures = [
            await self._broker.publish(
                r.value,
                self._prefix + r.topic,
                key=r.key.encode(),
                headers={"content-type": "application/cloudevents+json"},
                no_confirm=True,
            )
            for r in records
        ]
        sent = await asyncio.gather(*futures)
        return [(meta.topic, meta.partition, meta.offset) for meta in sent]


def topic_configs(min_insync_replicas: int = 1) -> dict[str, str]:
    """Every domain topic's configuration: events are kept forever; a write needs
    ``min_insync_replicas`` copies (producers use acks=all)."""
    return {"retention.ms": "-1", "min.insync.replicas": str(min_insync_replicas)}


async def ensure_topics(
    kafka: KafkaConnection,
    partitions: dict[Topic, int] | None = None,
    *,
    prefix: str = "",
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create the topics that are missing; returns the names created."""
    wanted = partitions or PARTITIONS
    admin = kafka.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=prefix + t.value,
                num_partitions=n,
                replication_factor=replication_factor,
                topic_configs=topic_configs(min_insync_replicas),
            )
            for t, n in wanted.items()
            if prefix + t.value not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


async def ensure_topics_for(settings: Settings) -> list[str]:
    """``ensure_topics`` as the settings say (connection, prefix, replication, min ISR)."""
    return await ensure_topics(
        KafkaConnection.of(settings),
        partitions_for(settings),
        prefix=settings.kafka_prefix,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
