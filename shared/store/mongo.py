"""MongoDB back end (PyMongo's async API, ``AsyncMongoClient``): the production store.

Layout, in the database named by the URL path (default ``lemma``):

- each logical collection ``c`` is the Mongo collection ``docs_c`` holding
  ``{"_id": key, "doc": {...}, "rev": revision}`` (no ``rev``: written before revisions);
- ``_offsets`` holds ``{"_id": "consumer|topic|partition", consumer, topic, partition, offset}``;
- ``_owners`` holds ``{"_id": "consumer|topic|partition", consumer, topic, partition, epoch,
  owner, writes}``: a fenced write increments ``writes`` where ``epoch`` is still its own, so it
  conflicts with a claim made meanwhile (a write conflict aborts one of the two transactions);
- ``_outbox`` holds ``{"_id": seq, topic, key, value, holder, until}``, read in ``_id`` order.

What a replica set gives and a test server may not: expectations are checked inside the
write's transaction; a document the write also changes conflicts with any concurrent change to
it (MongoDB aborts one of two transactions writing one document), but a document only read
(a guard) is read from the transaction's snapshot, so a change committed after the snapshot
and before the commit is not seen (write skew). The fold guards only documents that the
service's own jobs write, and those jobs compare-and-set the documents they change.

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
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from shared.store.base import (
    ABSENT,
    UNREVISED,
    Change,
    Conflict,
    Doc,
    Expectations,
    Fence,
    Fenced,
    OutboxRecord,
    PartitionOffsets,
    Store,
    Stored,
)
from shared.store.concurrency import Pending, claimable, fenced, new_revision

DEFAULT_DATABASE = "lemma"
DOCS_PREFIX = "docs_"
OFFSETS = "_offsets"
OUTBOX = "_outbox"
OWNERS = "_owners"
_CLAIM_WINDOW = 4
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

    async def read(self, collection: str, keys: Iterable[str]) -> dict[str, Stored]:
        return {
            key: Stored(row["doc"], row.get("rev", UNREVISED))
            for key, row in (await self._rows(collection, keys, None)).items()
        }

    async def revisions(self, collection: str, keys: Iterable[str]) -> dict[str, str]:
        rows = await self._rows(collection, keys, {"rev": 1})
        return {key: row.get("rev", UNREVISED) for key, row in rows.items()}

    async def _rows(
        self,
        collection: str,
        keys: Iterable[str],
        fields: dict[str, int] | None,
        session: AsyncClientSession | None = None,
    ) -> dict[str, Raw]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Raw] = {}
        for start in range(0, len(wanted), _CHUNK):
            cursor = self._docs(collection).find(
                {"_id": {"$in": wanted[start : start + _CHUNK]}}, fields, session=session
            )
            async for row in cursor:
                found[row["_id"]] = row
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

    async def scan_revisions(
        self, collection: str, prefix: str = "", *, after: str | None = None, limit: int = 1000
    ) -> list[tuple[str, str]]:
        if limit == 0:  # as in ``scan``: Mongo reads limit(0) as "no limit"
            return []
        cursor = self._docs(collection).find({"_id": key_range(prefix, after)}, {"rev": 1})
        cursor = cursor.sort("_id", pymongo.ASCENDING)
        if limit > 0:
            cursor = cursor.limit(limit)
        return [(row["_id"], row.get("rev", UNREVISED)) async for row in cursor]

    async def count(self, collection: str, prefix: str = "") -> int:
        return await self._docs(collection).count_documents({"_id": key_range(prefix)})

    async def write(
        self,
        changes: Sequence[Change] = (),
        *,
        offsets: PartitionOffsets | None = None,
        outbox: Sequence[OutboxRecord] = (),
        expect: Expectations | None = None,
        fence: Fence | None = None,
    ) -> None:
        # Build every operation first: a document JSON cannot hold fails here, before any I/O.
        rev = new_revision()
        last = {(c.collection, c.key): c.doc for c in changes}  # in order: the last change wins
        rows = {
            ref: None if doc is None else {"_id": ref[1], "doc": as_json(doc), "rev": rev}
            for ref, doc in last.items()
        }
        expected = dict(expect or {})
        by_collection: dict[str, list[WriteOp]] = defaultdict(list)
        for (collection, key), row in rows.items():
            if (collection, key) in expected:
                continue  # written by its compare-and-set
            if row is None:
                by_collection[collection].append(DeleteOne({"_id": key}))
            else:
                by_collection[collection].append(ReplaceOne({"_id": key}, row, upsert=True))
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
        if not batches and not expected and not fence:
            return

        async def apply(session: AsyncClientSession) -> None:
            # writes first (a transaction opened by a read is not one on every Mongo-wire
            # server), the checks among them: a miss raises and the transaction aborts
            if fence:
                await self._check_fence(fence, session)
            missed = [ref for ref, was in expected.items() if not await self._swap(ref, was, rows, session)]
            for coll, ops in batches:
                await coll.bulk_write(ops, ordered=True, session=session)
            missed += [
                ref
                for ref, was in expected.items()
                if was == ABSENT and ref not in rows and await self._exists(ref, session)
            ]
            if missed:
                raise Conflict(missed)

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

    async def _swap(
        self,
        ref: tuple[str, str],
        was: str,
        rows: dict[tuple[str, str], Raw | None],
        session: AsyncClientSession,
    ) -> bool:
        """One expectation, checked by the write it guards: False when the document is not
        at ``was`` (ABSENT: missing). A document only read is guarded by a write that leaves it
        as it is (its revision set to itself), so it too is a write of the transaction."""
        collection, key = ref
        docs = self._docs(collection)
        current: dict[str, Any] = {"_id": key, "rev": {"$exists": False} if was == UNREVISED else was}
        if ref not in rows:  # only read
            if was == ABSENT:
                return True  # checked once the writes are done (``_exists``)
            done = await docs.update_one(
                current, {"$set": {"rev": was}} if was != UNREVISED else {"$set": {}}, session=session
            )
            return done.matched_count == 1
        row = rows[ref]
        if was == ABSENT:
            if row is None:
                return not await self._exists(ref, session)
            try:
                await docs.insert_one(row, session=session)
            except DuplicateKeyError:
                return False
            return True
        if row is None:
            return (await docs.delete_one(current, session=session)).deleted_count == 1
        return (await docs.replace_one(current, row, session=session)).matched_count == 1

    async def _exists(self, ref: tuple[str, str], session: AsyncClientSession) -> bool:
        return await self._docs(ref[0]).count_documents({"_id": ref[1]}, limit=1, session=session) > 0

    async def _check_fence(self, fence: Fence, session: AsyncClientSession) -> None:
        """Advance each fenced partition's write count where its epoch is still the one given:
        a claim committed meanwhile makes the update miss (or conflict, and be retried)."""
        missed = {}
        for slot, epoch in fence.items():
            done = await self._db[OWNERS].update_one(
                {"_id": offset_id(*slot), "epoch": epoch}, {"$inc": {"writes": 1}}, session=session
            )
            if done.matched_count == 0:
                missed[slot] = epoch
        if missed:
            rows = self._db[OWNERS].find({"_id": {"$in": [offset_id(*s) for s in missed]}}, session=session)
            now = {(r["consumer"], r["topic"], r["partition"]): r["epoch"] async for r in rows}
            raise Fenced(fenced(missed, now))

    async def claim_partitions(
        self, consumer: str, partitions: Iterable[tuple[str, int]], owner: str
    ) -> dict[tuple[str, int], int]:
        epochs = {}
        for topic, partition in sorted(set(partitions)):
            row = await self._db[OWNERS].find_one_and_update(
                {"_id": offset_id(consumer, topic, partition)},
                {
                    "$inc": {"epoch": 1},
                    "$set": {"consumer": consumer, "topic": topic, "partition": partition, "owner": owner},
                },
                upsert=True,
                return_document=pymongo.ReturnDocument.AFTER,
            )
            assert row is not None  # an upsert returning the document after
            epochs[(topic, partition)] = int(row["epoch"])
        return epochs

    async def owners(self, consumer: str) -> dict[tuple[str, int], tuple[int, str]]:
        rows = self._db[OWNERS].find({"consumer": consumer})
        return {(r["topic"], r["partition"]): (r["epoch"], r["owner"]) async for r in rows}

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

    async def claim_outbox(
        self, owner: str, *, limit: int = 500, lease_s: float = 30.0
    ) -> list[OutboxRecord]:
        if limit <= 0:
            return []
        claimed: list[OutboxRecord] = []

        async def take(session: AsyncClientSession) -> None:
            now = time.time()
            cursor = (
                self._db[OUTBOX]
                .find(session=session)
                .sort("_id", pymongo.ASCENDING)
                .limit(limit * _CLAIM_WINDOW)
            )
            rows = [row async for row in cursor]
            head = [
                Pending(r["_id"], r["topic"], r["key"], r.get("holder", ""), r.get("until", 0.0))
                for r in rows
            ]
            seqs = set(claimable(head, owner, now, limit))
            if seqs:
                await self._db[OUTBOX].update_many(
                    {"_id": {"$in": sorted(seqs)}},
                    {"$set": {"holder": owner, "until": now + lease_s}},
                    session=session,
                )
            claimed[:] = [
                OutboxRecord(r["_id"], r["topic"], r["key"], bytes(r["value"]))
                for r in rows
                if r["_id"] in seqs
            ]

        async with self._client.start_session() as session:
            await session.with_transaction(take)
        return claimed

    async def release_outbox(self, owner: str) -> None:
        await self._db[OUTBOX].update_many({"holder": owner}, {"$set": {"holder": "", "until": 0.0}})

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
