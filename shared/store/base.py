"""The store interface every back end implements.

Documents are JSON objects addressed by (collection, key). Keys sort as strings, so a
key like ``learner/skill/2026-11-26T10:00:00/evidence-id`` gives range scans by prefix
(the evidence trail, newest first) on any back end.

``write`` is the one atomic operation: document changes, the consumed offsets and the
outgoing events (the outbox) land together or not at all. That is what makes a
projection exactly-once on top of an at-least-once consumer.

Several replicas of a service share one store, so a write can also say what must still hold
for it to land (``shared.store.concurrency``): the revisions of the documents it read
(``expect``: compare-and-set, refused with :class:`Conflict`) and the owner epochs of the
partitions it folded (``fence``: only a partition's current owner writes its offsets, refused
with :class:`Fenced`). The outbox is relayed by whichever replica claims a row, one at a time
per key (``claim_outbox``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
# (consumer, topic, partition) -> the last offset folded
PartitionOffsets = Mapping[tuple[str, str, int], int]
# (consumer, topic, partition) -> the owner epoch the writer holds (``claim_partitions``)
Fence = Mapping[tuple[str, str, int], int]
# (collection, key) -> the revision the writer read, or ``ABSENT``
Expectations = Mapping[tuple[str, str], str]

#: The revision of a document that does not exist: expecting it means "create, never replace".
ABSENT = "-"
#: The revision of a document written before documents had revisions.
UNREVISED = "0"


class Conflict(RuntimeError):
    """A document changed since it was read (or exists where none was expected): nothing of
    the write landed; read again and decide again."""

    def __init__(self, refs: Sequence[tuple[str, str]]) -> None:
        self.refs = sorted(refs)
        super().__init__(f"changed since read: {', '.join(f'{c}/{k}' for c, k in self.refs[:5])}")


class Fenced(RuntimeError):
    """Another process claimed a partition since this one did: nothing of the write landed,
    and this process must stop folding that partition."""

    def __init__(self, partitions: Mapping[tuple[str, str, int], int]) -> None:
        #: (consumer, topic, partition) -> the epoch that holds now
        self.partitions = dict(partitions)
        named = ", ".join(f"{t}[{p}] (epoch {e})" for (_, t, p), e in sorted(self.partitions.items()))
        super().__init__(f"partitions claimed by another owner: {named}")


@dataclass(frozen=True)
class Stored:
    """A document with its revision: what a compare-and-set expects (``write(expect=...)``)."""

    doc: Doc
    rev: str


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
    async def read(self, collection: str, keys: Iterable[str]) -> dict[str, Stored]:
        """The documents found, each with its revision, read together."""

    @abc.abstractmethod
    async def revisions(self, collection: str, keys: Iterable[str]) -> dict[str, str]:
        """The revisions of the documents found (not their bodies: cheap for large ones)."""

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
    async def scan_revisions(
        self, collection: str, prefix: str = "", *, after: str | None = None, limit: int = 1000
    ) -> list[tuple[str, str]]:
        """``(key, revision)`` of the documents ``scan`` would give, ascending, without their
        bodies: cheap enough to list a whole collection and read only what changed since."""

    @abc.abstractmethod
    async def count(self, collection: str, prefix: str = "") -> int: ...

    @abc.abstractmethod
    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
        expect: Expectations | None = None,
        fence: Fence | None = None,
    ) -> None:
        """Apply changes (in order: the last change to a key wins), record offsets and
        enqueue events, all in one atomic step; every document changed gets a new revision.

        ``expect``: documents (changed or only read) that must still be at the revision read,
        else :class:`Conflict`. ``fence``: partitions whose owner epoch must still be the one
        given, else :class:`Fenced`. Either way nothing lands."""

    @abc.abstractmethod
    async def claim_partitions(
        self, consumer: str, partitions: Iterable[tuple[str, int]], owner: str
    ) -> dict[tuple[str, int], int]:
        """Become the owner of ``consumer``'s ``partitions``: each one's epoch goes up by one,
        and a write fenced with an older epoch is refused from now on. Returns the new epochs."""

    @abc.abstractmethod
    async def owners(self, consumer: str) -> dict[tuple[str, int], tuple[int, str]]:
        """Each claimed partition of ``consumer``: its epoch and the owner that claimed it."""

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
    async def claim_outbox(
        self, owner: str, *, limit: int = 500, lease_s: float = 30.0
    ) -> list[OutboxRecord]:
        """Records for ``owner`` to publish, in outbox order: those it holds already and, up to
        ``limit``, pending ones nobody holds (or whose holder's lease ran out). A record is
        never taken while an earlier one of its topic and key is held by another owner, so
        each key's records are published in order whatever the number of relays."""

    @abc.abstractmethod
    async def release_outbox(self, owner: str) -> None:
        """Give up every record ``owner`` holds (a relay that stops): others take them at once."""

    @abc.abstractmethod
    async def ack_outbox(self, seqs: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
