"""Catch-up mode (``shared.projection.catchup``) gives the store the live fold gives, to the byte.

A simulated log (registrations, claims, sessions, ratings, no-shows and the evidence made of
them) is folded into real (in-memory SQLite) stores twice: by the live runtime in random
batches with redeliveries, scoring every fact with a calibration in place for every skill,
and by the catch-up runtime in other random batches and windows. Documents, offsets and
fingerprints must be identical; a window lost to a kill or to a failed write is folded again
and counted once.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from services.evidence.projection import EvidenceProjection
from services.sci.projection import SciProjection
from shared.catalog import get_catalog
from shared.projection.catchup import CatchUpRuntime
from shared.projection.fold import CatchUp
from shared.projection.runtime import ProjectionRuntime
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec
from tests.support.sim_log import EVIDENCE_LOG, SCI_LOG, SKILLS, calibrations


def stored(store: SqliteStore) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, int, int]]]:
    db: sqlite3.Connection = store._db  # the bytes as written
    docs = list(db.execute("SELECT collection, key, doc FROM docs ORDER BY collection, key"))
    offsets = list(db.execute("SELECT consumer, topic, partition, offset FROM offsets ORDER BY 1, 2, 3"))
    return docs, offsets


async def live(projection: CatchUp, batches: Sequence[Sequence[Rec]], state: Sequence[Change]) -> SqliteStore:
    store = SqliteStore(":memory:")
    await store.write(state)
    runtime = ProjectionRuntime(projection, store, service="test")
    for batch in batches:
        await runtime.handle(batch)
    return store


async def caught_up(
    projection: CatchUp, batches: Sequence[Sequence[Rec]], state: Sequence[Change], window: int
) -> SqliteStore:
    store = SqliteStore(":memory:")
    await store.write(state)
    runtime = CatchUpRuntime(projection, store, service="test", version=1, window=window)
    runtime.assigned = {(r.topic, r.partition) for batch in batches for r in batch}  # a fresh version
    for batch in batches:
        await runtime.handle(batch)
    await runtime.flush()
    return store


@st.composite
def deliveries(draw: st.DrawFn, recs: list[Rec]) -> list[list[Rec]]:
    """Random batch cuts; some batches are delivered again (from an earlier cut)."""
    cuts = sorted(set(draw(st.lists(st.integers(1, len(recs) - 1), max_size=40))))
    bounds = [0, *cuts, len(recs)]
    batches: list[list[Rec]] = []
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        batches.append(recs[start:end])
        if draw(st.integers(0, 3)) == 0:
            back = draw(st.sampled_from(bounds[: n + 1]))
            batches.append(recs[back:end])  # redelivered after a crash
    return batches


@settings(max_examples=10, deadline=None)
@given(st.data())
async def test_sci_catch_up_equals_the_live_fold_with_a_calibration_for_every_skill(
    data: st.DataObject,
) -> None:
    state = await calibrations()
    assert {c.key for c in state} == set(SKILLS)  # every skill has one
    projection = SciProjection(SKILLS)
    window = data.draw(st.sampled_from([1, 50, 700, 100_000]))
    incremental = await live(projection, data.draw(deliveries(SCI_LOG)), state)
    rebuilt = await caught_up(projection, data.draw(deliveries(SCI_LOG)), state, window)
    assert stored(rebuilt) == stored(incremental)
    assert len(stored(rebuilt)[0]) > 1000


@settings(max_examples=10, deadline=None)
@given(st.data())
async def test_evidence_catch_up_equals_the_live_fold(data: st.DataObject) -> None:
    projection = EvidenceProjection(get_catalog())
    window = data.draw(st.sampled_from([1, 50, 700, 100_000]))
    incremental = await live(projection, data.draw(deliveries(EVIDENCE_LOG)), [])
    rebuilt = await caught_up(projection, data.draw(deliveries(EVIDENCE_LOG)), [], window)
    assert stored(rebuilt) == stored(incremental)


async def test_a_window_lost_to_a_kill_is_folded_again_and_counted_once() -> None:
    projection = SciProjection(SKILLS)
    store = SqliteStore(":memory:")
    first = CatchUpRuntime(projection, store, service="test", version=1, window=10_000_000)
    half = len(SCI_LOG) // 2
    await first.handle(SCI_LOG[: half // 2])
    await first.flush()  # written with its offsets
    await first.handle(SCI_LOG[half // 2 : half])  # folded, never written: the process is killed
    assert first.pending == half - half // 2
    again = CatchUpRuntime(projection, store, service="test", version=1, window=333)
    for start in range(0, len(SCI_LOG), 500):  # the consumer reads from the stored offsets, or earlier
        await again.handle(SCI_LOG[start : start + 500])
    await again.flush()
    assert stored(store) == stored(await live(projection, [SCI_LOG], []))


class FailingOnce(SqliteStore):
    """A store whose next write fails (a full disk, a lost connection)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.fail = False

    async def write(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        await super().write(*args, **kwargs)


async def test_a_window_that_cannot_be_written_stops_each_partition_at_its_first_record_in_it() -> None:
    projection = EvidenceProjection(get_catalog())
    store = FailingOnce()
    runtime = CatchUpRuntime(projection, store, service="test", version=1, window=10_000_000)
    await runtime.handle(EVIDENCE_LOG[:300])
    await runtime.flush()
    await runtime.handle(EVIDENCE_LOG[300:900])
    firsts: dict[tuple[str, int], int] = {}
    for r in EVIDENCE_LOG[300:900]:
        firsts.setdefault((r.topic, r.partition), r.offset)
    store.fail = True
    await runtime.flush()
    assert {tp: fault.offset for tp, fault in runtime.faults.items()} == firsts
    assert runtime.pending == 0
    for partition in firsts:  # the listener rewinds there and lets it go after the backoff
        runtime.forget(partition)
    await runtime.handle(EVIDENCE_LOG[300:])
    await runtime.flush()
    assert runtime.faults == {}
    assert stored(store) == stored(await live(projection, [EVIDENCE_LOG], []))


async def test_the_catch_up_fold_reads_what_it_wrote_in_an_earlier_window() -> None:
    """A learner's documents change in many windows; each window starts from the written ones."""
    projection = SciProjection(SKILLS)
    rebuilt = await caught_up(projection, [SCI_LOG[i : i + 7] for i in range(0, len(SCI_LOG), 7)], [], 40)
    scores = [json.loads(d) for c, _, d in stored(rebuilt)[0] if c == "scores"]
    assert max(s["facts"] for s in scores) > 5
    assert stored(rebuilt) == stored(await live(projection, [SCI_LOG], []))


async def test_set_aside_records_are_folded_after_the_rest_and_counted_once() -> None:
    """As a rebuild folding partitions apart does: the no-shows (keyed by session, changing a
    learner's documents) wait for the rest, survive a kill, and are folded once."""
    projection = SciProjection(SKILLS)
    store = SqliteStore(":memory:")
    defer = {"lemma.sessions.v1": frozenset({"scores", "received"})}
    first = CatchUpRuntime(projection, store, service="test", version=1, window=300, defer=defer)
    for start in range(0, len(SCI_LOG), 250):
        await first.handle(SCI_LOG[start : start + 250])
    await first.flush()
    no_shows = sum(1 for r in SCI_LOG if b"NoShowUpheld" in (r.value or b""))  # the claims that stand
    assert no_shows and await store.count("_deferred") == no_shows
    assert stored(store) != stored(await live(projection, [SCI_LOG], []))
    again = CatchUpRuntime(projection, store, service="test", version=1, window=7)  # after a kill
    await again.handle(SCI_LOG)  # nothing new: every offset is passed
    assert await again.fold_deferred() == no_shows
    assert await again.fold_deferred() == 0
    assert stored(store) == stored(await live(projection, [SCI_LOG], []))


async def test_a_runtime_that_starts_its_partitions_from_nothing_does_not_look_for_what_it_never_wrote() -> (
    None
):
    """Started on partitions no record of which was folded (a fresh version), the runtime knows
    a document it never wrote is not there; killed and run again, it looks in the store."""

    class Counting(SqliteStore):
        def __init__(self) -> None:
            super().__init__(":memory:")
            self.looked = 0

        async def get_many(self, collection, keys):  # type: ignore[no-untyped-def]
            keys = list(keys)
            self.looked += len(keys)
            return await super().get_many(collection, keys)

    projection = SciProjection(SKILLS)
    partitions = {(r.topic, r.partition) for r in SCI_LOG}
    store = Counting()
    first = CatchUpRuntime(projection, store, service="test", version=1, window=400)
    first.assigned = set(partitions)
    half = len(SCI_LOG) // 2
    await first.handle(SCI_LOG[:half])
    await first.flush()
    fresh_looks = store.looked
    again = CatchUpRuntime(projection, store, service="test", version=1, window=400)
    again.assigned = set(partitions)
    await again.handle(SCI_LOG)
    await again.flush()
    assert stored(store) == stored(await live(projection, [SCI_LOG], []))
    assert fresh_looks < (store.looked - fresh_looks) / 2  # the second, resumed, looks everything up
