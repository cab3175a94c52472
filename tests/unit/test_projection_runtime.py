"""The projection runtime against a real (in-memory SQLite) store, fed plain consumer records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from shared.events import CloudEvent, encode, new_event
from shared.events.payloads import EvidenceRecorded, SkillClaimed
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class ClaimCounter:
    """Counts claims per learner; refuses the skill 'boom'; emits a copy of each claim as evidence."""

    name = "counter"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return [("counts", event.subject)]

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if not isinstance(data, SkillClaimed):
            return NOTHING
        if data.skill == "boom":
            raise ValueError("boom is not a skill")
        doc = docs[("counts", event.subject)] or {"n": 0}
        echo = EvidenceRecorded(
            evidence_id=f"e-{event.id}",
            learner_id=data.learner_id,
            skill=data.skill,
            session_id="s",
            rater_id="r",
            scores={"x": 3},
            occurred_at=event.time,
        )
        return Outcome(changes={("counts", event.subject): {"n": doc["n"] + 1}}, emit=(echo,))


def claim(learner: str, skill: str = "machine-learning") -> bytes:
    payload = SkillClaimed(learner_id=learner, skill=skill, self_level="beginner")
    return encode(new_event(payload, source="t", time=T0))


def rec(offset: int, value: bytes | None, partition: int = 0) -> Rec:
    return Rec("lemma.passport.v1", partition, offset, b"k", value)


async def test_folds_writes_offsets_and_emits_with_deterministic_ids() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    value = claim("ann")
    assert await runtime.handle([rec(0, value), rec(1, claim("ann"))]) == 2
    assert await store.get("counts", "ann") == {"n": 2}
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 1}
    out = await store.pending_outbox()
    assert [r.topic for r in out] == ["lemma.evidence.v1", "lemma.evidence.v1"]

    again = SqliteStore(":memory:")
    await ProjectionRuntime(ClaimCounter(), again, service="test").handle([rec(0, value)])
    first_id = json.loads(out[0].value)["id"]
    assert json.loads((await again.pending_outbox())[0].value)["id"] == first_id


async def test_redelivered_offsets_are_not_folded_twice() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    batch = [rec(0, claim("ann")), rec(1, claim("ann"))]
    await runtime.handle(batch)
    assert await runtime.handle(batch) == 0
    await runtime.handle([*batch, rec(2, claim("ann"))])
    assert await store.get("counts", "ann") == {"n": 3}


async def test_partitions_are_tracked_apart() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    await runtime.handle([rec(5, claim("ann"), partition=0)])
    await runtime.handle([rec(0, claim("ann"), partition=1)])
    assert await store.get("counts", "ann") == {"n": 2}


async def test_bad_records_are_dead_lettered_and_the_rest_folded() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    folded = await runtime.handle(
        [rec(0, b"{broken"), rec(1, claim("ann", skill="boom")), rec(2, claim("ann")), rec(3, None)]
    )
    assert folded == 1
    assert await store.get("counts", "ann") == {"n": 1}
    dead = [json.loads(r.value) for r in await store.pending_outbox() if r.topic == "lemma.dlq.v1"]
    assert [d["data"]["offset"] for d in dead] == [0, 1, 3]
    assert "boom is not a skill" in dead[1]["data"]["error"]
    assert all(d["data"]["consumer"] == "counter" and d["subject"] == "k" for d in dead)
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 3}


class RefsRefuser(ClaimCounter):
    """Cannot even say which documents it needs for the skill 'nope'."""

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        if isinstance(event.data, SkillClaimed) and event.data.skill == "nope":
            raise KeyError("no documents for nope")
        return super().refs(event)


async def test_a_record_whose_refs_fail_is_dead_lettered_not_retried_forever() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(RefsRefuser(), store, service="test")
    assert await runtime.handle([rec(0, claim("ann", skill="nope")), rec(1, claim("ann"))]) == 1
    dead = [json.loads(r.value) for r in await store.pending_outbox() if r.topic == "lemma.dlq.v1"]
    assert [d["data"]["offset"] for d in dead] == [0] and "no documents for nope" in dead[0]["data"]["error"]
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 1}


async def test_a_huge_bad_record_makes_a_bounded_dead_letter() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    huge = b'"' + b"\xff" * 3_000_000  # not JSON, not UTF-8, 3 MB
    await runtime.handle([rec(0, huge)])
    (letter,) = await store.pending_outbox()
    assert len(letter.value) < 400_000
    data = json.loads(letter.value)["data"]
    assert data["value_size"] == len(huge) and len(data["value"]) == 64 * 1024


async def test_offsets_that_skip_are_folded_at_once_and_redeliveries_dropped() -> None:
    """Offsets 2 and 4 are transaction markers (never served): nothing waits for them."""
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    assert await runtime.handle([rec(0, claim("ann")), rec(1, claim("ann")), rec(3, claim("bob"))]) == 3
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 3}
    assert await runtime.handle([rec(3, claim("bob")), rec(5, claim("cy"))]) == 1  # 3 again: dropped
    assert await store.get("counts", "bob") == {"n": 1}
    assert await store.get("counts", "ann") == {"n": 2}
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 5}
