"""Catch-up mode: folding far behind the head of the log, as a rebuild does.

The idea is Kafka Streams' state restore. A rebuild folds the log into a version no reader
sees yet and emits nothing until it goes live, so the work the live fold does for each event
to keep readers current is wasted there: the score and the payloads of each event, and a
store write for every consumed batch. ``CatchUpRuntime`` folds facts alone (``CatchUp.fold``:
exactly the changes ``apply`` makes, nothing to emit), keeps the documents it loaded and
changed in memory across consumed batches, and writes them in one store write a *window*:
the changed documents, the dead letters, each partition's fingerprint and the offsets, all
in that one write. A process killed in a window loses only that window; its offsets were not
written either, so the next run folds it again and nothing is counted twice. Scores are
worked out once at the end: the sci rebuild calibrates its new version, and the version
announces every score that changed when it goes live (``shared.handover``).

A failure that is not about the data stops its partition at the failed record, as in the live
runtime. A window that cannot be written is dropped whole, and each partition it held stops
at its first record in it, to be read and folded again after the backoff.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence

from shared.errors import EventRefused, Refused
from shared.events.envelope import CloudEvent, decode, deterministic_id, new_event
from shared.events.payloads import DeadLettered
from shared.metrics import DEAD_LETTERS, EVENTS_CONSUMED
from shared.outbox import outbox_records
from shared.projection.faults import DEAD_LETTERED, place_key
from shared.projection.fingerprint import FINGERPRINTS, Fingerprint, fingerprint_key, record_digest
from shared.projection.fold import CatchUp, Doc, DocRef
from shared.projection.order import Partition, unfolded
from shared.projection.runtime import ProjectionRuntime, Record
from shared.store.base import Change, Store

#: Events folded in memory before they are written (with their offsets) in one store write.
WINDOW = 50_000
#: Documents held in memory before a write, whatever the events: what bounds the memory.
MAX_DOCS = 150_000


class CatchUpRuntime(ProjectionRuntime):
    """Folds a catching-up version of ``projection``: facts alone, written a window at a time.

    ``handle`` folds a consumed batch into memory and writes once ``window`` events or
    ``max_docs`` documents are held; ``flush`` writes what is held now (the rebuild calls it
    when it has caught up, before it stops, and every few seconds so a kill loses little).
    """

    def __init__(
        self,
        projection: CatchUp,
        store: Store,
        *,
        service: str,
        version: int,
        window: int = WINDOW,
        max_docs: int = MAX_DOCS,
    ) -> None:
        super().__init__(projection, store, service=service, version=version, emit=False)
        self.fold = projection.fold
        self.window = window
        self.max_docs = max_docs
        #: the offsets the store holds for this version, read once (then moved on by each write)
        self._stored: dict[Partition, int] | None = None
        self._clear()

    def _clear(self) -> None:
        #: every document read or changed since the last write (None: there is none)
        self._docs: dict[DocRef, Doc | None] = {}
        self._dirty: set[DocRef] = set()
        #: per partition: the last offset folded, the first one held, the last record held
        self._offsets: dict[Partition, int] = {}
        self._first: dict[Partition, int] = {}
        self._last: dict[Partition, Record] = {}
        self._letters: list[DeadLettered] = []
        self._types: Counter[str] = Counter()
        self._held_events = 0

    def reread_positions(self) -> None:
        """Read the version's offsets from the store again at the next batch (another process
        folded some of its partitions meanwhile). Only with nothing held."""
        assert not self._offsets, "flush first"
        self._stored = None

    @property
    def pending(self) -> int:
        """Records folded (or dead-lettered) in memory and not written yet."""
        return self._held_events

    async def _handle(self, records: Sequence[Record]) -> int:
        if self._stored is None:
            try:
                self._stored = await self.store.offsets(self.consumer)
            except Exception as exc:  # the store: nothing is folded, every partition retries
                self._stop_all(records, exc)
                return 0
        done = {**self._stored, **self._offsets}
        fresh = [r for r in unfolded(records, done) if (r.topic, r.partition) not in self._held]
        if not fresh:
            return 0
        stopped: dict[Partition, tuple[int, Exception]] = {}
        decoded: list[tuple[Record, CloudEvent, list[DocRef]]] = []
        dead: list[tuple[Record, Exception]] = []
        refs_of = self.projection.refs
        for record in fresh:
            try:
                event = decode(record.value or b"")
            except ValueError as exc:
                dead.append((record, exc))
                continue
            try:
                decoded.append((record, event, list(refs_of(event))))
            except (EventRefused, Refused) as exc:
                dead.append((record, exc))
            except Exception as exc:
                stopped.setdefault((record.topic, record.partition), (record.offset, exc))
        await asyncio.sleep(0)

        docs = self._docs
        wanted: dict[str, set[str]] = defaultdict(set)
        for _, _, refs in decoded:
            for ref in refs:
                if ref not in docs:
                    wanted[ref[0]].add(ref[1])
        try:
            for collection, keys in wanted.items():
                found = await self.store.get_many(collection, keys)
                for key in keys:
                    docs[(collection, key)] = found.get(key)
        except Exception as exc:
            self._stop_all(fresh, exc)
            return 0
        await asyncio.sleep(0)

        # The projection reads the documents ``refs`` named, so it is handed the whole cache
        # (every one of them is in it) rather than a view built per event.
        fold, dirty, types = self.fold, self._dirty, self._types
        folded = 0
        for record, event, _ in decoded:
            if stopped:
                stop = stopped.get((record.topic, record.partition))
                if stop is not None and record.offset >= stop[0]:
                    continue
            try:
                changes = fold(docs, event)
            except (EventRefused, Refused) as exc:
                dead.append((record, exc))
                continue
            except Exception as exc:
                stopped[(record.topic, record.partition)] = (record.offset, exc)
                continue
            docs.update(changes)
            dirty.update(changes)
            types[event.type] += 1
            folded += 1

        def kept(record: Record) -> bool:
            stop = stopped.get((record.topic, record.partition))
            return stop is None or record.offset < stop[0]

        self._letters += [self._dead_letter(record, exc) for record, exc in dead if kept(record)]
        held = fresh if not stopped else [r for r in fresh if kept(r)]
        first: dict[Partition, Record] = {}
        for record in reversed(held):
            first[(record.topic, record.partition)] = record
        last: dict[Partition, Record] = {}
        for record in held:
            last[(record.topic, record.partition)] = record  # offsets ascend within a partition
        for at, record in last.items():
            self._offsets[at] = record.offset
            self._last[at] = record
            self._first.setdefault(at, first[at].offset)
        self._held_events += len(held)
        for partition, (offset, error) in sorted(stopped.items()):
            self._stop(partition, offset, error)
        if self._held_events >= self.window or len(docs) >= self.max_docs:
            await self.flush()
        return folded

    async def flush(self) -> None:
        """Write what is held (documents, dead letters, fingerprints, offsets) in one store write."""
        if not self._offsets:
            return
        docs = self._docs
        changes = [
            Change(collection, key, docs[(collection, key)]) for collection, key in sorted(self._dirty)
        ]
        letters = sorted(self._letters, key=lambda d: (d.topic, d.partition, d.offset))
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
            for (topic, partition), r in sorted(self._last.items())
        ]
        dead_events = [
            new_event(
                d,
                source=self.service,
                id=deterministic_id(self.name, "dlq", d.topic, str(d.partition), str(d.offset)),
            )
            for d in letters
        ]
        offsets = {(self.consumer, t, p): o for (t, p), o in self._offsets.items()}
        try:
            await self.store.write(changes, offsets=offsets, outbox=outbox_records(dead_events))
        except Exception as exc:  # nothing of the window is written: each partition folds it again
            first = self._first
            self._clear()
            for partition, offset in sorted(first.items()):
                self._stop(partition, offset, exc)
            return
        assert self._stored is not None
        self._stored.update(self._offsets)
        for type_, count in self._types.items():
            EVENTS_CONSUMED.labels(self.service, self.name, type_).inc(count)
        for topic, count in Counter(letter.topic for letter in letters).items():
            DEAD_LETTERS.labels(self.service, self.name, topic).inc(count)
        for partition in self._offsets.keys() & self._faults.keys():
            self._faults.pop(partition)
            self._count_parked()
        self._clear()
