"""A store whose offsets no longer fit the log (the topic recreated while the store kept its
offsets, the service stopped or running) is refused on the real broker: nothing is folded,
/readyz says not ready, the ops route says why and how to recover, and the same store on the
same log folds on as before."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local.broker import create_topics
from services.evidence.app import bootstrap
from shared import positions
from shared.events import CloudEvent
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.settings import Settings
from shared.store.sqlite import SqliteStore
from tests.support.apps import partitions_in, projections, serving
from tests.support.kafka import Namespace, eventually
from tests.support.population import session_burst

CONSUMER = "evidence"


async def folded(db: Path) -> int:
    store = SqliteStore(str(db))
    try:
        return sum(last + 1 for last in (await store.offsets(CONSUMER)).values())
    finally:
        await store.close()


async def fold_all(settings: Settings, ns: Namespace, events: list[CloudEvent]) -> None:
    """Run the evidence service until it has folded ``events`` (published here)."""
    db = Path(settings.state_dir) / "data" / "evidence.db"
    async with serving(bootstrap(settings)) as client:
        await ns.publish(events)
        await eventually(lambda: _at_least(db, len(events)), timeout=60)
        assert (await client.get("/readyz")).status_code == 200


async def _at_least(db: Path, n: int) -> bool:
    return await folded(db) >= n


async def recreate_topics(ns: Namespace) -> None:
    """Delete this namespace's topics and make them again, empty (a new topic id)."""
    names = [ns.topic(t) for t in Topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=ns.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()
    deadline = time.monotonic() + 30
    while True:  # deletion completes in the background: creation fails until it has
        try:
            await asyncio.to_thread(create_topics, KafkaConnection(ns.bootstrap), prefix=ns.prefix, timeout=1)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def refused_on(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    async def refused() -> dict[str, str]:
        rows = await partitions_in(client, settings, "refused")
        return {tp: row["why"] for tp, row in rows.items()}

    return await eventually(refused, timeout=30)


@pytest.mark.parametrize("grown", [True, False], ids=["more-records", "fewer-records"])
async def test_a_recreated_topic_is_refused_not_skipped(
    private_kafka: Namespace, tmp_path: Path, grown: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    first = session_burst(60, seed=11)
    await fold_all(settings, ns, first)
    before = await folded(db)
    assert before == len(first)

    await recreate_topics(ns)
    # the new log: other events (other ids), more or fewer than the store has folded
    await ns.publish(session_burst(180 if grown else 6, seed=12))

    caplog.set_level(logging.ERROR, logger="shared.positions")
    async with serving(bootstrap(settings)) as client:
        refused = await refused_on(client, settings)
        ready = await client.get("/readyz")
        report = (await projections(client, settings))[0]
        await asyncio.sleep(1.0)  # time enough to fold, were anything folded
        assert await folded(db) == before  # nothing of the new log was folded

    topic = ns.topic(Topic.SESSIONS)
    assert set(refused) == {f"{topic}[{p}]" for p in range(3)}
    why = "not the one the store folded" if grown else "the log ends before it"
    assert all(why in reason for reason in refused.values()), refused
    assert ready.status_code == 503 and ready.json() == {"ready": False}  # the details are for operators
    assert report["state"] == "refused" and "move its store aside" in report["recovery"]
    assert any(
        "refuses to fold" in r.getMessage() and "evidence.db" in r.getMessage() for r in caplog.records
    )


async def test_the_same_log_after_a_restart_folds_on(private_kafka: Namespace, tmp_path: Path) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    first, more = session_burst(40, seed=21), session_burst(30, seed=22)
    await fold_all(settings, ns, first)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(more)
        await eventually(lambda: _at_least(db, len(first) + len(more)), timeout=60)
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        assert {row["state"] for row in (await projections(client, settings))[0]["partitions"]} == {"folding"}
    assert await folded(db) == len(first) + len(more)


async def test_an_unreachable_check_does_not_stop_the_fold(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KafkaError in the check is a warning: the store's offsets are used as they are."""
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    await fold_all(settings, ns, session_burst(10, seed=31))

    async def broken(*_: object) -> dict[tuple[str, int], str]:
        raise KafkaError("no answer")

    monkeypatch.setattr(positions, "check_positions", broken)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(session_burst(5, seed=32))
        await eventually(lambda: _at_least(db, 75), timeout=60)
        assert (await client.get("/readyz")).status_code == 200


async def test_a_topic_recreated_under_a_running_service_is_refused(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    """The consumer group loses the partitions with the topic and gets them again when its
    metadata shows the topic made anew: the check on that assignment refuses them."""
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path), kafka_metadata_max_age_ms=1000)
    db = tmp_path / "data" / "evidence.db"
    first = session_burst(60, seed=41)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(first)
        await eventually(lambda: _at_least(db, len(first)), timeout=60)
        await recreate_topics(ns)
        await ns.publish(session_burst(180, seed=42))
        refused = await refused_on(client, settings)
        await asyncio.sleep(1.0)
        assert await folded(db) == len(first)
    assert set(refused) == {f"{ns.topic(Topic.SESSIONS)}[{p}]" for p in range(3)}
