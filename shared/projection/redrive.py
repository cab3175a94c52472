"""Fold dead-lettered records again, after the cause is fixed: each at most once, ever.

A dead letter names the original record (topic, partition, offset), which stays in the log.
``redrive`` folds those records through the projection as its consumer would, one store write
each: the changed documents, the events the fold emits (with the ids a normal fold would give
them, so a reader can drop a copy) and a marker ``_redriven/{topic}:{partition}:{offset}``.
Only a record the version folded into dead-lettered (``_dead_lettered``, written with the
letter) is folded; one with a marker is not folded again, so a second redrive of the same dead
letter is a no-op, and a record this version folded normally (a rebuild took it) is never
folded twice. A record still refused stays dead-lettered as it was (no new dead letter, no
marker): it can be redriven after another fix. A rebuild redrives into its new version what
was redriven into the live one (``carry_over``).
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.errors import EventRefused, Refused
from shared.events.envelope import decode
from shared.kafka_connection import KafkaConnection
from shared.log_records import read_records
from shared.outbox import outbox_records
from shared.projection.faults import DEAD_LETTERED, parse_place_key, place_key
from shared.projection.fold import Doc, DocRef
from shared.projection.runtime import ProjectionRuntime, Record
from shared.store.base import Change, Store

REDRIVEN = "_redriven"
FOLDED = "folded"
ALREADY = "already-redriven"
NOT_DEAD = "not-dead-lettered-here"
STILL_REFUSED = "still-refused"
FAILED = "failed"


@dataclass(frozen=True)
class Redriven:
    """What came of one record: ``FOLDED``, ``ALREADY``, ``STILL_REFUSED`` or ``FAILED`` (why)."""

    topic: str
    partition: int
    offset: int
    outcome: str
    why: str = ""


def _reason(exc: Exception) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:2000]


async def redrive(runtime: ProjectionRuntime, records: Sequence[Record], *, by: str) -> list[Redriven]:
    """Fold each of ``records`` (read back from the log) unless it was redriven before."""
    results: list[Redriven] = []
    async with runtime.lock:
        for record in records:
            at = (record.topic, record.partition, record.offset)
            key = place_key(*at)
            if await runtime.store.get(REDRIVEN, key) is not None:
                results.append(Redriven(*at, ALREADY))
                continue
            if await runtime.store.get(DEAD_LETTERED, key) is None:
                results.append(Redriven(*at, NOT_DEAD, "this version folded it, or has not read it"))
                continue
            try:
                event = decode(record.value or b"")
            except ValueError as exc:  # still not an event we know
                results.append(Redriven(*at, STILL_REFUSED, _reason(exc)))
                continue
            try:
                refs = list(runtime.projection.refs(event))
                wanted: dict[str, set[str]] = defaultdict(set)
                for collection, doc_key in refs:
                    wanted[collection].add(doc_key)
                docs: dict[DocRef, Doc | None] = {}
                for collection, keys in wanted.items():
                    found = await runtime.store.get_many(collection, keys)
                    docs |= {(collection, k): found.get(k) for k in keys}
                outcome = runtime.projection.apply(docs, event)
                caused = runtime.caused(event, outcome)
            except (EventRefused, Refused) as exc:
                results.append(Redriven(*at, STILL_REFUSED, _reason(exc)))
                continue
            except Exception as exc:
                results.append(Redriven(*at, FAILED, _reason(exc)))
                continue
            marker = {"event_id": event.id, "by": by, "at": datetime.now(UTC).isoformat()}
            changes = [Change(c, k, doc) for (c, k), doc in sorted(outcome.changes.items())]
            changes.append(Change(REDRIVEN, key, marker))
            # a version being built announces nothing: what it would emit, it announces going live
            await runtime.store.write(changes, outbox=outbox_records(caused if runtime.emit else []))
            results.append(Redriven(*at, FOLDED))
    return results


async def carry_over(runtime: ProjectionRuntime, live: Store, kafka: KafkaConnection) -> list[Redriven]:
    """Redrive into ``runtime``'s version what was redriven into the ``live`` version (each
    once: the new version dead-lettered the same records, and an operator's redrive is a fact
    the log does not hold)."""
    places: list[tuple[str, int, int]] = []
    after: str | None = None
    while page := await live.scan(REDRIVEN, after=after, limit=1000):
        places += [parse_place_key(key) for key, _ in page]
        after = page[-1][0]
    if not places:
        return []
    read = await read_records(kafka, places)
    return await redrive(runtime, [read[p] for p in places if p in read], by="rebuild (carried over)")
