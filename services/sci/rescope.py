"""Rebuilding one learner's or one skill's documents of the live sci version from the log
(``lemma replay sci --learner ID`` / ``--skill S``).

The scope is folded from the log in one pass over the partitions that hold its keys
(``services.sci.log_scope``), up to the log's end, and its documents in the live version are
replaced by the folded ones (``scores`` and ``received`` of the scope: written or deleted;
``session_skill`` of the scope's sessions: written), in one store write with what a rebuild
announces for them (``services.sci.announce.changed_scores``, under the live calibration, which
is not touched) and an OperatorActed record of who did it.

The write is made with the sci service stopped (refused while its consumer group has
members): a batch the service folded beside it could put the old documents back after the
write. Once started again, the service folds on from its offsets, at or before where the fold
stopped, and the sci fold is idempotent (evidence by id, a no-show once per session, claims as
flags), so what it folds again changes nothing. ``--dry-run`` only reads: it runs beside the
service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from services.sci.announce import changed_scores
from services.sci.log_scope import Scope, ScopeFold, fold_more, fold_scope, scope_partitions
from services.sci.projection import CALIBRATIONS, RECEIVED, SCORES, SESSION_SKILL, received_prefix
from shared.catalog import get_catalog
from shared.events.envelope import deterministic_id, new_event
from shared.events.payloads import OperatorActed, Payload
from shared.handover import read_versions
from shared.kafka_connection import KafkaConnection
from shared.log_records import group_members
from shared.log_window import Window, window
from shared.outbox import outbox_records
from shared.projection.fold import Doc, DocRef
from shared.projection.verify import Difference
from shared.projection.versions import VersionError, consumer_of
from shared.settings import Settings
from shared.store import Change, Store, open_store
from shared.store.sqlite import SqliteStore
from shared.store.versioned import VersionStore

NAME = "sci"
PAGE = 1000

Partition = tuple[str, int]


@dataclass
class Rescoped:
    scope: Scope
    version: int
    differences: list[Difference] = field(default_factory=list, repr=False)
    written: int = 0  # times the documents were written (a second time when a batch put back old ones)
    announced: int = 0
    #: "verified", or why not
    check: str = ""
    fold: ScopeFold | None = field(default=None, repr=False)
    seconds: float = 0.0


async def rescope(
    settings: Settings,
    scope: Scope,
    *,
    by: str,
    dry_run: bool = False,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> Rescoped:
    """Rebuild the scope's documents in the live version (``dry_run``: only compare them)."""
    started = time.monotonic()
    store = open_store(settings.store_url_for(NAME))
    try:
        versions = await read_versions(store, NAME)
        if (building := versions.in_progress) is not None:
            raise VersionError(
                f"sci is being rebuilt (version {building.number}, {building.state}): it is built from the "
                "log anyway; run this once it is live, if it is still needed"
            )
        live = VersionStore(store, versions.live)
        consumer = consumer_of(NAME, versions.live)
        running = 0 if dry_run else await group_members(KafkaConnection.of(settings), settings.group(NAME))
        if running:
            raise VersionError(
                f"the sci service is running ({running} consumer(s) in group {settings.group(NAME)}): a "
                "batch it folds beside the write could fold again what the write holds. Stop every "
                "replica, run this again, start them (a replica stopped as a static member stays in the "
                "group up to LEMMA_CONSUMER_SESSION_TIMEOUT_MS); or see the differences with --dry-run, "
                "or rebuild it all with `lemma replay sci` while it runs"
            )
        done = await fold_scope(settings, scope, None, on_batch=on_batch)
        result = Rescoped(scope, versions.live, fold=done)
        await _not_behind(settings, store, consumer, done, on_batch)
        before = await scope_docs(live, scope, done)
        after = rebuilt_docs(done)
        result.differences = compare(before, after)
        if not dry_run:
            announced = await _announcements(live, before, after)
            await _write(live, scope, versions.live, result.differences, announced, by=by, first=True)
            result.written, result.announced = 1, len(announced)
            # nothing folded beside the write: once started, the service folds on from its
            # offsets, at or before where the fold stopped, and the fold is idempotent
            result.check = "verified: written with the sci service stopped, so nothing raced it"
        result.seconds = time.monotonic() - started
        return result
    finally:
        await store.close()


def rebuilt_docs(done: ScopeFold) -> dict[DocRef, Doc]:
    """The scope's documents as the fold gives them."""
    return {ref: doc for ref, doc in done.folded.docs.items() if done.scope.holds_ref(ref, doc)}


