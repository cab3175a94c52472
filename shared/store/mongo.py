"""MongoDB back end (PyMongo's async API, ``AsyncMongoClient``): the production store.

Layout, in the database named by the URL path (default ``lemma``):

- each logical collection ``c`` is the Mongo collection ``docs_c`` holding
  ``{"_id": key, "doc": {...}}``;
- ``_offsets`` holds ``{"_id": "consumer|topic|partition", consumer, topic, partition, offset}``;
- ``_outbox`` holds ``{"_id": seq, topic, key, value}``, read in ``_id`` order.

Keys are strings and Mongo compares strings by their UTF-8 bytes (the "simple"
collation), which is code point order, the same order SQLite's BINARY collation
and Python's ``sorted`` give; so a prefix scan is the ``_id`` range
``[prefix, prefix + U+10FFFF)``, exactly as in ``shared/store/sqlite.py``.

``write`` runs in one multi-document transaction, so it needs a replica set (or a
sharded cluster) of MongoDB 4.4 or later (collections are created implicitly inside
the transaction): production runs one. A standalone ``mongod`` serves reads and
``ping`` but every ``write`` fails with :class:`TransactionsUnsupported`. Use a
one-node replica set (``mongod --replSet rs0`` + ``rs.initiate()``) for local work.
The transaction inherits the write concern of the URL (``w=majority`` is the
server default for replica sets).

Documents are passed through a JSON round trip before they are written, so they
come back exactly as from the SQLite store (tuples become lists, non-string keys
become strings, anything JSON cannot hold, such as a ``datetime`` or a ``set``, is
refused with ``TypeError`` before anything is sent).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from shared.store.base import Change, Doc, OutboxRecord, PartitionOffsets, Store

DEFAULT_DATABASE = "lemma"
DOCS_PREFIX = "docs_"
OFFSETS = "_offsets"
OUTBOX = "_outbox"
PING_TIMEOUT_S = 2.0
_CHUNK = 1000
_ILLEGAL_OPERATION = 20  # "Transaction numbers are only allowed on a replica set member or mongos"

Raw = dict[str, Any]
WriteOp = ReplaceOne[Raw] | DeleteOne | UpdateOne


class TransactionsUnsupported(RuntimeError):
    """The server is a standalone ``mongod``: multi-document transactions need a replica set."""


def key_range(prefix: str, after: str | None = None, *, descending: bool = False) -> dict[str, str]:
    """The ``_id`` filter for keys starting with ``prefix``, strictly past ``after``."""
    low, high = prefix, prefix + "\U0010ffff"
    if after is not None:
        if descending:
            high = min(high, after)
        else:
            low = max(low, after + "\x00")  # the smallest string greater than ``after``
    return {"$gte": low, "$lt": high}


def as_json(doc: Doc) -> Doc:
    """The document as the SQLite store would return it (a JSON round trip)."""
    out = json.loads(json.dumps(doc))
    if not isinstance(out, dict):
        raise TypeError(f"a document must be a JSON object, not {type(doc).__name__}")
    return out


def offset_id(consumer: str, topic: str, partition: int) -> str:
    """Unambiguous even if ``consumer`` holds a "|": Kafka topic names cannot."""
    return f"{consumer}|{topic}|{partition}"


class MongoStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self._client: AsyncMongoClient[Raw] = AsyncMongoClient(url)
        self._db = self._client.get_default_database(DEFAULT_DATABASE)

    @property
    def database_name(self) -> str:
        return self._db.name

    def _docs(self, collection: str) -> AsyncCollection[Raw]:
        return self._db[DOCS_PREFIX + collection]

    async def get(self, collection: str, key: str) -> Doc | None:
        row = await self._docs(collection).find_one({"_id": key})
        return None if row is None else dict(row["doc"])

    async def get_many(self, collection: str, keys: Iterable[str]) -> dict[str, Doc]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Doc] = {}
        for start in range(0, len(wanted), _CHUNK):
            cursor = self._docs(collection).find({"_id": {"$in": wanted[start : start + _CHUNK]}})
            async for row in cursor:
                found[row["_id"]] = row["doc"]
        return found

    async def scan(
        self,
        collection: str,
        prefix: str = "",
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[tuple[str, Doc]]:
        if limit == 0:  # Mongo reads limit(0) as "no limit"; SQLite's LIMIT 0 returns nothing
            return []
        cursor = self._docs(collection).find({"_id": key_range(prefix, after, descending=descending)})
        cursor = cursor.sort("_id", pymongo.DESCENDING if descending else pymongo.ASCENDING)
        if limit > 0:  # a negative limit means no limit, as in SQLite
            cursor = cursor.limit(limit)
        return [(row["_id"], row["doc"]) async for row in cursor]

    async def count(self, collection: str, prefix: str = "") -> int:
        return await self._docs(collection).count_documents({"_id": key_range(prefix)})

    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
    ) -> None:
        # Build every operation first: a document JSON cannot hold fails here, before any I/O.
        by_collection: dict[str, list[WriteOp]] = defaultdict(list)
        for change in changes:  # ordered per collection, so a later change to a key wins
            ops = by_collection[change.collection]
            if change.doc is None:
                ops.append(DeleteOne({"_id": change.key}))
            else:
                row = {"_id": change.key, "doc": as_json(change.doc)}
                ops.append(ReplaceOne({"_id": change.key}, row, upsert=True))
        offset_ops: list[WriteOp] = [
            ReplaceOne(
                {"_id": offset_id(c, t, p)},
                {"_id": offset_id(c, t, p), "consumer": c, "topic": t, "partition": p, "offset": o},
                upsert=True,
            )
            for (c, t, p), o in (offsets or {}).items()
        ]
        outbox_ops: list[WriteOp] = [  # insert-if-absent: a seq already there keeps its first value
            UpdateOne(
                {"_id": r.seq},
                {"$setOnInsert": {"topic": r.topic, "key": r.key, "value": r.value}},
                upsert=True,
            )
            for r in outbox
        ]
        batches = [(self._docs(name), ops) for name, ops in by_collection.items()]
        batches += [(self._db[OFFSETS], offset_ops), (self._db[OUTBOX], outbox_ops)]
        batches = [(coll, ops) for coll, ops in batches if ops]
        if not batches:
            return

        async def apply(session: AsyncClientSession) -> None:
            for coll, ops in batches:
                await coll.bulk_write(ops, ordered=True, session=session)

        try:
            async with self._client.start_session() as session:
                await session.with_transaction(apply)
        except OperationFailure as exc:
            if exc.code == _ILLEGAL_OPERATION and "replica set" in str(exc):
                raise TransactionsUnsupported(
                    "MongoStore.write needs multi-document transactions: "
                    "run MongoDB as a replica set (a one-node one will do), not a standalone server"
                ) from exc
            raise

    async def offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        cursor = self._db[OFFSETS].find({"consumer": consumer})
        return {(row["topic"], row["partition"]): row["offset"] async for row in cursor}

    async def collections(self) -> list[str]:
        names = await self._db.list_collection_names()
        found = []
        for name in sorted(n for n in names if n.startswith(DOCS_PREFIX)):
            if await self._db[name].find_one({}, {"_id": 1}) is not None:
                found.append(name.removeprefix(DOCS_PREFIX))
        return found

    async def drop_collection(self, collection: str) -> int:
        deleted = await self._docs(collection).delete_many({})
        return int(deleted.deleted_count)

    async def drop_offsets(self, consumer: str) -> None:
        await self._db[OFFSETS].delete_many({"consumer": consumer})

    async def pending_outbox(self, limit: int = 500) -> list[OutboxRecord]:
        if limit == 0:
            return []
        cursor = self._db[OUTBOX].find().sort("_id", pymongo.ASCENDING)
        if limit > 0:
            cursor = cursor.limit(limit)
        return [
            OutboxRecord(row["_id"], row["topic"], row["key"], bytes(row["value"])) async for row in cursor
        ]

    async def ack_outbox(self, seqs: Sequence[str]) -> None:
        """Delete published records; idempotent, so it needs no transaction (works standalone too)."""
        wanted = list(dict.fromkeys(seqs))
        for start in range(0, len(wanted), _CHUNK):
            await self._db[OUTBOX].delete_many({"_id": {"$in": wanted[start : start + _CHUNK]}})

    async def ping(self) -> bool:
        """Round trip to the server; raises when it cannot be reached within ``PING_TIMEOUT_S``."""
        with pymongo.timeout(PING_TIMEOUT_S):
            reply = await self._client.admin.command("ping")
        return bool(reply.get("ok"))

    async def close(self) -> None:
        await self._client.close()
