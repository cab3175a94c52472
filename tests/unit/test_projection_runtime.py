"""The projection runtime against a real (in-memory SQLite) store, fed plain consumer records:
bad data is dead-lettered; any other failure stops its partition at the record, to be retried and
parked, while the other partitions go on."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.errors import EventRefused
from shared.events import CloudEvent, encode, new_event
from shared.events.payloads import EvidenceRecorded, SkillClaimed
from shared.projection.faults import Fault, RetryPolicy
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime
from shared.store.base import Change, OutboxRecord, PartitionOffsets
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class ClaimCounter:
    """Counts claims per learner; refuses the skill 'boom'; fails (a bug) on the skill 'bug'
    while ``broken``; emits a copy of each claim as evidence."""

    name = "counter"
    broken = True

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return [("counts", event.subject)]

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if not isinstance(data, SkillClaimed):
            return NOTHING
        if data.skill == "boom":
            raise EventRefused("boom is not a skill")
        if data.skill == "bug" and self.broken:
            raise KeyError("a document shape this code does not know")
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
    """Refuses to name documents for the skill 'nope'; fails (a bug) naming them for 'oops'."""

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        if isinstance(event.data, SkillClaimed) and event.data.skill == "nope":
            raise EventRefused("no documents for nope")
        if isinstance(event.data, SkillClaimed) and event.data.skill == "oops":
            raise KeyError("refs has a bug")
        return super().refs(event)


async def test_a_record_whose_refs_are_refused_is_dead_lettered_and_a_bug_there_stops_the_partition() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(RefsRefuser(), store, service="test")
    batch = [rec(0, claim("ann", skill="nope")), rec(1, claim("ann")), rec(2, claim("ann", skill="oops"))]
    assert await runtime.handle([*batch, rec(3, claim("ann"))]) == 1
    dead = [json.loads(r.value) for r in await store.pending_outbox() if r.topic == "lemma.dlq.v1"]
    assert [d["data"]["offset"] for d in dead] == [0] and "no documents for nope" in dead[0]["data"]["error"]
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 1}
    assert runtime.faults[("lemma.passport.v1", 0)].offset == 2


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


class FailingStore(SqliteStore):
    """A real store whose next ``fail`` writes fail (the database went away)."""

    fail = 0

    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
        **checks: Any,
    ) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the store is not answering")
        await super().write(changes, offsets=offsets, outbox=outbox, **checks)


async def test_a_fold_that_fails_stops_only_its_partition_retries_and_parks_then_goes_on() -> None:
    store = SqliteStore(":memory:")
    projection = ClaimCounter()
    seen: list[Fault] = []
    runtime = ProjectionRuntime(projection, store, service="test", retry=RetryPolicy(tries=3))
    runtime.on_fault = seen.append
    batch = [
        rec(0, claim("ann"), partition=0),
        rec(1, claim("ann", skill="bug"), partition=0),
        rec(2, b"{broken", partition=0),  # bad data after the stop: not dead-lettered yet
        rec(3, claim("ann"), partition=0),
        rec(0, claim("bob"), partition=1),
        rec(1, claim("bob"), partition=1),
    ]
    assert await runtime.handle(batch) == 3
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 0, ("lemma.passport.v1", 1): 1}
    assert await store.get("counts", "ann") == {"n": 1} and await store.get("counts", "bob") == {"n": 2}
    assert not [r for r in await store.pending_outbox() if r.topic == "lemma.dlq.v1"]
    stuck = ("lemma.passport.v1", 0)
    assert [(f.partition, f.offset, f.tries, f.parked) for f in seen] == [(stuck, 1, 1, False)]
    assert "KeyError" in seen[0].reason and runtime.refused == {}  # retrying: still ready

    for _ in range(2):  # the consumer hands the partition back from the failed record
        assert await runtime.handle(batch[1:4]) == 0
    assert [(f.tries, f.parked) for f in seen] == [(1, False), (2, False), (3, True)]
    assert list(runtime.faults) == [stuck] and runtime.faults[stuck].parked

    projection.broken = False  # the cause is fixed
    assert await runtime.handle(batch[1:4]) == 2
    assert runtime.faults == {}
    assert await store.offsets("counter") == {("lemma.passport.v1", 0): 3, ("lemma.passport.v1", 1): 1}
    dead = [json.loads(r.value) for r in await store.pending_outbox() if r.topic == "lemma.dlq.v1"]
    assert [d["data"]["offset"] for d in dead] == [2]


async def test_a_store_that_fails_the_write_stops_every_partition_of_the_batch_at_its_first_record() -> None:
    store = FailingStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test")
    store.fail = 1
    batch = [
        rec(4, claim("ann"), partition=0),
        rec(5, claim("ann"), partition=0),
        rec(9, claim("bob"), partition=2),
    ]
    assert await runtime.handle(batch) == 0
    assert {p: (f.offset, f.tries) for p, f in runtime.faults.items()} == {
        ("lemma.passport.v1", 0): (4, 1),
        ("lemma.passport.v1", 2): (9, 1),
    }
    assert await store.offsets("counter") == {} and await store.pending_outbox() == []
    assert await runtime.handle(batch) == 3  # the store is back
    assert runtime.faults == {} and await store.get("counts", "ann") == {"n": 2}


async def test_resuming_a_parked_partition_gives_it_every_try_again() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimCounter(), store, service="test", retry=RetryPolicy(tries=2))
    stuck = ("lemma.passport.v1", 0)
    for _ in range(2):
        assert await runtime.handle([rec(0, claim("ann", skill="bug"))]) == 0
    assert runtime.faults[stuck].parked and "parked after 2 tries" in runtime.refused[stuck]
    assert runtime.resume_parked() == [stuck]
    assert runtime.faults == {} and runtime.refused == {}
    assert await runtime.handle([rec(0, claim("ann", skill="bug"))]) == 0  # the cause is still there
    assert (runtime.faults[stuck].tries, runtime.faults[stuck].parked) == (1, False)
