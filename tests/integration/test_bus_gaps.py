"""On Apache Kafka a partition's offsets skip, and a projection consumer must never wait on that.

A transactional producer (ours are not, but any tool writing to a topic may be) leaves a
commit or abort marker at an offset no consumer is served, and the records of an aborted
transaction are skipped by a ``read_committed`` consumer. Here a topic gets committed and
aborted transactions in turn: the projection folds exactly the committed events, at once (no
waiting on the gaps), and stores the offset of the last record it folded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, make_broker, projection_subscriber
from shared.events import CloudEvent, encode, new_event
from shared.events.payloads import SkillClaimed
from shared.events.registry import Topic
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.kafka import Namespace

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SKILLS = ["machine-learning", "data-engineering", "statistics"]


class ClaimsPerLearner:
    name = "gap-test"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return [("claims", event.subject)]

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        if not isinstance(event.data, SkillClaimed):
            return NOTHING
        doc = docs[("claims", event.subject)] or {"skills": []}
        return Outcome(changes={("claims", event.subject): {"skills": [*doc["skills"], event.data.skill]}})


def claim(learner: str, skill: str) -> CloudEvent:
    return new_event(
        SkillClaimed(learner_id=learner, skill=skill, self_level="beginner"), source="t", time=T0
    )


async def write_transactions(ns: Namespace, rounds: list[tuple[list[CloudEvent], bool]]) -> None:
    """Each round in one transaction, committed or aborted."""
    producer = AIOKafkaProducer(bootstrap_servers=ns.bootstrap, transactional_id=f"{ns.prefix}writer")
    await producer.start()
    try:
        for events, commit in rounds:
            await producer.begin_transaction()
            for e in events:
                await producer.send(ns.prefix + e.topic, value=encode(e), key=e.key.encode())
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


async def log_ends(ns: Namespace) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(ns.topic(Topic.PASSPORT), p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def test_offsets_skipped_by_transaction_markers_and_aborts_are_never_waited_on(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    rounds = [
        ([claim(f"l{n}", skill) for skill in SKILLS], n % 3 != 1)  # every third round aborted
        for n in range(12)
    ]
    await write_transactions(ns, rounds)
    kept = [e for events, commit in rounds if commit for e in events]
    ends = await log_ends(ns)
    # the log holds the aborted records and a marker per transaction and partition: many gaps
    assert sum(ends.values()) > len(kept) + len(rounds)

    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(ClaimsPerLearner(), store, service="test")
    router = KafkaRouter()
    settings = ns.settings(state_dir=str(tmp_path))

    @projection_subscriber(router, settings, runtime, Topic.PASSPORT)
    async def on_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    broker = make_broker(settings, client_id="gap-test")
    broker.include_router(router)
    started = time.monotonic()
    await broker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            claims = await store.get_many("claims", {e.subject for e in kept})
            if sum(len(doc["skills"]) for doc in claims.values()) >= len(kept):
                break
            await asyncio.sleep(0.1)
        took = time.monotonic() - started
        await asyncio.sleep(0.5)  # nothing more may arrive: the aborted records stay unfolded
    finally:
        await broker.stop()

    claims = await store.get_many("claims", {f"l{n}" for n in range(12)})
    expected: dict[str, Counter[str]] = {}
    for e in kept:
        expected.setdefault(e.subject, Counter())[e.data.skill] += 1  # type: ignore[attr-defined]
    assert {learner: Counter(doc["skills"]) for learner, doc in claims.items()} == expected
    # well under any wait on a gap (the removed guard waited 10 s per gap it met)
    assert took < 8, f"folding took {took:.1f} s"
    # the stored offset is the last record folded: before the final marker, never past the end
    offsets = await store.offsets("gap-test")
    for tp, last in offsets.items():
        assert last < ends[tp] - 1, (tp, last, ends[tp])
