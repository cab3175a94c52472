"""Feeds consumed Kafka batches through a pure projection into one atomic store write.

For each batch: drop records at or below the stored offset of their partition
(already folded; ``order``: offsets may skip, and a gap is never waited on), decode the
rest, load the documents they touch, fold in order,
then write the changed documents, the new offsets and the emitted events (plus any
dead letters) in one store write. Offsets live in the store, so a crash anywhere
neither loses nor double-counts an event; the Kafka commit afterwards only saves
re-reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

from shared.events.envelope import CloudEvent, decode, deterministic_id, new_event
from shared.events.payloads import DEAD_LETTER_VALUE_LIMIT, DeadLettered
from shared.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, FOLD_BATCH_SECONDS
from shared.outbox import outbox_records
from shared.projection.fingerprint import CHECKING, FINGERPRINTS, Fingerprint, fingerprint_key, record_digest
from shared.projection.fold import Doc, DocRef, Projection
from shared.projection.order import Partition, unfolded
from shared.store.base import Change, Store

log = logging.getLogger(__name__)


class Record(Protocol):
    """What we read of a Kafka consumer record (aiokafka's ``ConsumerRecord`` fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class ProjectionRuntime:
    def __init__(
        self,
        projection: Projection,
        store: Store,
        *,
        service: str,
        lock: asyncio.Lock | None = None,
        on_written: Any = None,
    ) -> None:
        self.projection = projection
        self.store = store
        self.service = service
        self.consumer = projection.name
        self.lock = lock or asyncio.Lock()
        self._on_written = on_written
        #: the Kafka cluster the consumer reads, written into each partition's fingerprint
        self.cluster_id = ""
        #: partitions nothing is folded from, with why: being checked, or refused because their
        #: log is not the one the store's offsets came from (``shared.positions``)
        self._held: dict[Partition, str] = {}

    def hold(self, partition: Partition, why: str = CHECKING) -> None:
        self._held[partition] = why

    def release(self, partition: Partition) -> None:
        self._held.pop(partition, None)

    @property
    def held(self) -> dict[Partition, str]:
        """Every partition nothing is folded from now, with why."""
        return dict(self._held)

    @property
    def refused(self) -> dict[Partition, str]:
        """The held partitions whose log does not fit the store (not those being checked)."""
        return {tp: why for tp, why in self._held.items() if why != CHECKING}

    async def handle(
        self, records: Sequence[Record], *, highwater: dict[tuple[str, int], int] | None = None
    ) -> int:
        """Fold one batch; returns the number of events folded (dead letters excluded)."""
        start = time.perf_counter()
        async with self.lock:
            folded = await self._handle(records)
        FOLD_BATCH_SECONDS.labels(self.service, self.consumer).observe(time.perf_counter() - start)
        for (topic, partition), end in (highwater or {}).items():
            last = max(
                (r.offset for r in records if r.topic == topic and r.partition == partition), default=end - 1
            )
            CONSUMER_LAG.labels(self.service, self.consumer, topic, str(partition)).set(
                max(end - last - 1, 0)
            )
        return folded

    async def _handle(self, records: Sequence[Record]) -> int:
        done = await self.store.offsets(self.consumer)
        fresh = [r for r in unfolded(records, done) if (r.topic, r.partition) not in self._held]
        if not fresh:
            return 0
        # 1. decode each record and name the documents it needs; a failure dead-letters it
        decoded: list[tuple[Record, CloudEvent, list[DocRef]]] = []
        dead: list[DeadLettered] = []
        for record in fresh:
            try:
                event = decode(record.value or b"")
                decoded.append((record, event, list(self.projection.refs(event))))
            except Exception as exc:  # malformed: dead-letter it and go on
                dead.append(self._dead_letter(record, exc))

        await asyncio.sleep(0)  # between phases the loop runs (heartbeats, reads): a store may never suspend
        # 2. load every document the batch touches in one read per collection
        wanted: dict[str, set[str]] = defaultdict(set)
        for _, _, refs in decoded:
            for collection, key in refs:
                wanted[collection].add(key)
        working: dict[DocRef, Doc | None] = {}
        for collection, keys in wanted.items():
            found = await self.store.get_many(collection, keys)
            for key in keys:
                working[(collection, key)] = found.get(key)

        await asyncio.sleep(0)
        # 3. fold in order; a refused event changes nothing and is dead-lettered
        dirty: set[DocRef] = set()
        emitted: list[CloudEvent] = []
        folded: list[CloudEvent] = []
        for record, event, refs in decoded:
            try:
                outcome = self.projection.apply({ref: working.get(ref) for ref in refs}, event)
                caused = [
                    new_event(
                        payload,
                        source=self.service,
                        time=event.time,
                        id=deterministic_id(self.consumer, event.id, str(index)),
                        cause=event,
                    )
                    for index, payload in enumerate(outcome.emit)
                ]
            except Exception as exc:
                dead.append(self._dead_letter(record, exc))
                continue
            working.update(outcome.changes)
            dirty.update(outcome.changes)
            emitted.extend(caused)
            folded.append(event)

        await asyncio.sleep(0)
        dead_events = [
            new_event(
                d,
                source=self.service,
                id=deterministic_id(self.consumer, "dlq", d.topic, str(d.partition), str(d.offset)),
            )
            for d in sorted(dead, key=lambda d: (d.topic, d.partition, d.offset))
        ]
        offsets: dict[tuple[str, str, int], int] = {}
        last: dict[Partition, Record] = {}
        for record in fresh:
            slot = (self.consumer, record.topic, record.partition)
            offsets[slot] = max(offsets.get(slot, -1), record.offset)
            last[(record.topic, record.partition)] = record  # offsets ascend within a partition
        changes = [Change(collection, key, working[(collection, key)]) for collection, key in sorted(dirty)]
        changes += [
            Change(
                FINGERPRINTS,
                fingerprint_key(self.consumer, topic, partition),
                Fingerprint(self.cluster_id, r.offset, record_digest(r.key, r.value)).to_doc(),
            )
            for (topic, partition), r in sorted(last.items())
        ]
        await self.store.write(changes, offsets=offsets, outbox=outbox_records(emitted + dead_events))
        for type_, count in Counter(event.type for event in folded).items():
            EVENTS_CONSUMED.labels(self.service, self.consumer, type_).inc(count)
        for topic, count in Counter(letter.topic for letter in dead).items():
            DEAD_LETTERS.labels(self.service, self.consumer, topic).inc(count)
        if self._on_written is not None:
            self._on_written()
        return len(folded)

    def _dead_letter(self, record: Record, exc: Exception) -> DeadLettered:
        reason = "".join(traceback.format_exception_only(exc)).strip()
        log.warning("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
        raw = record.value or b""
        return DeadLettered(
            consumer=self.consumer,
            error=reason[:4000],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key else None,
            value=raw[:DEAD_LETTER_VALUE_LIMIT].decode(errors="replace"),
            value_size=len(raw),
        )
