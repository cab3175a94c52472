"""Feeds consumed Kafka batches through a pure projection into one atomic store write.

For each batch: drop records at or below the stored offset of their partition
(already folded; ``order``: offsets may skip, and a gap is never waited on), decode the
rest, load the documents they touch, fold in order,
then write the changed documents, the new offsets and the emitted events (plus any
dead letters) in one store write. Offsets live in the store, so a crash anywhere
neither loses nor double-counts an event; the Kafka commit afterwards only saves
re-reading.

Bad data is dead-lettered; any other failure stops its partition at the failed record, to be
tried again and parked after the last try (``shared.projection.faults``), while the other
partitions of the batch are folded and written.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from shared.errors import EventRefused, Refused
from shared.events.envelope import CloudEvent, decode, deterministic_id, new_event
from shared.events.payloads import DEAD_LETTER_VALUE_LIMIT, DeadLettered
from shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    FOLD_BATCH_SECONDS,
    FOLD_FAULTS,
    PARTITIONS_PARKED,
)
from shared.outbox import outbox_records
from shared.projection.faults import DEAD_LETTERED, Fault, RetryPolicy, next_fault, place_key
from shared.projection.fingerprint import CHECKING, FINGERPRINTS, Fingerprint, fingerprint_key, record_digest
from shared.projection.fold import CatchUp, Doc, DocRef, Outcome, Projection, Settling
from shared.projection.order import Partition, unfolded
from shared.projection.versions import consumer_of
from shared.store.base import Change, Store
from shared.store.versioned import VersionStore

log = logging.getLogger(__name__)


class Record(Protocol):
    """What we read of a Kafka consumer record (aiokafka's ``ConsumerRecord`` fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


#: Called with each new fault, by whoever owns the consumer (``shared.positions``): it holds
#: the partition, rewinds it to the failed record and resumes it after the backoff.
FaultHook = Callable[[Fault], None]


class ProjectionRuntime:
    def __init__(
        self,
        projection: Projection,
        store: Store,
        *,
        service: str,
        lock: asyncio.Lock | None = None,
        on_written: Any = None,
        retry: RetryPolicy | None = None,
        version: int = 1,
        emit: bool = True,
        own_topics: Iterable[str] = (),
    ) -> None:
        self.projection = projection
        self.service = service
        #: the projection's name: its consumer group, the ids of what it emits, metrics, logs
        self.name = projection.name
        #: the store as given; ``store`` is the version folded into (``shared.projection.versions``)
        self.raw_store = store
        self.switch_to(version)
        #: False while a rebuild folds a new version: it emits no events until it is live
        #: (dead letters still go out: they are about the data, with ids any copy shares)
        self.emit = emit
        self.lock = lock or asyncio.Lock()
        #: the topics folded here that the service's own commands and jobs publish to (their
        #: documents are written by both): a rebuilt version goes live only once it has folded
        #: them to their end, so no command reads it behind what it wrote (``shared.handover``)
        self.own_topics = frozenset(own_topics)
        self.retry = retry or RetryPolicy()
        self._on_written = on_written
        self.on_fault: FaultHook | None = None
        #: resumes a parked partition on the consumer (``shared.positions``)
        self.on_resume: Callable[[Partition], None] | None = None
        #: positions the consumer on the offsets of the version now folded (``shared.positions``)
        self.on_reposition: Callable[[], Awaitable[None]] | None = None
        #: records behind the partition end, as of the last batch (``CONSUMER_LAG`` too)
        self.lag: dict[Partition, int] = {}
        #: the partitions the consumer group gave this process (``shared.positions``)
        self.assigned: set[Partition] = set()
        #: the Kafka cluster the consumer reads, written into each partition's fingerprint
        self.cluster_id = ""
        #: partitions nothing is folded from, with why: being checked, refused because their
        #: log is not the one the store's offsets came from (``shared.positions``), or waiting
        #: to try a failed record again
        self._held: dict[Partition, str] = {}
        #: partitions stopped at a record that failed for a reason other than its data
        self._faults: dict[Partition, Fault] = {}

    def switch_to(self, version: int) -> None:
        """Fold into ``version``: its documents, and its offsets under its own consumer name.

        A batch fetched before the switch (at the old version's positions) and waiting for the
        lock is dropped when its turn comes (``generation``): the consumer reads it again from
        the new version's positions."""
        self.version = version
        self.store: Store = VersionStore(self.raw_store, version)
        #: the name the folded offsets (and fingerprints) are kept under, one per version
        self.consumer = consumer_of(self.name, version)
        self.generation = getattr(self, "generation", 0) + 1
        #: per partition, the offset up to which folding emits nothing (set by a hand-over:
        #: the version taken over already announced those records)
        self.quiet_until: dict[Partition, int] = {}
        #: the documents of ``kept_collections`` read so far, kept from batch to batch
        self._kept: dict[DocRef, Doc | None] = {}

    @property
    def kept_collections(self) -> frozenset[str]:
        """Collections the fold reads and never changes, that only the service's own jobs write
        (and tell: ``changed``): their documents are read once, not once a batch (the projection's
        ``kept``; sci: the calibrations, a megabyte and more on a large skill)."""
        kept: frozenset[str] = getattr(self.projection, "kept", frozenset())
        return kept

    def changed(self, refs: Iterable[DocRef]) -> None:
        """Documents of ``kept_collections`` a job just wrote: read them again at the next batch.
        Called under the projection's lock, in the job's write."""
        for ref in refs:
            self._kept.pop(ref, None)

    def hold(self, partition: Partition, why: str = CHECKING) -> None:
        self._held[partition] = why

    def release(self, partition: Partition) -> None:
        self._held.pop(partition, None)

    def forget(self, partition: Partition) -> None:
        """The partition is no longer ours (revoked) or is resumed by hand: no hold, no fault."""
        self._held.pop(partition, None)
        if self._faults.pop(partition, None) is not None:
            self._count_parked()

    @property
    def held(self) -> dict[Partition, str]:
        """Every partition nothing is folded from now, with why."""
        return dict(self._held)

    @property
    def faults(self) -> dict[Partition, Fault]:
        """The partitions stopped at a failed record, retrying or parked."""
        return dict(self._faults)

    @property
    def refused(self) -> dict[Partition, str]:
        """The partitions that will not move on their own: their log does not fit the store,
        or they are parked. Not those being checked, nor those waiting to retry."""
        refused = {tp: why for tp, why in self._held.items() if why != CHECKING and tp not in self._faults}
        return refused | {tp: fault.describe() for tp, fault in self._faults.items() if fault.parked}

    @property
    def checking(self) -> list[Partition]:
        return sorted(tp for tp, why in self._held.items() if why == CHECKING)

    async def handle(
        self, records: Sequence[Record], *, highwater: dict[tuple[str, int], int] | None = None
    ) -> int:
        """Fold one batch; returns the number of events folded (dead letters excluded)."""
        start = time.perf_counter()
        generation = self.generation
        async with self.lock:
            if generation != self.generation:
                return 0  # fetched for the version folded before a switch: read again from the new one
            folded = await self._handle(records)
        FOLD_BATCH_SECONDS.labels(self.service, self.name).observe(time.perf_counter() - start)
        for (topic, partition), end in (highwater or {}).items():
            last = max(
                (r.offset for r in records if r.topic == topic and r.partition == partition), default=end - 1
            )
            self.lag[(topic, partition)] = max(end - last - 1, 0)
            CONSUMER_LAG.labels(self.service, self.name, topic, str(partition)).set(
                self.lag[(topic, partition)]
            )
        return folded

    def resume_parked(self) -> list[Partition]:
        """Try every parked partition's failed record again now; returns those partitions."""
        parked = sorted(tp for tp, fault in self._faults.items() if fault.parked)
        for partition in parked:
            if self.on_resume is not None:
                self.on_resume(partition)
            else:
                self.forget(partition)
        return parked

    async def _handle(self, records: Sequence[Record]) -> int:
        try:
            done = await self.store.offsets(self.consumer)
        except Exception as exc:  # the store: nothing of the batch is folded, every partition retries
            self._stop_all(records, exc)
            return 0
        fresh = [r for r in unfolded(records, done) if (r.topic, r.partition) not in self._held]
        if not fresh:
            return 0
        # Where each partition stops in this batch: its first record that failed for a reason
        # other than its data. Nothing from there on is folded, dead-lettered or counted.
        stopped: dict[Partition, tuple[int, Exception]] = {}
        # 1. decode each record and name the documents it needs; bad data dead-letters it
        decoded: list[tuple[Record, CloudEvent, list[DocRef]]] = []
        dead: list[tuple[Record, Exception]] = []
        for record in fresh:
            try:
                event = decode(record.value or b"")
            except ValueError as exc:  # malformed: dead-letter it and go on
                dead.append((record, exc))
                continue
            try:
                decoded.append((record, event, list(self.projection.refs(event))))
            except (EventRefused, Refused) as exc:
                dead.append((record, exc))
            except Exception as exc:
                stopped.setdefault((record.topic, record.partition), (record.offset, exc))
        await asyncio.sleep(0)  # between phases the loop runs (heartbeats, reads): a store may never suspend

        # 2. load every document the batch touches in one read per collection
        wanted: dict[str, set[str]] = defaultdict(set)
        for _, _, refs in decoded:
            for collection, key in refs:
                wanted[collection].add(key)
        working: dict[DocRef, Doc | None] = {}
        read_before = self._kept
        try:
            for collection, keys in wanted.items():
                if collection in self.kept_collections:
                    unread = {key for key in keys if (collection, key) not in read_before}
                    found = await self.store.get_many(collection, unread) if unread else {}
                    read_before.update({(collection, key): found.get(key) for key in unread})
                    working.update({(collection, key): read_before[(collection, key)] for key in keys})
                    continue
                found = await self.store.get_many(collection, keys)
                for key in keys:
                    working[(collection, key)] = found.get(key)
        except Exception as exc:
            self._stop_all(fresh, exc)
            return 0
        await asyncio.sleep(0)

        # 3. fold in order; a refused event changes nothing and is dead-lettered; any other
        # failure stops its partition there. A settling projection folds facts alone here and
        # says what to announce once the batch is folded (step 4).
        dirty: set[DocRef] = set()
        emitted: list[CloudEvent] = []
        folded: list[CloudEvent] = []
        settling = self.emit and isinstance(self.projection, Settling)
        facts_only = settling or (not self.emit and isinstance(self.projection, CatchUp))
        before = dict(working)  # as loaded: a fold never mutates a document
        cause: dict[DocRef, tuple[int, Record, CloudEvent]] = {}  # the last event that changed each
        for index, (record, event, refs) in enumerate(decoded):
            at = (record.topic, record.partition)
            if at in stopped and record.offset >= stopped[at][0]:
                continue
            try:
                if facts_only:  # ``fold`` reads only what ``refs`` named: the batch's documents will do
                    changes = self.projection.fold(working, event)  # type: ignore[attr-defined]
                    caused: list[CloudEvent] = []
                else:
                    outcome = self.projection.apply({ref: working.get(ref) for ref in refs}, event)
                    changes, caused = outcome.changes, self.caused(event, outcome)
            except (EventRefused, Refused) as exc:
                dead.append((record, exc))
                continue
            except Exception as exc:
                stopped[at] = (record.offset, exc)
                continue
            working.update(changes)
            dirty.update(changes)
            if settling:
                cause.update(dict.fromkeys(changes, (index, record, event)))
            elif self.emit and record.offset > self.quiet_until.get(at, -1):
                emitted.extend(caused)
            folded.append(event)
        await asyncio.sleep(0)

        # 4. what a settling projection announces: once per document the batch changed
        if settling:
            try:
                emitted = self._settled(before, working, dirty, cause)
            except Exception as exc:  # a bug: nothing of the batch is written, every partition retries
                self._stop_all(fresh, exc)
                return 0

        def kept(record: Record) -> bool:
            stop = stopped.get((record.topic, record.partition))
            return stop is None or record.offset < stop[0]

        letters = [self._dead_letter(record, exc) for record, exc in dead if kept(record)]
        dead_events = [
            new_event(
                d,
                source=self.service,
                id=deterministic_id(self.name, "dlq", d.topic, str(d.partition), str(d.offset)),
            )
            for d in sorted(letters, key=lambda d: (d.topic, d.partition, d.offset))
        ]
        offsets: dict[tuple[str, str, int], int] = {}
        last: dict[Partition, Record] = {}
        for record in filter(kept, fresh):
            slot = (self.consumer, record.topic, record.partition)
            offsets[slot] = max(offsets.get(slot, -1), record.offset)
            last[(record.topic, record.partition)] = record  # offsets ascend within a partition
        changes = [Change(collection, key, working[(collection, key)]) for collection, key in sorted(dirty)]
        changes += [
            Change(DEAD_LETTERED, place_key(d.topic, d.partition, d.offset), {"error": d.error[:500]})
            for d in letters
        ]
        changes += [
            Change(
                FINGERPRINTS,
                fingerprint_key(self.consumer, topic, partition),
                Fingerprint(self.cluster_id, r.offset, record_digest(r.key, r.value)).to_doc(),
            )
            for (topic, partition), r in sorted(last.items())
        ]
        try:
            await self.store.write(changes, offsets=offsets, outbox=outbox_records(emitted + dead_events))
        except Exception as exc:
            self._stop_all(fresh, exc)
            return 0
        for type_, count in Counter(event.type for event in folded).items():
            EVENTS_CONSUMED.labels(self.service, self.name, type_).inc(count)
        for topic, count in Counter(letter.topic for letter in letters).items():
            DEAD_LETTERS.labels(self.service, self.name, topic).inc(count)
        for partition in last.keys() & self._faults.keys():
            fault = self._faults.pop(partition)
            log.info("%s folds %s[%s] again, past %s", self.name, *partition, fault.describe())
            self._count_parked()
        for partition, (offset, error) in sorted(stopped.items()):
            self._stop(partition, offset, error)
        if self._on_written is not None:
            self._on_written()
        return len(folded)

    def _settled(
        self,
        before: dict[DocRef, Doc | None],
        after: dict[DocRef, Doc | None],
        dirty: set[DocRef],
        cause: dict[DocRef, tuple[int, Record, CloudEvent]],
    ) -> list[CloudEvent]:
        """The events ``settle`` announces for the batch, each with the id and the cause the
        last event that changed its document would have given it, in the batch's order."""
        projection: Settling = self.projection  # type: ignore[assignment]
        out: list[tuple[int, list[CloudEvent]]] = []
        for ref, payloads in projection.settle(before, after, sorted(dirty)):
            index, record, event = cause[ref]
            if record.offset <= self.quiet_until.get((record.topic, record.partition), -1):
                continue  # the version taken over announced it
            out.append((index, self.caused(event, Outcome(emit=payloads))))
        out.sort(key=lambda pair: pair[0])
        return [event for _, events in out for event in events]

    def caused(self, event: CloudEvent, outcome: Outcome) -> list[CloudEvent]:
        """The events folding ``event`` emits, with ids derived from it: the same every time."""
        return [
            new_event(
                payload,
                source=self.service,
                time=event.time,
                id=deterministic_id(self.name, event.id, str(index)),
                cause=event,
            )
            for index, payload in enumerate(outcome.emit)
        ]

    def _stop_all(self, records: Sequence[Record], exc: Exception) -> None:
        """A failure of the whole batch (the store): each partition stops at its first record."""
        first: dict[Partition, int] = {}
        for record in records:
            at = (record.topic, record.partition)
            if at not in self._held:
                first[at] = min(first.get(at, record.offset), record.offset)
        for partition, offset in sorted(first.items()):
            self._stop(partition, offset, exc)

    def _stop(self, partition: Partition, offset: int, exc: Exception) -> None:
        reason = "".join(traceback.format_exception_only(exc)).strip()
        fault = next_fault(self._faults.get(partition), partition, offset, reason[:2000], self.retry)
        self._faults[partition] = fault
        FOLD_FAULTS.labels(self.service, self.name, partition[0]).inc()
        if fault.parked:
            log.error(
                "%s %s. Fix the cause, then restart the service or run `lemma projections resume %s`",
                self.name,
                fault.describe(),
                self.name,
                exc_info=exc,
            )
        else:
            log.warning(
                "%s %s; next try in %.0f s",
                self.name,
                fault.describe(),
                self.retry.delay_s(fault.tries),
                exc_info=exc,
            )
        self._count_parked()
        if self.on_fault is not None:
            self.on_fault(fault)

    def _count_parked(self) -> None:
        parked = sum(1 for fault in self._faults.values() if fault.parked)
        PARTITIONS_PARKED.labels(self.service, self.name).set(parked)

    def _dead_letter(self, record: Record, exc: Exception) -> DeadLettered:
        reason = "".join(traceback.format_exception_only(exc)).strip()
        log.warning("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
        raw = record.value or b""
        return DeadLettered(
            consumer=self.name,
            error=reason[:4000],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode(errors="replace") if record.key else None,
            value=raw[:DEAD_LETTER_VALUE_LIMIT].decode(errors="replace"),
            value_size=len(raw),
        )
