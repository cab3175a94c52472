"""The MongoDB adapter: its pure parts and what it does before any I/O (no server needed), then,
against a server (the ``mongo_url`` fixture: the test server, or the real MongoDB that
``LEMMA_TEST_MONGO_URL`` names), its layout, its key order, and the MongoDB behaviours it relies
on that the test server lacks (``mongo_gap`` tests: expected failures there, see docs/stores.md).

The store interface against a server is tests/integration/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from shared.store import open_store
from shared.store.base import Change, OutboxRecord
from shared.store.mongo import MongoStore, as_json, key_range, offset_id
from tests.support.mongo_server import with_options

# No server listens on port 1: anything that reached the network would fail with a timeout.
NOWHERE = "mongodb://127.0.0.1:1/unit?serverSelectionTimeoutMS=100&connectTimeoutMS=100"

# Code points a key can hold (no surrogates, and not U+10FFFF, the prefix-range sentinel).
KEY_CHARS = st.characters(exclude_categories=["Cs"], max_codepoint=0x10FFFE)
KEYS = st.text(KEY_CHARS, max_size=6)


def in_range(key: str, rng: dict[str, str]) -> bool:
    return rng["$gte"] <= key < rng["$lt"]


@given(st.lists(KEYS, max_size=30), KEYS, st.none() | KEYS, st.booleans())
def test_key_range_selects_the_prefix_past_after(
    keys: list[str], prefix: str, after: str | None, descending: bool
) -> None:
    rng = key_range(prefix, after, descending=descending)
    expected = {
        k
        for k in keys
        if k.startswith(prefix) and (after is None or (k < after if descending else k > after))
    }
    assert {k for k in keys if in_range(k, rng)} == expected


@given(st.lists(KEYS, max_size=30))
def test_code_point_order_is_utf8_byte_order(keys: list[str]) -> None:
    """Why Mongo (UTF-8 bytes), SQLite (BINARY) and Python ``sorted`` agree on key order."""
    assert sorted(keys) == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_as_json_gives_what_sqlite_gives_back() -> None:
    odd: Any = {"t": (1, 2), 3: "x", "n": None}
    assert as_json(odd) == {"t": [1, 2], "3": "x", "n": None}
    with pytest.raises(TypeError):
        as_json({"s": {1, 2}})
    with pytest.raises(TypeError):
        as_json(["not", "an", "object"])  # type: ignore[arg-type]


def test_offset_ids_do_not_collide_when_topics_have_no_bar() -> None:
    # Kafka topic names cannot hold "|", so a "|" in a consumer name stays unambiguous.
    assert offset_id("proj|v2", "lemma.a", 0) != offset_id("proj", "lemma.a", 0)
    assert offset_id("proj", "lemma.a", 12) == "proj|lemma.a|12"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("mongodb://127.0.0.1:27017", "lemma"),
        ("mongodb://127.0.0.1:27017/", "lemma"),
        ("mongodb://127.0.0.1:27017/?replicaSet=rs0", "lemma"),
        ("mongodb://a:1,b:2/passport?replicaSet=rs0&w=majority", "passport"),
    ],
)
async def test_database_name_comes_from_the_url_path(url: str, name: str) -> None:
    store = MongoStore(url)
    try:
        assert store.database_name == name
    finally:
        await store.close()


async def test_factory_opens_a_mongo_store() -> None:
    store = open_store(NOWHERE)
    try:
        assert isinstance(store, MongoStore)
    finally:
        await store.close()


async def test_nothing_is_sent_for_a_bad_doc_an_empty_write_or_limit_zero() -> None:
    store = MongoStore(NOWHERE)
    bad: Any = {"when": {1, 2}}
    try:
        with pytest.raises(TypeError):  # not ServerSelectionTimeoutError: refused before any I/O
            await store.write([Change("c", "ok", {"n": 1}), Change("c", "bad", bad)])
        await store.write([], offsets={}, outbox=[])
        assert await store.scan("c", limit=0) == []
        assert await store.pending_outbox(limit=0) == []
    finally:
        await store.close()


# --- against a server -----------------------------------------------------------------------------

Raw = dict[str, Any]
# Code points where orders part ways: NUL (``after``'s successor), ASCII's end, UTF-8's two-,
# three- and four-byte starts, the last BMP code point, astral ones, and the key separator.
EDGE_CHARS = st.sampled_from(
    ["a", "b", "/", "\x00", "\x7f", "\x80", "é", "日", "\uffff", "\U00010000", "😀", "\U0010fffe"]
)
EDGE_KEYS = st.text(EDGE_CHARS, max_size=4)


@pytest.fixture
async def store(mongo_db_url: str) -> AsyncIterator[MongoStore]:
    opened = MongoStore(mongo_db_url)
    yield opened
    await opened.close()


@pytest.fixture
async def raw(mongo_db_url: str) -> AsyncIterator[AsyncMongoClient[Raw]]:
    """A client of the test's own, to look under the store and hold transactions open."""
    client: AsyncMongoClient[Raw] = AsyncMongoClient(mongo_db_url)
    yield client
    await client.close()


