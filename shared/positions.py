"""Where a projection's consumer starts on each partition it is assigned.

Each assigned partition is first claimed in the store (``ProjectionRuntime.claim``: its owner
epoch goes up), so a replica that lost it in a rebalance can no longer write it. Then the
store, not Kafka's committed offset, says what has been folded: after a crash between the
store write and the Kafka commit, or when a projection is rebuilt into an empty store,
consumption resumes exactly where the store stands. Before it seeks there, the consumer checks
that the log is still the one the store folded (``shared.projection.fingerprint``): a topic
recreated or a broker reset while the store kept its offsets is refused, logged with what to do,
and the service reports not ready, instead of skipping or waiting silently.

It also carries out the runtime's retries (``shared.projection.faults``): a partition stopped
at a failed record is rewound to it and paused, resumed after the backoff, and left paused
once parked, until an operator resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.projection.faults import Fault
from shared.projection.fingerprint import (
    FINGERPRINTS,
    Fingerprint,
    LogView,
    fingerprint_key,
    folded_under_other_names,
    mismatch,
    record_digest,
    recovery_hint,
)
from shared.projection.order import Partition
from shared.projection.runtime import ProjectionRuntime

log = logging.getLogger(__name__)

REFUSED = Gauge(
    "lemma_partitions_refused",
    "Partitions a projection refuses to fold: the log is not the one its store's offsets came from",
    ["service", "consumer"],
)
#: How long reading the fingerprinted records may take before the check gives up on them.
READ_TIMEOUT_S = 10.0


async def cluster_id(kafka: KafkaConnection) -> str:
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_cluster()
        return str(described.get("cluster_id") or "")
    finally:
        await admin.close()


async def read_log(
    kafka: KafkaConnection, cluster: str, partitions: Collection[Partition], at: Mapping[Partition, int]
) -> dict[Partition, LogView]:
    """Each partition's start and end, and the digest of the record at ``at[partition]``."""
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = {key: TopicPartition(*key) for key in partitions}
        starts = await consumer.beginning_offsets(list(tps.values()))
        ends = await consumer.end_offsets(list(tps.values()))
        readable = {key: tp for key, tp in tps.items() if key in at and starts[tp] <= at[key] < ends[tp]}
        digests = await _digests_at(consumer, readable, at) if readable else {}
        return {
            # a readable record that did not come in time is unread, not gone
            key: LogView(
                cluster, starts[tp], ends[tp], digests.get(key), read=key not in readable or key in digests
            )
            for key, tp in tps.items()
        }
    finally:
        await consumer.stop()


async def _digests_at(
    consumer: AIOKafkaConsumer, tps: Mapping[Partition, TopicPartition], at: Mapping[Partition, int]
) -> dict[Partition, str | None]:
    """The digest of the first record served from ``at`` on each partition; None when that
    record is not at ``at`` (it was removed)."""
    consumer.assign(list(tps.values()))
    for key, tp in tps.items():
        consumer.seek(tp, at[key])
    digests: dict[Partition, str | None] = {}
    deadline = time.monotonic() + READ_TIMEOUT_S
    while len(digests) < len(tps) and time.monotonic() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=200)).items():
            key = (tp.topic, tp.partition)
            if records and key not in digests:
                first = records[0]
                digests[key] = record_digest(first.key, first.value) if first.offset == at[key] else None
    return digests


async def check_positions(
    runtime: ProjectionRuntime, kafka: KafkaConnection, stored: Mapping[Partition, int]
) -> tuple[dict[Partition, str], list[Partition]]:
    """The partitions of ``stored`` whose log does not fit the store, with the reason; and those
    whose fingerprinted record could not be read in time (checked on their offsets only)."""
    docs = await runtime.store.get_many(
        FINGERPRINTS, [fingerprint_key(runtime.consumer, t, p) for t, p in stored]
    )
    prints = {
        tp: Fingerprint.from_doc(doc)
        for tp in stored
        if (doc := docs.get(fingerprint_key(runtime.consumer, *tp))) is not None
    }
    views = await read_log(kafka, runtime.cluster_id, stored, {tp: f.offset for tp, f in prints.items()})
    found = {tp: mismatch(last, prints.get(tp), views[tp]) for tp, last in stored.items()}
    unread = sorted(tp for tp in prints if not views[tp].read)
    return {tp: reason for tp, reason in found.items() if reason is not None}, unread


def base_name(topic: str) -> str:
    """The domain topic ``topic`` is (without its prefix); itself when it is none of ours."""
    return next((t.value for t in Topic if topic.endswith(t.value)), topic)


class StoreOffsetsListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions each assigned partition just past the offset the projection's store holds,
    once the log is known to be the one the store folded; keeps paused what it refuses.

    Every assigned partition is held (paused, and dropped by the runtime) from the moment it is
    assigned until it is positioned, so nothing of it is folded from Kafka's committed offsets
    meanwhile. When the store cannot be read, the partitions stay held and a task tries again.
    """

    def __init__(self, runtime: ProjectionRuntime, kafka: KafkaConnection) -> None:
        self._runtime = runtime
        self._kafka = kafka
        self._subscriber: Any = None  # FastStream's subscriber; its ``consumer`` is aiokafka's
        self._retry: asyncio.Task[None] | None = None
        self._timers: dict[Partition, asyncio.TimerHandle] = {}

    def bind(self, subscriber: Any) -> None:
        self._subscriber = subscriber
        self._runtime.on_fault = self.on_fault
        self._runtime.on_resume = self.resume
        self._runtime.on_reposition = self.reposition

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._stop_retrying()
        for tp in revoked:
            key = (tp.topic, tp.partition)
            self._cancel_timer(key)
            self._runtime.disown(key)  # its next owner claims it and starts again from the store
            self._runtime.assigned.discard(key)
        self._count()

    def on_fault(self, fault: Fault) -> None:
        """Rewind the partition to the failed record and pause it; resume it after the backoff,
        unless it is parked."""
        key = fault.partition
        self._cancel_timer(key)
        self._runtime.hold(key, fault.describe())
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None:
            return
        tp = TopicPartition(*key)
        try:
            consumer.seek(tp, fault.offset)
            consumer.pause(tp)
        except Exception:  # no longer assigned: its next owner starts from the store's offset
            self._runtime.forget(key)
            return
        if not fault.parked:
            delay = self._runtime.retry.delay_s(fault.tries)
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self._try_again, key)

    def _try_again(self, key: Partition) -> None:
        self._timers.pop(key, None)
        self._runtime.release(key)
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is not None:
            with contextlib.suppress(Exception):  # revoked meanwhile
                consumer.resume(TopicPartition(*key))

    def resume(self, key: Partition) -> None:
        """An operator's resume: the partition tries its failed record again now, with every try."""
        self._cancel_timer(key)
        self._runtime.forget(key)
        self._try_again(key)

    async def reposition(self) -> None:
        """Position every assigned partition again, on the offsets of the version the runtime
        now folds (a hand-over; the caller holds the runtime's lock): held until positioned, as
        at an assignment; if that fails, a task tries again until it is done."""
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None or not consumer.assignment():
            return
        assigned = set(consumer.assignment())
        self._stop_retrying()
        for tp in assigned:
            key = (tp.topic, tp.partition)
            self._cancel_timer(key)
            self._runtime.forget(key)
            self._runtime.hold(key)
        consumer.pause(*assigned)
        try:
            await self._position(consumer, assigned)
        except Exception as exc:
            log.error("%s could not position its partitions (%r); trying again", self._runtime.consumer, exc)
            self._retry = asyncio.create_task(self._position_until_done(consumer, assigned))
        finally:
            self._runtime.generation += 1  # what was fetched before the seek is read again
        self._count()

    def close(self) -> None:
        """The consumer stops: no retry task or timer may outlive it."""
        self._stop_retrying()
        for key in list(self._timers):
            self._cancel_timer(key)

    def _cancel_timer(self, key: Partition) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None or not assigned:
            return
        self._stop_retrying()
        for tp in assigned:
            self._runtime.hold((tp.topic, tp.partition))
            self._runtime.assigned.add((tp.topic, tp.partition))
        consumer.pause(*assigned)
        try:
            async with self._runtime.lock:  # not while a hand-over switches the version folded
                await self._position(consumer, assigned)
        except Exception as exc:
            log.error("%s could not position its partitions (%r); trying again", self._runtime.consumer, exc)
            self._retry = asyncio.create_task(self._position_until_done(consumer, assigned))
        self._count()

    def _stop_retrying(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _count(self) -> None:
        REFUSED.labels(self._runtime.service, self._runtime.consumer).set(len(self._runtime.refused))

    async def _position_until_done(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                async with self._runtime.lock:
                    await self._position(consumer, assigned)
            except Exception as exc:
                log.error("%s still cannot position its partitions (%r)", self._runtime.consumer, exc)
                delay = min(delay * 2, 30.0)
                continue
            self._count()
            return

    async def _position(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        runtime = self._runtime
        with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
            # asked at every assignment: a broker reset under a running service has a new id
            runtime.cluster_id = await asyncio.wait_for(cluster_id(self._kafka), 10)
        keys = {(tp.topic, tp.partition): tp for tp in assigned}
        # claimed before the offsets are read: from here on no other replica's write of these
        # partitions lands, so the offsets read are where folding goes on
        await runtime.claim(keys)
        done = await runtime.store.offsets(runtime.consumer)
        stored = {key: last for key, last in done.items() if key in keys}
        refused = await self._check(stored)
        stored_topics = {topic for topic, _ in done}
        for key in keys.keys() - stored.keys():
            others = folded_under_other_names(stored_topics, key[0], base_name(key[0]))
            if others:
                refused[key] = (
                    f"the store holds the positions of {', '.join(others)} but this consumer now reads "
                    f"{key[0]} (was LEMMA_KAFKA_PREFIX changed?): folding it from its start would add "
                    "another log's events to this state"
                )
        fresh = [tp for key, tp in keys.items() if key not in stored and key not in refused]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        for key, tp in keys.items():
            if key in refused:
                runtime.hold(key, refused[key])
                log.error(
                    "%s refuses to fold %s[%s]: %s. %s",
                    runtime.consumer,
                    tp.topic,
                    tp.partition,
                    refused[key],
                    recovery_hint(runtime.service),
                )
                continue
            if key in stored:
                consumer.seek(tp, stored[key] + 1)
            runtime.release(key)
            consumer.resume(tp)

    async def _check(self, stored: Mapping[Partition, int]) -> dict[Partition, str]:
        if not stored:
            return {}
        consumer = self._runtime.consumer
        try:
            refused, unread = await asyncio.wait_for(check_positions(self._runtime, self._kafka, stored), 30)
        except (TimeoutError, KafkaError, OSError) as exc:  # the broker does not answer as we start
            log.warning(
                "%s could not check that the log is the one its store folded (%r); "
                "going on from the store's offsets",
                consumer,
                exc,
            )
            return {}
        for topic, partition in unread:
            log.warning(
                "%s could not read the record it last folded from %s[%s] in time; "
                "its offsets fit the log, the record was not compared",
                consumer,
                topic,
                partition,
            )
        return refused
