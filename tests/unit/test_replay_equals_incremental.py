"""A full rebuild equals the incremental result, byte for byte.

The real projection runtime folds the same records into two real (in-memory SQLite) stores:
once as a single batch, as a rebuild does, and once cut into random batches with random
redeliveries (a consumer re-reading after a crash or a rebalance). The stored documents must
be identical to the byte.
"""

from __future__ import annotations

import json
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from services.evidence.projection import EvidenceProjection
from services.sci.calibration import calibrate
from services.sci.projection import SciProjection
from services.sci.recalibration import ratings_in
from shared.catalog import get_catalog
from shared.events import encode
from shared.projection.fold import Projection
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.population import session_burst
from tests.support.records import Rec


def records(sessions: int, seed: int) -> list[Rec]:
    """The session burst as it would sit in three partitions of its topic, keyed by session."""
    out: list[Rec] = []
    next_offset = [0, 0, 0]
    for event in session_burst(sessions, learners=8, seed=seed):
        partition = hash(event.key) % 3
        out.append(Rec(event.topic, partition, next_offset[partition], event.key.encode(), encode(event)))
        next_offset[partition] += 1
    return out


def stored(store: SqliteStore) -> list[tuple[str, str, str]]:
    db: sqlite3.Connection = store._db  # the bytes as written
    return list(db.execute("SELECT collection, key, doc FROM docs ORDER BY collection, key"))


async def fold_into(projection: Projection, batches: list[list[Rec]]) -> SqliteStore:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(projection, store, service="test")
    for batch in batches:
        await runtime.handle(batch)
    return store


async def fold(projection: Projection, batches: list[list[Rec]]) -> list[tuple[str, str, str]]:
    return stored(await fold_into(projection, batches))


async def calibration_of(store: SqliteStore, skill: str) -> str:
    """The skill's calibration over what the store holds, as the bytes the job would store."""
    return json.dumps(calibrate(await ratings_in(store, skill)).correction().to_doc())


@st.composite
def deliveries(draw: st.DrawFn, recs: list[Rec]) -> list[list[Rec]]:
    """Random batch cuts; some batches are delivered again (from an earlier point)."""
    batches: list[list[Rec]] = []
    i = 0
    while i < len(recs):
        size = draw(st.integers(1, 25))
        batches.append(recs[i : i + size])
        if draw(st.booleans()):
            back = draw(st.integers(0, i))
            batches.append(recs[back : i + size])  # redelivered after a crash
        i += size
    return batches


RECORDS = records(sessions=30, seed=3)


@settings(max_examples=25, deadline=None)
@given(deliveries(RECORDS))
async def test_evidence_rebuild_equals_incremental(batches: list[list[Rec]]) -> None:
    projection = EvidenceProjection(get_catalog())
    assert await fold(projection, batches) == await fold(projection, [RECORDS])


@settings(max_examples=25, deadline=None)
@given(st.data())
async def test_sci_rebuild_equals_incremental(data: st.DataObject) -> None:
    """sci folds what evidence emits; the evidence it gets is cut and redelivered at random."""
    evidence_store = SqliteStore(":memory:")
    await ProjectionRuntime(EvidenceProjection(get_catalog()), evidence_store, service="t").handle(RECORDS)
    emitted = [r for r in await evidence_store.pending_outbox() if r.topic == "lemma.evidence.v1"]
    evidence = [
        Rec(r.topic, hash(r.key) % 3, n, r.key.encode(), r.value) for n, r in enumerate(emitted)
    ]  # one running offset: offsets only need to grow within a partition
    sessions = [r for r in RECORDS]
    everything = sessions + evidence
    projection = SciProjection(s.id for s in get_catalog().skills)
    batches = data.draw(deliveries(everything))
    incremental, rebuilt = await fold_into(projection, batches), await fold_into(projection, [everything])
    assert stored(incremental) == stored(rebuilt)
    # the calibration is a function of the rating set, so it is the same over both
    for skill in {json.loads(r.value or b"{}")["data"]["skill"] for r in evidence}:
        assert await calibration_of(incremental, skill) == await calibration_of(rebuilt, skill)