async def test_the_documented_layout(store: MongoStore, raw: AsyncMongoClient[Raw]) -> None:
    await store.write(
        [Change("c", "k/1", {"n": 1})],
        offsets={("proj", "lemma.a", 3): 7},
        outbox=[OutboxRecord("0001", "lemma.a", "key", b"\x00\xffv")],
    )
    db = raw.get_default_database()
    assert db.name == store.database_name
    row = await db["docs_c"].find_one()
    assert row is not None and row.pop("rev") == (await store.revisions("c", ["k/1"]))["k/1"]
    assert row == {"_id": "k/1", "doc": {"n": 1}}
    offsets = {"_id": "proj|lemma.a|3", "consumer": "proj", "topic": "lemma.a", "partition": 3, "offset": 7}
    assert await db["_offsets"].find_one() == offsets
    outbox = {"_id": "0001", "topic": "lemma.a", "key": "key", "value": b"\x00\xffv"}
    assert await db["_outbox"].find_one() == outbox


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(EDGE_KEYS, unique=True, max_size=12), EDGE_KEYS, st.none() | EDGE_KEYS, st.booleans())
def test_the_server_orders_keys_as_python_does(
    mongo_db_url: str, keys: list[str], prefix: str, after: str | None, descending: bool
) -> None:
    """The server's "simple" collation, the prefix range and ``after`` agree with ``sorted``."""
    collection = f"p{uuid.uuid4().hex[:10]}"  # one per example: no example sees another's keys
    in_prefix = [k for k in keys if k.startswith(prefix)]
    past = [k for k in in_prefix if after is None or (k < after if descending else k > after)]

    async def check() -> None:
        store = MongoStore(mongo_db_url)
        try:
            await store.write([Change(collection, k, {"k": k}) for k in keys])
            got = await store.scan(collection, prefix, after=after, limit=-1, descending=descending)
            assert [k for k, _ in got] == sorted(past, reverse=descending)
            assert await store.count(collection, prefix) == len(in_prefix)
        finally:
            await store.close()

    asyncio.run(check())


@pytest.mark.mongo_gap("no isolation: a read outside a transaction sees its uncommitted writes")
async def test_a_read_outside_a_transaction_sees_only_committed_writes(
    store: MongoStore, raw: AsyncMongoClient[Raw]
) -> None:
    await store.write([Change("c", "k", {"n": 0})])
    docs = raw.get_default_database()["docs_c"]
    async with raw.start_session() as session:
        await session.start_transaction()
        await docs.replace_one({"_id": "k"}, {"_id": "k", "doc": {"n": 1}}, session=session)
        await docs.insert_one({"_id": "new", "doc": {"n": 2}}, session=session)
        seen = (await store.get("c", "k"), await store.get("c", "new"))
        await session.abort_transaction()
    assert seen == ({"n": 0}, None)


@pytest.mark.mongo_gap("one transaction per database: aborting one discards other sessions' writes")
async def test_an_aborted_transaction_takes_no_other_write_with_it(
    store: MongoStore, raw: AsyncMongoClient[Raw]
) -> None:
    await store.write([Change("c", "seed", {"n": 0})])
    async with raw.start_session() as session:
        await session.start_transaction()
        await raw.get_default_database()["docs_c"].insert_one({"_id": "t", "doc": {}}, session=session)
        await store.write([Change("c", "w", {"n": 1})])  # its own transaction, committed
        await session.abort_transaction()
    assert await store.get("c", "w") == {"n": 1}
    assert await store.get("c", "t") is None


@pytest.mark.mongo_gap("concurrent transactions on one database fail (no such savepoint)")
async def test_concurrent_writes_all_land(mongo_db_url: str, store: MongoStore) -> None:
    """Two stores write at once, each key once and one key all the time (write conflicts,
    which ``with_transaction`` retries on MongoDB)."""
    await store.write([Change("c", "shared", {"by": "seed"})], outbox=[OutboxRecord("seed", "t", "k", b"")])
    writers = [MongoStore(mongo_db_url) for _ in range(2)]

    async def write(w: int, writer: MongoStore) -> None:
        for i in range(10):
            changes = [Change("c", f"{w}/{i}", {"i": i}), Change("c", "shared", {"by": f"{w}/{i}"})]
            await writer.write(changes, outbox=[OutboxRecord(f"{w}/{i:02d}", "t", "k", b"v")])

    try:
        await asyncio.gather(*(write(w, writer) for w, writer in enumerate(writers)))
    finally:
        for writer in writers:
            await writer.close()
    assert await store.count("c") == 21
    assert (await store.get("c", "shared") or {}).get("by") in {"0/9", "1/9"}
    assert len(await store.pending_outbox()) == 21


@pytest.mark.mongo_gap("hello names no replica set: the server passes as a standalone mongod")
async def test_the_server_is_a_replica_set_member_or_a_mongos(raw: AsyncMongoClient[Raw]) -> None:
    """Transactions need a replica set or a sharded cluster (``MongoStore.write``)."""
    hello = await raw.admin.command("hello")
    assert hello.get("setName") or hello.get("msg") == "isdbgrid"


@pytest.mark.mongo_gap("write concern is accepted and not enforced: w=50 succeeds on one node")
async def test_the_urls_write_concern_reaches_the_transaction(mongo_db_url: str) -> None:
    """No replica set has 50 data-bearing members: the commit must fail, not pass silently."""
    store = MongoStore(with_options(mongo_db_url, w="50", wtimeoutMS="5000"))
    try:
        with pytest.raises(OperationFailure):
            await store.write([Change("c", "k", {"n": 1})])
    finally:
        await store.close()
