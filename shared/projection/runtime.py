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

Replicas of a service fold into one store: each batch's write expects every document it read
to be unchanged (compare-and-set; a conflict folds the batch again from a fresh read) and names
the owner epochs of its partitions (a fence: a replica whose partition another claimed since
stops folding it, ``shared.projection.fences``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from shared.errors import EventRefused, Refused
from shared.events.envelope import CloudEvent, decode, deterministic_id, new_event
from shared.log_context import EVENT
from shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    FOLD_BATCH_SECONDS,
    WRITE_CONFLICTS,
)
from shared.outbox import outbox_records
from shared.projection.dead_letters import Record, dead_letter
from shared.projection.faults import DEAD_LETTERED, RetryPolicy, place_key
from shared.projection.fences import PartitionFences, Slot
from shared.projection.fingerprint import FINGERPRINTS, Fingerprint, fingerprint_key, record_digest
from shared.projection.fold import CatchUp, Doc, DocRef, Outcome, Projection, Settling
from shared.projection.holds import FENCED, FaultHook
from shared.projection.order import Partition, unfolded
from shared.projection.versions import consumer_of
from shared.store.base import ABSENT, Change, Conflict, Fenced, Store
from shared.store.versioned import VersionStore

log = logging.getLogger(__name__)
#: one line per event a live fold folds (``_tell``): quieted alone with LEMMA_LOG_LEVELS=lemma.folds=WARNING
folds_log = logging.getLogger("lemma.folds")


#: How many times a batch is folded again after a write conflict before it counts as a fault.
CONFLICT_TRIES = 8

__all__ = ["CONFLICT_TRIES", "FENCED", "FaultHook", "ProjectionRuntime", "Record"]


