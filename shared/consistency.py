"""Read-your-writes across services: consistency tokens, and waiting until a service has seen one.

A write that produced events answers with a token (``TOKEN_HEADER``): the log positions its
events took once relayed, ``{"<topic>/<partition>": offset}``, as URL-safe base64 JSON. Any later
request to any service may carry tokens back (``AFTER_HEADER``, several comma-separated); the
service then waits, up to ``LEMMA_CONSISTENCY_WAIT_S``, until it has folded past those positions
and past what they caused upstream, and answers as if it had seen the write. Past the bound it
answers anyway, with ``STALE_HEADER``. Without a token nothing waits.

"What they caused upstream" follows the flow of the system (``FOLDS``, ``PRODUCES``): a rating on
``lemma.sessions.v1`` reaches the passport through evidence (EvidenceRecorded) and sci
(SciUpdated). For each service on the way, its consumer group's committed offset on the topic
says it has folded the position; a service commits a batch only once the events the batch caused
are on the log (``shared.bus.fold_batch``), so from then on the end of the service's own topic
bounds everything the position caused there, and the next service is waited for on that end.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events.flow import FOLDS, MAX_HOPS, PRODUCES, distances
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection

TOKEN_HEADER = "Lemma-Consistency-Token"
AFTER_HEADER = "Lemma-After"
STALE_HEADER = "Lemma-Possibly-Stale"

#: (topic on the cluster, partition) -> the offset of the last event of the write
Positions = dict[tuple[str, int], int]

POLL_S = 0.02


class BadToken(ValueError):
    """A token that is not one of ours."""


def encode_token(positions: Mapping[tuple[str, int], int]) -> str:
    body = json.dumps({f"{t}/{p}": o for (t, p), o in sorted(positions.items())}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_tokens(header: str) -> Positions:
    """The positions of one or more tokens (comma-separated), the furthest per partition."""
    positions: Positions = {}
    for token in (part.strip() for part in header.split(",")):
        if not token:
            continue
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if not isinstance(raw, dict) or len(raw) > 256:
                raise BadToken("not a map of positions")
            for place, offset in raw.items():
                topic, _, partition = str(place).rpartition("/")
                if not topic or not isinstance(offset, int) or offset < 0:
                    raise BadToken(f"bad position {place!r}: {offset!r}")
                key = (topic, int(partition))
                positions[key] = max(positions.get(key, -1), offset)
        except (
            binascii.Error,
            UnicodeDecodeError,
            json.JSONDecodeError,
            ValueError,
            RecursionError,
        ) as error:
            raise BadToken(f"{AFTER_HEADER} holds a token that is not ours: {error}") from error
    return positions


class LogProgress:
    """What the cluster says of the consumer groups and topics (one admin client, one consumer)."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self._kafka = kafka
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._lock:
            if self._admin is None or self._consumer is None:
                admin = self._kafka.admin()
                await admin.start()
                consumer = self._kafka.consumer(group_id=None, enable_auto_commit=False)
                await consumer.start()
                self._admin, self._consumer = admin, consumer
            return self._admin, self._consumer

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets: the next offset it will fold, per partition."""
        admin, _ = await self._started()
        found = await admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def ends(self, topic: str) -> dict[tuple[str, int], int]:
        _, consumer = await self._started()
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()  # a topic not asked of yet
            parts = consumer.partitions_for_topic(topic) or set()
        found = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return {(tp.topic, tp.partition): end for tp, end in found.items()}

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._admin = self._consumer = None


class Consistency:
    """Waits until ``service`` has seen given positions and what they caused on the way to it."""

    def __init__(
        self,
        service: str,
        *,
        topic_name: Callable[[Topic], str],
        group_name: Callable[[str], str],
        folded: Callable[[], Awaitable[dict[tuple[str, int], int]]],
        progress: LogProgress,
        bound_s: float,
    ) -> None:
        self.service = service
        self.bound_s = bound_s
        self._name = topic_name
        self._group = group_name
        self._folded = folded  # the service's own folded offsets (last offset folded)
        self._progress = progress
        self._far = distances(service)
        self._topics = {topic_name(t): t for t in Topic}

    async def wait(self, positions: Positions) -> bool:
        """True once seen; False when the bound passed first."""
        try:
            await asyncio.wait_for(self._follow(positions), self.bound_s)
        except TimeoutError:
            return False
        return True

    async def _follow(self, positions: Positions) -> None:
        todo = dict(positions)
        seen: Positions = {}
        while todo:
            (topic_name, partition), offset = todo.popitem()
            if seen.get((topic_name, partition), -1) >= offset:
                continue
            seen[(topic_name, partition)] = offset
            topic = self._topics.get(topic_name)
            if topic is None:
                continue  # not a topic of ours: nothing folds it
            if topic in FOLDS[self.service]:
                await self._until(self._folded, (topic_name, partition), offset)
            for other, folded in FOLDS.items():
                out = PRODUCES[other]
                if other == self.service or topic not in folded or out == topic:
                    continue
                if self._far.get(out, MAX_HOPS + 1) > self._far.get(topic, MAX_HOPS + 1):
                    continue  # away from this service
                group = self._group(other)
                await self._until(
                    functools.partial(self._committed_last, group), (topic_name, partition), offset
                )
                for place, end in (await self._progress.ends(self._name(out))).items():
                    if end > 0:
                        todo[place] = max(todo.get(place, -1), end - 1)

    async def _committed_last(self, group: str) -> dict[tuple[str, int], int]:
        return {
            place: next_offset - 1 for place, next_offset in (await self._progress.committed(group)).items()
        }

    @staticmethod
    async def _until(
        read: Callable[[], Awaitable[dict[tuple[str, int], int]]], place: tuple[str, int], offset: int
    ) -> None:
        # polled: the offsets live in the store and on the cluster, no event here tells of them
        while (await read()).get(place, -1) < offset:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