async def scope_docs(live: Store, scope: Scope, done: ScopeFold) -> dict[DocRef, Doc]:
    """The live version's documents of the scope (and of the sessions the fold found)."""
    docs: dict[DocRef, Doc] = {}
    learner, skill = scope.learner, scope.skill
    prefix = f"{learner}/" if learner is not None else ""
    for key, doc in await _scan(live, SCORES, prefix):
        if scope.holds(doc["learner_id"], doc["skill"]):
            docs[(SCORES, key)] = doc
    skills = [skill] if skill is not None else [s.id for s in get_catalog().skills]
    for one in skills:
        for key, doc in await _scan(live, RECEIVED, received_prefix(one, learner)):
            docs[(RECEIVED, key)] = doc
    sessions = sorted(key for collection, key in done.folded.docs if collection == SESSION_SKILL)
    for start in range(0, len(sessions), PAGE):
        found = await live.get_many(SESSION_SKILL, sessions[start : start + PAGE])
        docs.update({(SESSION_SKILL, key): doc for key, doc in found.items()})
    return docs


def compare(before: dict[DocRef, Doc], after: dict[DocRef, Doc]) -> list[Difference]:
    """What the write changes: every ``scores`` and ``received`` document of the scope that is
    not the same, and ``session_skill`` documents the fold has (they are never deleted: the
    other participant's scope needs them too)."""
    refs = sorted({ref for ref in before if ref[0] != SESSION_SKILL} | set(after))
    return [
        Difference(collection, key, before.get((collection, key)), after.get((collection, key)))
        for collection, key in refs
        if before.get((collection, key)) != after.get((collection, key))
    ]


async def _scan(store: Store, collection: str, prefix: str) -> list[tuple[str, Doc]]:
    rows: list[tuple[str, Doc]] = []
    after: str | None = None
    while page := await store.scan(collection, prefix, after=after, limit=PAGE):
        rows += page
        after = page[-1][0]
    return rows


async def _not_behind(
    settings: Settings, store: Store, consumer: str, done: ScopeFold, on_batch: Callable[[Window], None]
) -> None:
    """Fold on until the fold stands at least where the service does on every partition read."""
    while True:
        ahead = _ahead(await store.offsets(consumer), done)
        if not ahead:
            return
        await _fold_to(settings, done, None, on_batch)


def _ahead(offsets: dict[Partition, int], done: ScopeFold) -> dict[Partition, int]:
    """The partitions the service has folded past where the fold stops (its next offset)."""
    stops = _stops(done)
    return {tp: o for tp, o in offsets.items() if tp in stops and o + 1 > stops[tp]}


def _stops(done: ScopeFold) -> dict[Partition, int]:
    return {(tp.topic, tp.partition): stop for tp, (_, stop) in done.span.bounds.items()}


async def _fold_to(
    settings: Settings,
    done: ScopeFold,
    offsets: dict[Partition, int] | None,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> None:
    """Fold the scope on from where it stopped: to the log's end, or to ``offsets`` (the last
    offset folded per partition, as the store keeps them)."""
    stops = _stops(done)
    partitions = await scope_partitions(settings, done.scope)
    ends = await window(KafkaConnection.of(settings), partitions, None)
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp, (start, end) in ends.bounds.items():
        begin = max(start, stops.get((tp.topic, tp.partition), start))
        stop = end if offsets is None else min(end, offsets.get((tp.topic, tp.partition), -1) + 1)
        bounds[tp] = (begin, max(begin, stop))
    await fold_more(settings, done, Window(bounds), on_batch=on_batch)


async def _announcements(live: Store, before: dict[DocRef, Doc], after: dict[DocRef, Doc]) -> list[Payload]:
    """What a rebuild going live would announce for these documents: the scores that differ under
    the live calibration (in throw-away stores holding only the scope and the calibrations)."""
    skills = sorted({doc["skill"] for (c, _), doc in after.items() if c == SCORES})
    calibrations = await live.get_many(CALIBRATIONS, skills)
    old, new = SqliteStore(":memory:"), SqliteStore(":memory:")
    try:
        for store, docs in ((old, before), (new, after)):
            changes = [Change(c, k, d) for (c, k), d in sorted(docs.items()) if c == SCORES]
            await store.write(changes + [Change(CALIBRATIONS, s, d) for s, d in calibrations.items()])
        return await changed_scores(old, new)
    finally:
        await old.close()
        await new.close()


async def _write(
    live: Store,
    scope: Scope,
    version: int,
    found: list[Difference],
    announced: list[Payload],
    *,
    by: str,
    first: bool,
) -> None:
    """The scope's documents, the announcements and (the first time) the operator's record, in
    one write to the live version."""
    acted = OperatorActed(
        action="replay",
        service=NAME,
        projection=NAME,
        by=by,
        detail={
            "scope": {"learner": scope.learner, "skill": scope.skill},
            "version": version,
            "documents": len(found),
            "announced": len(announced),
        },
    )
    record = new_event(acted, source=NAME)
    events = [
        new_event(
            payload,
            source=NAME,
            id=deterministic_id(
                NAME,
                "rescope",
                record.id,
                type(payload).__name__,
                str(getattr(payload, "learner_id", "")),
                str(getattr(payload, "skill", "")),
            ),
        )
        for payload in announced
    ]
    changes = [Change(d.collection, d.key, d.rebuilt) for d in found]
    await live.write(changes, outbox=outbox_records([*events, record] if first else events))
