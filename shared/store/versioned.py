"""Stores seen through a projection's versions (``shared.projection.versions``).

``VersionStore`` is one version of a projection in a store: its collections under the version's
names, everything else (offsets, the outbox) as it is. ``LiveStore`` is what readers and commands
use: the version that is live, looked up in the versions document and kept for a short while,
so that a switch reaches every reader within ``refresh_s`` and costs a read per interval, not
per request. A request that spans a switch may read the old version and then the new one: both
are whole, and the new one is at least as far as the old one was frozen.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from shared.projection.versions import VERSIONS, Versions, namespace, unversioned, version_of
from shared.store.base import (
    Change,
    Conflict,
    Doc,
    Expectations,
    Fence,
    OutboxRecord,
    PartitionOffsets,
    Store,
    Stored,
)


class VersionStore(Store):
    """Version ``version`` of a projection's documents in ``store``."""

    def __init__(self, store: Store, version: int) -> None:
        self.inner = store
        self.version = version

    def _name(self, collection: str) -> str:
        return namespace(collection, self.version)

    async def get(self, collection: str, key: str) -> Doc | None:
        return await self.inner.get(self._name(collection), key)

    async def get_many(self, collection: str, keys: Iterable[str]) -> dict[str, Doc]:
        return await self.inner.get_many(self._name(collection), keys)

    async def read(self, collection: str, keys: Iterable[str]) -> dict[str, Stored]:
        return await self.inner.read(self._name(collection), keys)

    async def revisions(self, collection: str, keys: Iterable[str]) -> dict[str, str]:
        return await self.inner.revisions(self._name(collection), keys)

    async def scan(
        self,
        collection: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[tuple[str, Doc]]:
        return await self.inner.scan(
            self._name(collection), prefix, after=after, limit=limit, descending=descending
        )

    async def scan_revisions(
        self, collection: str, prefix: str = "", *, after: str | None = None, limit: int = 1000
    ) -> list[tuple[str, str]]:
        return await self.inner.scan_revisions(self._name(collection), prefix, after=after, limit=limit)

    async def count(self, collection: str, prefix: str = "") -> int:
        return await self.inner.count(self._name(collection), prefix)

    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
        expect: Expectations | None = None,
        fence: Fence | None = None,
    ) -> None:
        named = [Change(self._name(c.collection), c.key, c.doc) for c in changes]
        expected = {(self._name(c), k): rev for (c, k), rev in (expect or {}).items()}
        try:
            await self.inner.write(named, offsets=offsets, outbox=outbox, expect=expected, fence=fence)
        except Conflict as conflict:  # named as the writer named them
            raise Conflict([(version_of(c)[1], k) for c, k in conflict.refs]) from conflict

    async def claim_partitions(
        self, consumer: str, partitions: Iterable[tuple[str, int]], owner: str
    ) -> dict[tuple[str, int], int]:
        return await self.inner.claim_partitions(consumer, partitions, owner)

    async def owners(self, consumer: str) -> dict[tuple[str, int], tuple[int, str]]:
        return await self.inner.owners(consumer)

    async def offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        return await self.inner.offsets(consumer)

    async def collections(self) -> list[str]:
        """This version's collections, by their names within the version."""
        named = [version_of(name) for name in await self.inner.collections()]
        return sorted(c for v, c in named if v == self.version and not unversioned(c))

    async def drop_collection(self, collection: str) -> int:
        return await self.inner.drop_collection(self._name(collection))

    async def drop_offsets(self, consumer: str) -> None:
        await self.inner.drop_offsets(consumer)

    async def pending_outbox(self, limit: int = 500) -> list[OutboxRecord]:
        return await self.inner.pending_outbox(limit)

    async def claim_outbox(
        self, owner: str, *, limit: int = 500, lease_s: float = 30.0
    ) -> list[OutboxRecord]:
        return await self.inner.claim_outbox(owner, limit=limit, lease_s=lease_s)

    async def release_outbox(self, owner: str) -> None:
        await self.inner.release_outbox(owner)

    async def ack_outbox(self, seqs: Sequence[str]) -> None:
        await self.inner.ack_outbox(seqs)

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class LiveStore(VersionStore):
    """The live version of ``projection`` in ``store``, looked up at most every ``refresh_s``."""

    def __init__(self, store: Store, projection: str, *, refresh_s: float = 0.5) -> None:
        super().__init__(store, 1)
        self.projection = projection
        self.refresh_s = refresh_s
        self._checked = -float("inf")

    async def versions(self) -> Versions:
        return Versions.from_doc(self.projection, await self.inner.get(VERSIONS, self.projection))

    async def refresh(self) -> int:
        """Look the live version up now; returns it. Never goes back: versions only go live in
        order, so an older answer (two look-ups finishing out of order) is ignored."""
        self.version = max(self.version, (await self.versions()).live)
        self._checked = time.monotonic()
        return self.version

    async def _live(self) -> None:
        if time.monotonic() - self._checked >= self.refresh_s:
            await self.refresh()

    def _name(self, collection: str) -> str:
        return namespace(collection, self.version)

    async def get(self, collection: str, key: str) -> Doc | None:
        await self._live()
        return await super().get(collection, key)

    async def get_many(self, collection: str, keys: Iterable[str]) -> dict[str, Doc]:
        await self._live()
        return await super().get_many(collection, keys)

    async def read(self, collection: str, keys: Iterable[str]) -> dict[str, Stored]:
        await self._live()
        return await super().read(collection, keys)

    async def revisions(self, collection: str, keys: Iterable[str]) -> dict[str, str]:
        await self._live()
        return await super().revisions(collection, keys)

    async def scan(
        self,
        collection: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[tuple[str, Doc]]:
        await self._live()
        return await super().scan(collection, prefix, after=after, limit=limit, descending=descending)

    async def scan_revisions(
        self, collection: str, prefix: str = "", *, after: str | None = None, limit: int = 1000
    ) -> list[tuple[str, str]]:
        await self._live()
        return await super().scan_revisions(collection, prefix, after=after, limit=limit)

    async def count(self, collection: str, prefix: str = "") -> int:
        await self._live()
        return await super().count(collection, prefix)

    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
        expect: Expectations | None = None,
        fence: Fence | None = None,
    ) -> None:
        await self._live()
        await super().write(changes, offsets=offsets, outbox=outbox, expect=expect, fence=fence)
