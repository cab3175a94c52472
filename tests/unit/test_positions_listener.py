"""The rebalance listener without a broker: partitions are held from assignment until they are
positioned where the store stands; a store that cannot be read keeps them held and is retried;
a prefix change is refused. (The log checks on a real broker: tests/integration/test_log_fingerprint.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import pytest
from aiokafka import TopicPartition

from shared import positions
from shared.events import CloudEvent
from shared.kafka_connection import KafkaConnection
from shared.positions import StoreOffsetsListener
from shared.projection.fingerprint import CHECKING
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore

TOPIC = "lemma.sessions.v1"


class Nothing:
    name = "listener-test"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        return NOTHING


class FakeConsumer:
    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.seeks: dict[TopicPartition, int] = {}
        self.from_start: set[TopicPartition] = set()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.from_start |= set(tps)


class Subscriber:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()


class FlakyStore(SqliteStore):
    """Its offsets cannot be read the first ``failures`` times."""

    failures = 0

    async def offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("the store is down")
        return await super().offsets(consumer)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    async def cluster(bootstrap: str) -> str:
        return "cluster-a"

    async def fits(
        runtime: ProjectionRuntime, bootstrap: str, stored: object
    ) -> tuple[dict[object, str], list[object]]:
        return {}, []

    monkeypatch.setattr(positions, "cluster_id", cluster)
    monkeypatch.setattr(positions, "check_positions", fits)


def listener_on(store: SqliteStore) -> tuple[StoreOffsetsListener, ProjectionRuntime, FakeConsumer]:
    runtime = ProjectionRuntime(Nothing(), store, service="test")
    listener = StoreOffsetsListener(runtime, KafkaConnection("127.0.0.1:1"))
    subscriber = Subscriber()
    listener.bind(subscriber)
    return listener, runtime, subscriber.consumer


async def test_stored_partitions_seek_past_the_store_and_fresh_ones_start_at_the_beginning() -> None:
    store = SqliteStore(":memory:")
    await store.write(offsets={("listener-test", TOPIC, 0): 41})
    listener, runtime, consumer = listener_on(store)
    tps = {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}
    await listener.on_partitions_assigned(tps)
    assert consumer.seeks == {TopicPartition(TOPIC, 0): 42}
    assert consumer.from_start == {TopicPartition(TOPIC, 1)}
    assert consumer.paused == set() and runtime.held == {}
    assert runtime.cluster_id == "cluster-a"


async def test_an_unreadable_store_keeps_the_partitions_held_until_a_retry_positions_them() -> None:
    store = FlakyStore(":memory:")
    await store.write(offsets={("listener-test", TOPIC, 0): 7})
    store.failures = 1
    listener, runtime, consumer = listener_on(store)
    tp = TopicPartition(TOPIC, 0)
    await listener.on_partitions_assigned({tp})
    assert consumer.paused == {tp} and runtime.held == {(TOPIC, 0): CHECKING}
    assert await runtime.handle([]) == 0
    for _ in range(40):  # the retry comes after 1 s
        if not runtime.held:
            break
        await asyncio.sleep(0.1)
    assert runtime.held == {} and consumer.paused == set() and consumer.seeks == {tp: 8}


async def test_a_revocation_stops_the_retry_and_releases_the_partitions() -> None:
    store = FlakyStore(":memory:")
    store.failures = 100
    listener, runtime, consumer = listener_on(store)
    tp = TopicPartition(TOPIC, 2)
    await listener.on_partitions_assigned({tp})
    assert runtime.held
    await listener.on_partitions_revoked({tp})
    assert runtime.held == {}
    await asyncio.sleep(1.2)
    assert consumer.seeks == {} and consumer.from_start == set()


async def test_the_same_topic_folded_under_another_prefix_is_refused() -> None:
    store = SqliteStore(":memory:")
    await store.write(offsets={("listener-test", "staging." + TOPIC, 0): 99})
    listener, runtime, consumer = listener_on(store)
    tp = TopicPartition("prod." + TOPIC, 0)
    await listener.on_partitions_assigned({tp})
    assert consumer.paused == {tp} and consumer.from_start == set()
    (why,) = runtime.refused.values()
    assert "staging.lemma.sessions.v1" in why and "LEMMA_KAFKA_PREFIX" in why
