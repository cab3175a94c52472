"""Which skills a matching replica decides for: the partitions of ``lemma.matching.v1`` (keyed
by skill) that the ``matching-engine`` consumer group assigns it.

The partition count is the topic's on the cluster, read from the consumer's metadata at each
assignment (``LEMMA_KAFKA_PARTITIONS`` only says how many ``lemma topics create`` makes), so a
skill maps to the partition the producers' default partitioner gives its key.

A partition gained is paused at once, then taken (``take``: the matcher loads its skills' book
from the store and says from which offset the log goes on), positioned there, and resumed; the
engine group's records of that partition then reach the matcher in offset order. A partition
revoked is dropped (``drop``). If taking fails (the store does not answer, or its documents
would not hold still), it is tried again with a growing delay, the partition still paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)


def partition_of(skill: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a skill's key (what the producer uses)."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(skill.encode(), every, every))


class Taken(Protocol):
    """A partition's book, read and ready to load once the consumer is positioned."""

    #: the last offset the store's documents stood at (-1: none folded): the log goes on after it
    position: int

    def load(self) -> None: ...


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """The partitions of ``topic`` this replica holds in the engine group, and their taking.

    ``take(partition)`` reads the partition's book; ``drop(partition)`` forgets it."""

    def __init__(
        self,
        topic: str,
        take: Callable[[int], Awaitable[Taken]] | None = None,
        drop: Callable[[int], None] | None = None,
    ) -> None:
        self.topic = topic
        self.partitions: set[int] = set()
        #: the topic's partition count on the cluster, as of the last assignment
        self.count: int | None = None
        self._take = take
        self._drop = drop
        self._subscriber: Any = None  # FastStream's subscriber; its ``consumer`` is aiokafka's
        self._taking: dict[int, asyncio.Task[None]] = {}

    def bind(self, subscriber: Any) -> None:
        self._subscriber = subscriber

    @property
    def consumer(self) -> Any:
        return getattr(self._subscriber, "consumer", None)

    def skills_of(self, skills: list[str], partitions: set[int] | None = None) -> list[str]:
        """The skills among ``skills`` whose partition is one of ``partitions`` (default: ours)."""
        if self.count is None:
            return []
        held = self.partitions if partitions is None else partitions
        return [s for s in skills if partition_of(s, self.count) in held]

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            if tp.topic != self.topic:
                continue
            task = self._taking.pop(tp.partition, None)
            if task is not None:
                task.cancel()
            self.partitions.discard(tp.partition)
            if self._drop is not None:
                self._drop(tp.partition)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        mine = [tp for tp in assigned if tp.topic == self.topic]
        consumer = self.consumer
        if consumer is not None and mine:
            consumer.pause(*mine)  # nothing of it is read until its book is loaded
            found = consumer.partitions_for_topic(self.topic)
            if found:
                self.count = len(found)
        for tp in mine:
            self.partitions.add(tp.partition)
            if consumer is not None and self._take is not None:
                previous = self._taking.pop(tp.partition, None)
                if previous is not None:
                    previous.cancel()
                self._taking[tp.partition] = asyncio.create_task(
                    self._taken(consumer, tp), name=f"matching-take-{tp.partition}"
                )

    async def _taken(self, consumer: Any, tp: TopicPartition) -> None:
        assert self._take is not None
        delay = 0.2
        while True:
            try:
                if self.count is None:  # the assignment came before the topic's metadata
                    await consumer.topics()
                    found = consumer.partitions_for_topic(self.topic)
                    if not found:
                        raise RuntimeError(f"no partition count known for {self.topic} yet")
                    self.count = len(found)
                taken = await self._take(tp.partition)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("matching could not take %s[%s] (%r); trying again", tp.topic, tp.partition, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        try:
            if taken.position >= 0:
                consumer.seek(tp, taken.position + 1)
            else:
                await consumer.seek_to_beginning(tp)
        except Exception:  # revoked meanwhile: its next owner takes it
            log.info("matching: %s[%s] was revoked while being taken", tp.topic, tp.partition)
            return
        finally:
            if self._taking.get(tp.partition) is asyncio.current_task():
                del self._taking[tp.partition]
        taken.load()  # after the seek: nothing read from elsewhere in the log reaches the book
        consumer.resume(tp)

    def rewind(self, partition: int, offset: int) -> None:
        """Read a partition again from ``offset`` (a batch the matcher could not fold)."""
        consumer = self.consumer
        if consumer is not None:
            with contextlib.suppress(Exception):  # revoked meanwhile
                consumer.seek(TopicPartition(self.topic, partition), offset)

    async def close(self) -> None:
        for task in self._taking.values():
            task.cancel()
        for task in list(self._taking.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._taking.clear()
