"""Where a projection's consumer starts on each partition it is assigned.

The store, not Kafka's committed offset, says what has been folded: after a crash between the
store write and the Kafka commit, or when a projection is rebuilt into an empty store,
consumption resumes exactly where the store stands. Before it seeks there, the consumer checks
that the log is still the one the store folded (``shared.projection.fingerprint``): a topic
recreated or a broker reset while the store kept its offsets is refused, logged with what to do,
and the service reports not ready, instead of skipping or waiting silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from shared.projection.fingerprint import (
    FINGERPRINTS,
    Fingerprint,
    LogView,
    fingerprint_key,
    mismatch,
    record_digest,
    recovery_hint,
)
from shared.projection.runtime import ProjectionRuntime

log = logging.getLogger(__name__)

Partition = tuple[str, int]
REFUSED = Gauge(
    "lemma_partitions_refused",
    "Partitions a projection refuses to fold: the log is not the one its store's offsets came from",
    ["service", "consumer"],
)
#: Why a partition is held while its log is being checked.
CHECKING = "checking that the log is the one the store folded"
#: How long reading the fingerprinted records may take before the check gives up on them.
READ_TIMEOUT_S = 10.0


async def cluster_id(bootstrap: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_cluster()
        return str(described.get("cluster_id") or "")
    finally:
        await admin.close()


async def read_log(
    bootstrap: str, cluster: str, partitions: Collection[Partition], at: Mapping[Partition, int]
) -> dict[Partition, LogView]:
    """Each partition's start and end, and the digest of the record at ``at[partition]``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        tps = {key: TopicPartition(*key) for key in partitions}
        starts = await consumer.beginning_offsets(list(tps.values()))
        ends = await consumer.end_offsets(list(tps.values()))
        readable = {key: tp for key, tp in tps.items() if key in at and starts[tp] <= at[key] < ends[tp]}
        digests = await _digests_at(consumer, readable, at) if readable else {}
        return {key: LogView(cluster, starts[tp], ends[tp], digests.get(key)) for key, tp in tps.items()}
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
    runtime: ProjectionRuntime, bootstrap: str, stored: Mapping[Partition, int]
) -> dict[Partition, str]:
    """The partitions of ``stored`` whose log does not fit the store, with the reason."""
    docs = await runtime.store.get_many(
        FINGERPRINTS, [fingerprint_key(runtime.consumer, t, p) for t, p in stored]
    )
    prints = {
        tp: Fingerprint.from_doc(doc)
        for tp in stored
        if (doc := docs.get(fingerprint_key(runtime.consumer, *tp))) is not None
    }
    views = await read_log(bootstrap, runtime.cluster_id, stored, {tp: f.offset for tp, f in prints.items()})
    found = {tp: mismatch(last, prints.get(tp), views[tp]) for tp, last in stored.items()}
    return {tp: reason for tp, reason in found.items() if reason is not None}


class StoreOffsetsListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions each assigned partition just past the offset the projection's store holds,
    once the log is known to be the one the store folded; pauses the partitions it refuses."""

    def __init__(self, runtime: ProjectionRuntime, bootstrap: str) -> None:
        self._runtime = runtime
        self._bootstrap = bootstrap
        self._subscriber: Any = None

    def bind(self, subscriber: Any) -> None:
        self._subscriber = subscriber

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._runtime.refused.pop((tp.topic, tp.partition), None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = getattr(self._subscriber, "consumer", None)
        if consumer is None or not assigned:
            return
        runtime = self._runtime
        keys = {(tp.topic, tp.partition): tp for tp in assigned}
        # The fetcher may already read these partitions (from Kafka's committed offsets) while
        # the store and the log are read: hold them, so nothing of them is folded before each
        # is positioned where the store stands, on a log known to be the one it folded.
        for key in keys:
            runtime.refused[key] = CHECKING
        consumer.pause(*assigned)
        if not runtime.cluster_id:
            with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
                runtime.cluster_id = await asyncio.wait_for(cluster_id(self._bootstrap), 10)
        done = await runtime.store.offsets(runtime.consumer)
        stored = {key: last for key, last in done.items() if key in keys}
        refused = await self._check(stored)
        fresh = [tp for key, tp in keys.items() if key not in stored]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        for key, tp in keys.items():
            if key in refused:
                runtime.refused[key] = refused[key]
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
            runtime.refused.pop(key, None)
            consumer.resume(tp)
        REFUSED.labels(runtime.service, runtime.consumer).set(len(runtime.refused))

    async def _check(self, stored: Mapping[Partition, int]) -> dict[Partition, str]:
        if not stored:
            return {}
        try:
            return await asyncio.wait_for(check_positions(self._runtime, self._bootstrap, stored), 30)
        except Exception as exc:  # the broker is unreachable as we start: fold on, say so
            log.warning(
                "%s could not check that the log is the one its store folded (%r); "
                "going on from the store's offsets",
                self._runtime.consumer,
                exc,
            )
            return {}
