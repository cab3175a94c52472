"""The live sci fold announces once per learner and skill per batch (``Settling``).

Through the real runtime and an in-memory SQLite store with a calibration in place: a batch
that folds several facts of one learner emits one SciUpdated, the one the last fact alone
would have emitted (its revision, its score, its id and cause), and a TierChanged from the
tier before the batch to the tier after, only when they differ.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.sci.domain import Correction
from services.sci.projection import CALIBRATIONS, SciProjection
from shared.catalog import get_catalog
from shared.events import decode, encode, new_event
from shared.events.envelope import CloudEvent, deterministic_id
from shared.events.payloads import EvidenceRecorded, SciUpdated, SkillClaimed, TierChanged
from shared.projection.fold import fold_events
from shared.projection.runtime import ProjectionRuntime
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec
from tests.support.sim_log import SCI_LOG, calibrations

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ML = "machine-learning"
SKILLS = [s.id for s in get_catalog().skills]
CALIBRATION = Correction(
    bias={"r1": 0.4, "r2": -0.3}, weight={"r1": 2.0}, ratings=150, version="test", digest="d"
)


def evidence(learner: str, n: int, rater: str, value: int) -> CloudEvent:
    at = T0 + timedelta(days=n)
    payload = EvidenceRecorded(
        evidence_id=f"{learner}-{n}",
        learner_id=learner,
        skill=ML,
        specialty="nlp",
        session_id=f"{learner}-s{n}",
        rater_id=rater,
        scores={"model-selection": value, "deployment": value},
        occurred_at=at,
    )
    return new_event(payload, source="evidence", time=at)


def records(events: list[CloudEvent]) -> list[Rec]:
    return [Rec(e.topic, 0, n, e.key.encode(), encode(e)) for n, e in enumerate(events)]


async def announced(batches: list[list[Rec]], quiet_until: int = -1) -> list[CloudEvent]:
    store = SqliteStore(":memory:")
    await store.write([Change(CALIBRATIONS, ML, CALIBRATION.to_doc())])
    runtime = ProjectionRuntime(SciProjection(SKILLS), store, service="sci")
    runtime.quiet_until[("lemma.evidence.v1", 0)] = quiet_until
    for batch in batches:
        await runtime.handle(batch)
    return [decode(r.value) for r in await store.pending_outbox(10_000)]


def sci(events: list[CloudEvent]) -> list[SciUpdated]:
    return [e.data for e in events if isinstance(e.data, SciUpdated)]


EVENTS = [
    new_event(SkillClaimed(learner_id="ann", skill=ML, self_level="advanced"), source="passport", time=T0),
    evidence("ann", 1, "r1", 4),
    evidence("bob", 1, "r2", 3),
    evidence("ann", 2, "r2", 5),
    evidence("ann", 3, "r3", 5),
]
RECORDS = [r for r in records(EVENTS) if r.topic == "lemma.evidence.v1"]
CLAIM = records(EVENTS[:1])


async def test_one_batch_announces_each_learner_once_with_what_the_last_fact_alone_would() -> None:
    one_by_one = await announced([CLAIM, *([r] for r in RECORDS)])
    together = await announced([CLAIM, RECORDS])
    updates = [e for e in together if isinstance(e.data, SciUpdated)]
    assert [(u.learner_id, u.revision) for u in sci(updates)] == [("bob", 1), ("ann", 3)]
    last_alone = [e for e in one_by_one if isinstance(e.data, SciUpdated) and e.data.learner_id == "ann"][-1]
    ann = updates[1]
    assert ann == last_alone  # the same payload, id, time and cause
    assert ann.id == deterministic_id("sci", EVENTS[4].id, "0") and ann.causationid == EVENTS[4].id
    assert sci([ann])[0].calibration == 150 and sci([ann])[0].sessions == 3
    assert len([e for e in one_by_one if isinstance(e.data, SciUpdated)]) == 4


async def test_tier_changed_goes_from_the_tier_before_the_batch_to_the_tier_after() -> None:
    one_by_one = await announced([CLAIM, *([r] for r in RECORDS)])
    together = await announced([CLAIM, RECORDS])
    moves = [
        (e.data.learner_id, e.data.from_tier, e.data.to_tier)
        for e in one_by_one
        if isinstance(e.data, TierChanged)
    ]
    coalesced = [
        (e.data.learner_id, e.data.from_tier, e.data.to_tier)
        for e in together
        if isinstance(e.data, TierChanged)
    ]
    assert ("ann", 1, 2) in moves
    firsts = {who: frm for who, frm, _ in reversed(moves)}
    lasts = {who: to for who, _, to in moves}
    assert sorted(coalesced) == sorted(
        (who, firsts[who], lasts[who]) for who in lasts if firsts[who] != lasts[who]
    )


async def test_a_batch_whose_facts_the_version_taken_over_announced_stays_quiet() -> None:
    together = await announced([CLAIM, RECORDS], quiet_until=RECORDS[-1].offset)
    assert [e for e in together if isinstance(e.data, SciUpdated)] == []
    later = await announced([CLAIM, RECORDS], quiet_until=RECORDS[-2].offset)
    assert [e.data.learner_id for e in later if isinstance(e.data, SciUpdated)] == ["ann"]


async def test_a_redelivered_batch_announces_nothing_new_and_a_claim_alone_nothing() -> None:
    again = await announced([CLAIM, RECORDS, RECORDS, CLAIM])
    assert len([e for e in again if isinstance(e.data, SciUpdated)]) == 2
    assert json.loads(encode(again[0]))["type"].endswith("SciUpdated.v1")


async def test_batches_of_one_announce_exactly_what_apply_emits_for_each_event() -> None:
    """Over a simulated log with a calibration in place, the batch path (``fold`` + ``settle``,
    reusing the tier it worked out before) emits what the per-event ``apply`` emits."""

    state = await calibrations()
    events = [decode(r.value or b"") for r in SCI_LOG[:1500]]
    _, expected = fold_events(
        SciProjection(SKILLS), events, {(c.collection, c.key): c.doc for c in state if c.doc is not None}
    )
    store = SqliteStore(":memory:")
    await store.write(state)
    runtime = ProjectionRuntime(SciProjection(SKILLS), store, service="sci")
    for record in SCI_LOG[:1500]:
        await runtime.handle([record])
    got = [decode(r.value).data for r in await store.pending_outbox(100_000)]
    assert got == expected and any(isinstance(p, TierChanged) for p in got)


async def test_the_calibration_is_read_once_and_again_when_the_job_says_it_changed() -> None:
    store = SqliteStore(":memory:")
    await store.write([Change(CALIBRATIONS, ML, CALIBRATION.to_doc())])
    runtime = ProjectionRuntime(SciProjection(SKILLS), store, service="sci")
    await runtime.handle(CLAIM + RECORDS[:2])
    newer = Correction(bias={"r1": 0.1}, ratings=400, version="test", digest="e")
    await store.write([Change(CALIBRATIONS, ML, newer.to_doc())])  # the job's write ...
    runtime.changed([(CALIBRATIONS, ML)])  # ... and what it tells the fold, under the same lock
    await runtime.handle(RECORDS[2:])
    updates = sci([decode(r.value) for r in await store.pending_outbox(1000)])
    assert [(u.learner_id, u.calibration) for u in updates] == [("ann", 150), ("bob", 150), ("ann", 400)]
