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

A rebuild folding a phase's partitions in several processes (``shared.rebuild_workers``) has
each runtime set aside the events whose documents other partitions share (``defer``): they are
written in the window, as ``_deferred`` documents, with the offsets that pass them, and folded
by one process once the phase is done (``fold_deferred``), each deleted in the write that
folds it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.errors import EventRefused, Refused
from shared.events.envelope import CloudEvent, decode, deterministic_id, new_event
from shared.events.payloads import DeadLettered
from shared.metrics import DEAD_LETTERS, EVENTS_CONSUMED
from shared.outbox import outbox_records
from shared.projection.dead_letters import dead_letter
from shared.projection.faults import DEAD_LETTERED, parse_place_key, place_key
from shared.projection.fingerprint import FINGERPRINTS, Fingerprint, fingerprint_key, record_digest
from shared.projection.fold import CatchUp, Doc, DocRef
from shared.projection.order import Partition, unfolded
from shared.projection.runtime import ProjectionRuntime, Record
from shared.store.base import Change, Store

#: Events folded in memory before they are written (with their offsets) in one store write.
WINDOW = 50_000
#: Documents held in memory before a write, whatever the events: what bounds the memory.
MAX_DOCS = 150_000
#: Documents a fresh runtime remembers having written (their hashes: some 60 MB): past it, it
#: looks every document up in the store.
WRITTEN_MAX = 1_500_000
#: Records set aside for after the phase, one document each, keyed by their place in the log.
DEFERRED = "_deferred"
PAGE = 1000


