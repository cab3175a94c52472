"""The store interface every back end implements.

Documents are JSON objects addressed by (collection, key). Keys sort as strings, so a
key like ``learner/skill/2026-11-26T10:00:00/evidence-id`` gives range scans by prefix
(the evidence trail, newest first) on any back end.

``write`` is the one atomic operation: document changes, the consumed offsets and the
outgoing events (the outbox) land together or not at all. That is what makes a
projection exactly-once on top of an at-least-once consumer.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
# (consumer, topic, partition) -> the last offset folded
PartitionOffsets = Mapping[tuple[str, str, int], int]


@dataclass(frozen=True)
class Change:
    """Put ``doc`` at (collection, key); ``doc=None`` deletes it."""

    collection: str
    key: str
    doc: Doc | None


@dataclass(frozen=True)
class OutboxRecord:
    """An event waiting to be published; ``seq`` orders the outbox."""

    seq: str
    topic: str
    key: str
    value: bytes


class Store(abc.ABC):
    """Async document store with atomic multi-document writes."""

    #: A URL that opens this same store in another process (``open_store``); None: none can
    #: (an in-memory database).
    url: str | None = None

    @abc.abstractmethod
    async def get(self, collection: str, key: str) -> Doc | None: ...

    @abc.abstractmethod
    async def get_many(self, collection: str, keys: Iterable[str]) -> dict[str, Doc]: ...

    @abc.abstractmethod
    async def scan(
        self,
        collection: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[tuple[str, Doc]]:
        """Documents whose key starts with ``prefix``, in key order, past ``after``."""

    @abc.abstractmethod
    async def count(self, collection: str, prefix: str = "") -> int: ...

    @abc.abstractmethod
    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
    ) -> None:
        """Apply changes (in order: the last change to a key wins), record offsets and
        enqueue events, all in one atomic step."""

    @abc.abstractmethod
    async def offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        """The last folded offset per (topic, partition) for one consumer."""

    @abc.abstractmethod
    async def collections(self) -> list[str]:
        """The names of the collections holding at least one document, sorted."""

    @abc.abstractmethod
    async def drop_collection(self, collection: str) -> int:
        """Delete every document of ``collection``; returns how many there were."""

    @abc.abstractmethod
    async def drop_offsets(self, consumer: str) -> None:
        """Forget every offset stored for ``consumer``."""

    @abc.abstractmethod
    async def pending_outbox(self, limit: int = 500) -> list[OutboxRecord]: ...

    @abc.abstractmethod
    async def ack_outbox(self, seqs: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
