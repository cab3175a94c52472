"""Faults planted in the evidence service on the real broker: bad data is dead-lettered while
the rest flows; a fold that fails for one kind of event (a bug) stops only the partition that
holds it, retries it, parks it (not ready, the ops route says why), and after the fix and a
resume the partition folds on from that record, nothing lost or doubled."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.evidence.app import bootstrap
from shared.auth import mint_token
from shared.bus import PARTITIONS
from shared.events import CloudEvent
from shared.events.payloads import SessionCompleted
from shared.events.registry import Topic
from shared.projection.fold import Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.apps import ops_headers, partitions_in, projections, serving
from tests.support.kafka import Namespace, eventually, publish_raw
from tests.support.population import session_burst

CONSUMER = "evidence"


async def store_offsets(db: Path) -> dict[tuple[str, int], int]:
    store = SqliteStore(str(db))
    try:
        return await store.offsets(CONSUMER)
    finally:
        await store.close()


async def log_ends(ns: Namespace, topic: Topic) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(ns.topic(topic), p) for p in range(PARTITIONS[topic])]
        return {(tp.topic, tp.partition): end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def partition_of(key: str, topic: Topic) -> int:
    """The partition the producers' default partitioner sends ``key`` to."""
    every = list(range(PARTITIONS[topic]))
    return int(DefaultPartitioner()(key.encode(), every, every))


async def folded_to_the_end(db: Path, ends: Mapping[tuple[str, int], int], skip: int | None = None) -> bool:
    done = await store_offsets(db)
    return all(done.get(tp, -1) >= end - 1 for tp, end in ends.items() if tp[1] != skip and end)


async def test_a_poison_record_is_dead_lettered_while_every_partition_flows(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    burst = session_burst(40, seed=31)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(burst[:100])
        await publish_raw(ns.bootstrap, ns.topic(Topic.SESSIONS), b"session-poison", b"{not json at all")
        await ns.publish(burst[100:])
        ends = await log_ends(ns, Topic.SESSIONS)
        await eventually(lambda: folded_to_the_end(db, ends), timeout=60)
        assert (await client.get("/readyz")).json() == {"ready": True}
        assert await partitions_in(client, settings, "retrying", "parked", "refused") == {}
    letters = await ns.read_until(Topic.DLQ, lambda rs: len(rs) >= 1)
    (letter,) = [json.loads(r.value)["data"] for r in letters]
    assert letter["consumer"] == CONSUMER and letter["key"] == "session-poison"
    assert "Invalid JSON" in letter["error"] and letter["value"] == "{not json at all"


async def test_a_failing_fold_parks_only_its_partition_and_resumes_after_the_fix(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path), fold_retry_tries=3, fold_retry_first_delay_s=0.2)
    db = tmp_path / "data" / "evidence.db"
    burst = session_burst(60, seed=32)
    stuck_partition = partition_of(burst[0].key, Topic.SESSIONS)
    stuck = (ns.topic(Topic.SESSIONS), stuck_partition)
    doomed = {
        e.data.session_id
        for e in burst
        if isinstance(e.data, SessionCompleted) and partition_of(e.key, Topic.SESSIONS) == stuck_partition
    }
    app = bootstrap(settings)
    runtimes: list[ProjectionRuntime] = app.state.ctx.runtimes
    (runtime,) = runtimes
    fold = runtime.projection.apply
    broken = True

    def apply(docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        """A bug in one kind of event: completions of the sessions on one partition."""
        if broken and isinstance(event.data, SessionCompleted) and event.data.session_id in doomed:
            raise RuntimeError(f"planted bug at {event.data.session_id}")
        return fold(docs, event)

    runtime.projection.apply = apply  # type: ignore[method-assign]  # the planted bug
    async with serving(app) as client:
        await ns.publish(burst)
        ends = await log_ends(ns, Topic.SESSIONS)
        # every other partition is folded to its end while the stuck one retries
        await eventually(lambda: folded_to_the_end(db, ends, skip=stuck_partition), timeout=60)
        parked = await eventually(lambda: partitions_in(client, settings, "parked"), timeout=30)
        assert list(parked) == [f"{stuck[0]}[{stuck[1]}]"]
        assert "parked after 3 tries" in parked[f"{stuck[0]}[{stuck[1]}]"]["why"]
        assert "planted bug" in parked[f"{stuck[0]}[{stuck[1]}]"]["why"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert (await projections(client, settings))[0]["state"] == "parked"
        metrics = (await client.get("/metrics")).text
        assert 'lemma_partitions_parked{consumer="evidence",service="evidence"} 1.0' in metrics
        # the partition stays at the failed record: nothing past it was folded
        before = (await store_offsets(db)).get(stuck, -1)
        assert before < ends[stuck] - 1

        learner = {"Authorization": f"Bearer {mint_token(settings, 'learner-0001')}"}
        answer = await client.post(f"/ops/projections/{CONSUMER}/resume", headers=learner)
        assert answer.status_code == 403  # a learner's token is not enough
        broken = False  # the fix ships
        answer = await client.post(f"/ops/projections/{CONSUMER}/resume", headers=ops_headers(settings))
        assert answer.json()["resumed"] == [{"topic": stuck[0], "partition": stuck[1]}]
        await eventually(lambda: folded_to_the_end(db, ends), timeout=60)
        await eventually(lambda: _ready(client), timeout=10)
        sessions = await _sessions_completed(db)
    assert sessions == {e.data.session_id for e in burst if isinstance(e.data, SessionCompleted)}
    letters = await _dead_letters(ns)
    assert letters == []  # a bug is not the data's fault: nothing was dead-lettered
    acted = await ns.read_until(Topic.OPS, lambda rs: len(rs) >= 1)
    (resumed,) = [json.loads(r.value)["data"] for r in acted]
    assert (resumed["action"], resumed["by"], resumed["projection"]) == ("resume", "operator", CONSUMER)
    assert resumed["detail"] == {"partitions": [{"topic": stuck[0], "partition": stuck[1]}]}


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _sessions_completed(db: Path) -> set[str]:
    store = SqliteStore(str(db))
    try:
        done: set[str] = set()
        after = None
        while page := await store.scan("sessions", after=after, limit=500):
            done |= {key for key, doc in page if doc.get("status") == "completed"}
            after = page[-1][0]
        return done
    finally:
        await store.close()


async def _dead_letters(ns: Namespace) -> list[Any]:
    consumer = AIOKafkaConsumer(
        ns.topic(Topic.DLQ), bootstrap_servers=ns.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=1000)
        return [r for records in batch.values() for r in records]
    finally:
        await consumer.stop()


pytestmark = pytest.mark.timeout(180)