class ProjectionRuntime(PartitionFences):
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
        owner: str = "",
    ) -> None:
        super().__init__(service, owner)
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
        #: the outbox seqs the last batch wrote, and what waits until they are on the log
        #: (``shared.bus.fold_batch``: a batch is committed to Kafka only after its events)
        self.written: list[str] = []
        self.relayed: Callable[[Sequence[str]], Awaitable[bool]] | None = None
        #: told, after each batch written, the events folded live (not while a rebuild folds a
        #: version, nor records a hand-over keeps quiet): what a service measures on them
        self.observe: Callable[[Sequence[CloudEvent]], None] | None = None
        #: positions the consumer on the offsets of the version now folded (``shared.positions``)
        self.on_reposition: Callable[[], Awaitable[None]] | None = None
        #: records behind the partition end, as of the last batch (``CONSUMER_LAG`` too)
        self.lag: dict[Partition, int] = {}
        #: the partitions the consumer group gave this process (``shared.positions``)
        self.assigned: set[Partition] = set()
        #: the Kafka cluster the consumer reads, written into each partition's fingerprint
        self.cluster_id = ""

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
        #: the documents of ``kept_collections`` read so far with their revisions, kept from
        #: batch to batch
        self._kept: dict[DocRef, tuple[Doc | None, str]] = {}

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

    async def handle(
        self, records: Sequence[Record], *, highwater: dict[tuple[str, int], int] | None = None
    ) -> int:
        """Fold one batch; returns the number of events folded (dead letters excluded).

        A write refused because a document changed since it was read (another replica wrote
        it) is tried again from a fresh read, a few times; one refused because another replica
        claimed a partition stops this one folding it, and the rest of the batch is folded."""
        start = time.perf_counter()
        generation = self.generation
        async with self.lock:
            if generation != self.generation:
                return 0  # fetched for the version folded before a switch: read again from the new one
            folded = 0
            for attempt in range(CONFLICT_TRIES + 1):
                used: dict[Slot, int] = {}
                try:
                    folded = await self._handle(records, used)
                    break
                except Fenced as fenced:
                    self.lost(fenced, used)
                except Conflict as conflict:
                    WRITE_CONFLICTS.labels(self.service, self.name).inc()
                    if attempt == CONFLICT_TRIES:
                        self._stop_all(records, conflict)
                        break
                    await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
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

    async def _handle(self, records: Sequence[Record], used: dict[Slot, int]) -> int:
        """One try at the batch; ``used`` gets the epochs its write names. Raises ``Conflict``
        and ``Fenced`` for ``handle`` to answer; any other failure stops partitions here."""
        try:
            done = await self.store.offsets(self.consumer)
        except Exception as exc:  # the store: nothing of the batch is folded, every partition retries
            self._stop_all(records, exc)
            return 0
        fresh = [r for r in unfolded(records, done) if (r.topic, r.partition) not in self._held]
        if self.fenced:  # only what this replica owns (a partition revoked meanwhile has no epoch)
            fresh = [r for r in fresh if (self.consumer, r.topic, r.partition) in self.epochs]
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
        try:
            working, revs = await self._load(wanted)
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
        live: list[tuple[Record, CloudEvent]] = []  # folded as news, not re-folded: logged, observed
        settling = self.emit and isinstance(self.projection, Settling)
        facts_only = settling or (not self.emit and isinstance(self.projection, CatchUp))
        before = dict(working)  # as loaded: a fold never mutates a document
        cause: dict[DocRef, tuple[int, Record, CloudEvent]] = {}  # the last event that changed each
        for index, (record, event, refs) in enumerate(decoded):
            at = (record.topic, record.partition)
            if at in stopped and record.offset >= stopped[at][0]:
                continue
            context = EVENT.set(event)  # what the fold logs is about this event
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
            finally:
                EVENT.reset(context)
            working.update(changes)
            dirty.update(changes)
            if settling:
                cause.update(dict.fromkeys(changes, (index, record, event)))
            elif self.emit and record.offset > self.quiet_until.get(at, -1):
                emitted.extend(caused)
            if self.emit and record.offset > self.quiet_until.get(at, -1):
                live.append((record, event))
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

        letters = [dead_letter(self.name, record, exc) for record, exc in dead if kept(record)]
        dead_events = [
            new_event(
                d,
                source=self.service,
                id=deterministic_id(self.name, "dlq", d.topic, str(d.partition), str(d.offset)),
            )
            for d in sorted(letters, key=lambda d: (d.topic, d.partition, d.offset))
        ]
        offsets: dict[Slot, int] = {}
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
        used.update(self.fence(last))
        outgoing = outbox_records(emitted + dead_events)
        try:
            await self.store.write(
                changes,
                offsets=offsets,
                outbox=outgoing,
                expect=revs,  # every document the batch read: its decisions rest on them all
                fence=used,
            )
        except (Conflict, Fenced):
            raise
        except Exception as exc:
            self._stop_all(fresh, exc)
            return 0
        self.written = [r.seq for r in outgoing]
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
        if live:
            self._tell(live, emitted)
        if self._on_written is not None:
            self._on_written()
        return len(folded)

    def _tell(self, live: Sequence[tuple[Record, CloudEvent]], emitted: Sequence[CloudEvent]) -> None:
        """After a live batch is written: one log line per event folded (under the event's
        context: its correlation id follows a chain through every service's log) naming what it
        caused, then ``observe``."""
        if folds_log.isEnabledFor(logging.INFO):
            caused: dict[str, list[CloudEvent]] = defaultdict(list)
            for out in emitted:
                if out.causationid is not None:
                    caused[out.causationid].append(out)
            for record, event in live:
                context = EVENT.set(event)
                try:
                    outs = caused.get(event.id, [])
                    folds_log.info(
                        "%s folded %s from %s[%d]@%d%s",
                        self.name,
                        event.type,
                        record.topic,
                        record.partition,
                        record.offset,
                        f", emits {', '.join(out.type for out in outs)}" if outs else "",
                        extra={
                            "projection": self.name,
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "emits": [out.id for out in outs],
                        },
                    )
                finally:
                    EVENT.reset(context)
        if self.observe is not None:
            try:
                self.observe([event for _, event in live])
            except Exception:  # a measurement never fails a fold
                log.exception("%s: observing a folded batch failed", self.name)

    async def _load(self, wanted: dict[str, set[str]]) -> tuple[dict[DocRef, Doc | None], dict[DocRef, str]]:
        """Every document the batch touches with its revision, one read per collection. Kept
        documents come from the last batches unless their revision moved (another replica's
        job rewrote one)."""
        working: dict[DocRef, Doc | None] = {}
        revs: dict[DocRef, str] = {}
        kept = self._kept
        for collection, keys in wanted.items():
            if collection in self.kept_collections:
                cached = [key for key in keys if (collection, key) in kept]
                now = await self.store.revisions(collection, cached) if cached else {}
                for key in cached:
                    if now.get(key, ABSENT) != kept[(collection, key)][1]:
                        del kept[(collection, key)]
                unread = [key for key in keys if (collection, key) not in kept]
                found = await self.store.read(collection, unread) if unread else {}
                for key in unread:
                    stored = found.get(key)
                    kept[(collection, key)] = (None, ABSENT) if stored is None else (stored.doc, stored.rev)
            else:
                found = await self.store.read(collection, keys)
                for key in keys:
                    stored = found.get(key)
                    kept_or_read = (None, ABSENT) if stored is None else (stored.doc, stored.rev)
                    working[(collection, key)], revs[(collection, key)] = kept_or_read
                continue
            for key in keys:
                working[(collection, key)], revs[(collection, key)] = kept[(collection, key)]
        return working, revs

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