@dataclass
class _Held:
    """A deferred record read back (the runtime's ``Record``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Folded:
    """What folding some records into the cache gave: events folded, refused records, and per
    partition the record that failed for another reason."""

    def __init__(self) -> None:
        self.folded = 0
        self.dead: list[tuple[Record, Exception]] = []
        self.stopped: dict[Partition, tuple[int, Exception]] = {}
        self.deferred: list[Record] = []

    def kept(self, record: Record) -> bool:
        stop = self.stopped.get((record.topic, record.partition))
        return stop is None or record.offset < stop[0]


class CatchUpRuntime(ProjectionRuntime):
    """Folds a catching-up version of ``projection``: facts alone, written a window at a time.

    ``handle`` folds a consumed batch into memory and writes once ``window`` events or
    ``max_docs`` documents are held; ``flush`` writes what is held now (the rebuild calls it
    when it has caught up, before it stops, and every few seconds so a kill loses little).
    ``defer``: per topic (its name on the cluster), the collections whose events are set aside.
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
        defer: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        super().__init__(projection, store, service=service, version=version, emit=False)
        self.fold = projection.fold
        self.window = window
        self.max_docs = max_docs
        self.defer: Mapping[str, frozenset[str]] = defer or {}
        #: the offsets the store holds for this version, read once (then moved on by each write)
        self._stored: dict[Partition, int] | None = None
        #: whether no record of the partitions folded here had been folded into the version when
        #: this runtime started on them: then a document it never wrote does not exist (its
        #: partitions' documents are theirs alone), and is not looked for in the store
        self._fresh = False
        #: the hashes of the documents it wrote, while fresh (a hash it holds may be another
        #: document's: that one is looked up, no more)
        self._written: set[int] = set()
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
        self._deferred: list[Record] = []
        self._types: Counter[str] = Counter()
        self._held_events = 0

    def reread_positions(self) -> None:
        """Read the version's offsets from the store again at the next batch (another process
        folded some of its partitions meanwhile). Only with nothing held."""
        assert not self._offsets, "flush first"
        self._stored = None
        self._fresh = False

    @property
    def pending(self) -> int:
        """Records folded (or dead-lettered, or set aside) in memory and not written yet."""
        return self._held_events

    async def _handle(
        self, records: Sequence[Record], used: dict[tuple[str, str, int], int] | None = None
    ) -> int:
        """Folds in memory, written by windows; a rebuild folds alone (its lease), unfenced."""
        if self._stored is None:
            try:
                self._stored = await self.store.offsets(self.consumer)
            except Exception as exc:  # the store: nothing is folded, every partition retries
                self._stop_all(records, exc)
                return 0
            self._fresh = bool(self.assigned) and not self.assigned & self._stored.keys()
            self._written = set()
        done = {**self._stored, **self._offsets}
        fresh = [r for r in unfolded(records, done) if (r.topic, r.partition) not in self._held]
        if not fresh:
            return 0
        try:
            result = await self._fold(fresh, self.defer, fresh=self._fresh)
        except Exception as exc:  # the store could not be read
            self._stop_all(fresh, exc)
            return 0
        kept = result.kept
        self._letters += [dead_letter(self.name, record, exc) for record, exc in result.dead if kept(record)]
        self._deferred += [record for record in result.deferred if kept(record)]
        held = fresh if not result.stopped else [r for r in fresh if kept(r)]
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
        for partition, (offset, error) in sorted(result.stopped.items()):
            self._stop(partition, offset, error)
        if self._held_events >= self.window or len(self._docs) >= self.max_docs:
            await self.flush()
        return result.folded

    async def _fold(
        self, records: Sequence[Record], defer: Mapping[str, frozenset[str]], *, fresh: bool
    ) -> _Folded:
        """Decode ``records``, load what they name into the cache (``fresh``: only what this
        runtime wrote), fold them in order."""
        out = _Folded()
        stopped, dead = out.stopped, out.dead
        written = self._written
        decoded: list[tuple[Record, CloudEvent]] = []
        wanted: dict[str, set[str]] = defaultdict(set)
        docs = self._docs
        refs_of = self.projection.refs
        for record in records:
            try:
                event = decode(record.value or b"")
            except ValueError as exc:
                dead.append((record, exc))
                continue
            try:
                refs = list(refs_of(event))
            except (EventRefused, Refused) as exc:
                dead.append((record, exc))
                continue
            except Exception as exc:
                stopped.setdefault((record.topic, record.partition), (record.offset, exc))
                continue
            shared = defer.get(record.topic)
            if shared and any(collection in shared for collection, _ in refs):
                out.deferred.append(record)
                continue
            decoded.append((record, event))
            for ref in refs:
                if ref not in docs:
                    if fresh and hash(ref) not in written:
                        docs[ref] = None  # never written: there is none
                    else:
                        wanted[ref[0]].add(ref[1])
        await asyncio.sleep(0)
        for collection, keys in wanted.items():
            found = await self.store.get_many(collection, keys)
            for key in keys:
                docs[(collection, key)] = found.get(key)
        await asyncio.sleep(0)
        # The projection reads the documents ``refs`` named, so it is handed the whole cache
        # (every one of them is in it) rather than a view built per event.
        fold, dirty, types = self.fold, self._dirty, self._types
        for record, event in decoded:
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
            out.folded += 1
        return out

    def _changes(self) -> tuple[list[Change], list[DeadLettered]]:
        """The documents, dead letters and fingerprints held, as store changes (and the letters)."""
        docs = self._docs
        changes = [Change(c, k, docs[(c, k)]) for c, k in sorted(self._dirty)]
        letters = sorted(self._letters, key=lambda d: (d.topic, d.partition, d.offset))
        changes += [
            Change(DEAD_LETTERED, place_key(d.topic, d.partition, d.offset), {"error": d.error[:500]})
            for d in letters
        ]
        changes += [
            Change(DEFERRED, place_key(r.topic, r.partition, r.offset), _held_doc(r)) for r in self._deferred
        ]
        changes += [
            Change(
                FINGERPRINTS,
                fingerprint_key(self.consumer, topic, partition),
                Fingerprint(self.cluster_id, r.offset, record_digest(r.key, r.value)).to_doc(),
            )
            for (topic, partition), r in sorted(self._last.items())
        ]
        return changes, letters

    def _dead_events(self, letters: Sequence[DeadLettered]) -> list[CloudEvent]:
        return [
            new_event(
                d,
                source=self.service,
                id=deterministic_id(self.name, "dlq", d.topic, str(d.partition), str(d.offset)),
            )
            for d in letters
        ]

    def _counted(self, letters: Sequence[DeadLettered]) -> None:
        for type_, count in self._types.items():
            EVENTS_CONSUMED.labels(self.service, self.name, type_).inc(count)
        for topic, count in Counter(letter.topic for letter in letters).items():
            DEAD_LETTERS.labels(self.service, self.name, topic).inc(count)

    async def flush(self) -> None:
        """Write what is held (documents, dead letters, fingerprints, offsets) in one store write."""
        if not self._offsets:
            return
        changes, letters = self._changes()
        offsets = {(self.consumer, t, p): o for (t, p), o in self._offsets.items()}
        try:
            await self.store.write(
                changes, offsets=offsets, outbox=outbox_records(self._dead_events(letters))
            )
        except Exception as exc:  # nothing of the window is written: each partition folds it again
            first = self._first
            self._clear()
            for partition, offset in sorted(first.items()):
                self._stop(partition, offset, exc)
            return
        assert self._stored is not None
        self._stored.update(self._offsets)
        if self._fresh:
            self._written.update(map(hash, self._dirty))
            if len(self._written) > WRITTEN_MAX:  # memory: look documents up from now on
                self._fresh, self._written = False, set()
        self._counted(letters)
        for partition in self._offsets.keys() & self._faults.keys():
            self._faults.pop(partition)
            self._count_parked()
        self._clear()

    async def fold_deferred(self) -> int:
        """Fold every record a phase set aside, in log order per partition, each deleted in the
        write that folds it (a window at a time); returns how many were folded (not refused). A
        failure that is not about the data is raised: the records stay set aside for the next run."""
        await self.flush()
        places: list[tuple[str, int, int, Doc]] = []
        after: str | None = None
        while page := await self.store.scan(DEFERRED, after=after, limit=PAGE):
            places += [(*parse_place_key(key), doc) for key, doc in page]
            after = page[-1][0]
        places.sort(key=lambda place: place[:3])
        folded = 0
        for start in range(0, len(places), self.window):
            chunk = [_held(*place) for place in places[start : start + self.window]]
            result = await self._fold(chunk, {}, fresh=False)
            if result.stopped:
                partition, (offset, error) = min(result.stopped.items())
                self._clear()
                raise RuntimeError(
                    f"a set-aside record of {partition} at {offset} failed: {error!r}"
                ) from error
            folded += result.folded
            self._letters = [dead_letter(self.name, record, exc) for record, exc in result.dead]
            changes, letters = self._changes()
            changes += [Change(DEFERRED, place_key(r.topic, r.partition, r.offset), None) for r in chunk]
            try:
                await self.store.write(changes, outbox=outbox_records(self._dead_events(letters)))
                self._counted(letters)
            finally:
                self._clear()
        return folded


def _held_doc(record: Record) -> Doc:
    """A set-aside record as a document: its value decoded (it is an event's JSON), its key as
    a dead letter would show it."""
    return {
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "value": (record.value or b"").decode(),
    }


def _held(topic: str, partition: int, offset: int, doc: Doc) -> _Held:
    key = doc["key"]
    return _Held(topic, partition, offset, key.encode() if key is not None else None, doc["value"].encode())
