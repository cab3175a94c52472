"""Ownership of skills follows the engine group's assignment and the partition count the topic
has on the cluster: a gained partition is paused, taken, positioned after the book's offset and
resumed; a revoked one is dropped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from services.matching.ownership import Ownership, partition_of

TOPIC = "lemma.matching.v1"
SKILLS = [f"skill-{n}" for n in range(40)]


@dataclass
class FakeConsumer:
    partitions: int
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def pause(self, *tps: TopicPartition) -> None:
        self.calls += [("pause", tp.partition) for tp in tps]

    def resume(self, *tps: TopicPartition) -> None:
        self.calls += [("resume", tp.partition) for tp in tps]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", (tp.partition, offset)))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.calls += [("beginning", tp.partition) for tp in tps]


@dataclass
class Taken:
    position: int
    loaded: list[int]
    partition: int

    def load(self) -> None:
        self.loaded.append(self.partition)


async def test_skills_follow_the_topics_real_partition_count_and_each_gained_partition_is_taken() -> None:
    consumer = FakeConsumer(partitions=7)  # not shared.bus.PARTITIONS' 3
    loaded: list[int] = []
    dropped: list[int] = []
    asked: list[list[str]] = []
    ownership: Ownership

    async def take(partition: int) -> Taken:
        asked.append(ownership.skills_of(SKILLS, {partition}))
        return Taken(41 if partition == 2 else -1, loaded, partition)

    ownership = Ownership(TOPIC, take=take, drop=dropped.append)
    ownership.bind(type("Subscriber", (), {"consumer": consumer})())
    await ownership.on_partitions_assigned({TopicPartition(TOPIC, 2), TopicPartition(TOPIC, 5)})
    for _ in range(20):
        await asyncio.sleep(0)
    assert ownership.count == 7 and sorted(loaded) == [2, 5]
    assert sorted(ownership.partitions) == [2, 5]
    assert ownership.skills_of(SKILLS) == [s for s in SKILLS if partition_of(s, 7) in (2, 5)]
    assert sorted(s for skills in asked for s in skills) == sorted(ownership.skills_of(SKILLS))
    assert ("seek", (2, 42)) in consumer.calls and ("beginning", 5) in consumer.calls
    for partition in (2, 5):  # paused before it is taken, resumed after it is positioned
        assert consumer.calls.index(("pause", partition)) < consumer.calls.index(("resume", partition))
    await ownership.on_partitions_revoked({TopicPartition(TOPIC, 2)})
    assert dropped == [2] and ownership.partitions == {5}
    await ownership.close()
