"""One contract every store back end must meet, in the manner of the ``eventsourcing`` library.

``StoreContract`` holds the tests; each back end subclasses it and provides ``make_store``,
a fixture returning a factory: every call opens a store on the same underlying data (so a
second call after ``close`` shows what survived). MongoDB runs against the test server of
``tests/support/mongo_server.py``, or against the real replica set that ``LEMMA_TEST_MONGO_URL``
names (e.g. ``mongodb://127.0.0.1:27017/?replicaSet=rs0``); each test gets, and drops, its own
database (the ``mongo_db_url`` fixture of ``tests/support/mongo_fixtures.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from bson.errors import InvalidDocument

from shared.store.base import ABSENT, Change, Conflict, Doc, Fenced, OutboxRecord, Store
from shared.store.mongo import MongoStore
from shared.store.sqlite import SqliteStore
from shared.store.versioned import VersionStore

StoreFactory = Callable[[], Store]
# What a back end may raise for a value it cannot store (the write must leave nothing behind).
UNWRITABLE = (TypeError, ValueError, OverflowError, sqlite3.Error, InvalidDocument)

TRAIL = [  # evidence-trail keys: learner/skill/time/id, newest last in key order
    "ann/ml/2026-11-01T10:00:00/e1",
    "ann/ml/2026-11-02T10:00:00/e2",
    "ann/ml/2026-11-03T10:00:00/e3",
    "ann/ml/2026-11-04T10:00:00/e4",
    "ann/ml/2026-11-05T10:00:00/e5",
    "ann/mlops/2026-11-01T10:00:00/e6",
    "ann2/ml/2026-11-01T10:00:00/e7",
    "anna/ml/2026-11-01T10:00:00/e8",
    "bob/ml/2026-11-01T10:00:00/e9",
]
UNICODE_KEYS = [
    "a/b",
    "a/b/c",
    "a/ü",
    "a/z",
    "a/日本/1",
    "a/\uffff",  # the last BMP code point sorts before any astral one in code point (UTF-8) order
    "a/\U00010000",
    "a/😀/x",
    "a0",
    "ab",
    "é/1",
]


def doc(n: int, **extra: Any) -> Doc:
    return {"n": n, **extra}


def rec(seq: str, value: bytes = b"\x00\xff\x80payload") -> OutboxRecord:
    return OutboxRecord(seq=seq, topic="lemma.test", key=f"k-{seq}", value=value)


async def put_all(store: Store, collection: str, keys: list[str]) -> None:
    await store.write([Change(collection, k, doc(i, key=k)) for i, k in enumerate(keys)])


async def snapshot(store: Store) -> tuple[object, ...]:
    """Everything the failing-write tests touch, to compare before and after."""
    return (
        await store.scan("c", limit=1000),
        await store.scan("d", limit=1000),
        await store.offsets("proj"),
        await store.pending_outbox(),
    )


class StoreContract:
    """The tests; a subclass provides the ``make_store`` fixture (and ``persistent``)."""

    persistent: ClassVar[bool] = True  # does data survive close + reopen?

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("a StoreContract subclass provides the make_store fixture")

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> AsyncIterator[Store]:
        opened = make_store()
        yield opened
        await opened.close()

    # --- documents -----------------------------------------------------------------------------

    async def test_get_missing_is_none(self, store: Store) -> None:
        assert await store.get("c", "nope") is None
        assert await store.get_many("c", ["nope"]) == {}

    async def test_put_get_round_trip(self, store: Store) -> None:
        value = {
            "s": "é 😀 日本",
            "i": 2**40,
            "neg": -3,
            "f": 1.5,
            "b": True,
            "none": None,
            "l": [1, "x", {"y": []}],
            "o": {"deep": {"er": {}}},
        }
        await store.write([Change("c", "k", value)])
        assert await store.get("c", "k") == value
        assert list((await store.get("c", "k") or {}).keys()) == list(value.keys())

    async def test_put_replaces_and_delete_removes(self, store: Store) -> None:
        await store.write([Change("c", "k", doc(1, old=True))])
        await store.write([Change("c", "k", doc(2))])
        assert await store.get("c", "k") == doc(2)  # replaced whole, not merged
        await store.write([Change("c", "k", None), Change("c", "never-there", None)])
        assert await store.get("c", "k") is None
        assert await store.count("c") == 0

    async def test_later_change_to_same_key_wins(self, store: Store) -> None:
        await store.write([Change("c", "a", doc(1)), Change("c", "a", doc(2))])
        assert await store.get("c", "a") == doc(2)
        await store.write([Change("c", "b", doc(1)), Change("c", "b", None)])
        assert await store.get("c", "b") is None
        await store.write([Change("c", "a", None), Change("c", "a", doc(3))])
        assert await store.get("c", "a") == doc(3)

    async def test_collections_are_separate(self, store: Store) -> None:
        await store.write([Change("c", "k", doc(1)), Change("d", "k", doc(2))])
        assert await store.get("c", "k") == doc(1)
        assert await store.get("d", "k") == doc(2)
        assert await store.count("c") == 1
        assert await store.scan("e") == []

    async def test_get_many(self, store: Store) -> None:
        keys = [f"k{i:05d}" for i in range(1200)]  # more than any back end's chunk
        await put_all(store, "c", keys)
        found = await store.get_many("c", [*keys[::-1], "missing", keys[0]])
        assert set(found) == set(keys)
        assert found["k00007"] == doc(7, key="k00007")
        assert await store.get_many("c", []) == {}
        assert await store.get_many("c", iter(["k00001", "zz"])) == {"k00001": doc(1, key="k00001")}

    # --- scans ---------------------------------------------------------------------------------

    async def test_scan_prefix_ascending(self, store: Store) -> None:
        await put_all(store, "c", TRAIL[::-1])
        got = await store.scan("c", "ann/ml/")
        assert [k for k, _ in got] == TRAIL[:5]
        assert got[0][1] == doc(8, key=TRAIL[0])
        assert [k for k, _ in await store.scan("c", "ann/")] == TRAIL[:6]
        assert [k for k, _ in await store.scan("c")] == TRAIL

    async def test_scan_prefix_descending_newest_first(self, store: Store) -> None:
        await put_all(store, "c", TRAIL)
        got = await store.scan("c", "ann/ml/", descending=True, limit=3)
        assert [k for k, _ in got] == TRAIL[4:1:-1]

    @pytest.mark.parametrize("descending", [False, True])
    async def test_scan_pages_with_after_cursor(self, store: Store, descending: bool) -> None:
        keys = [f"p/{i:03d}" for i in range(23)]
        await put_all(store, "c", [*keys, "p0", "q/1", "o/1"])
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = await store.scan("c", "p/", after=after, limit=5, descending=descending)
            if not page:
                break
            pages.append([k for k, _ in page])
            after = page[-1][0]
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        assert [k for page in pages for k in page] == sorted(keys, reverse=descending)

    async def test_scan_after_outside_the_prefix(self, store: Store) -> None:
        await put_all(store, "c", TRAIL)
        ml = TRAIL[:5]
        assert [k for k, _ in await store.scan("c", "ann/ml/", after="a")] == ml
        assert await store.scan("c", "ann/ml/", after="zzz") == []
        assert [k for k, _ in await store.scan("c", "ann/ml/", after="zzz", descending=True)] == ml[::-1]
        assert await store.scan("c", "ann/ml/", after="a", descending=True) == []
        # ``after`` is exclusive even when it is not a stored key
        got = await store.scan("c", "ann/ml/", after="ann/ml/2026-11-03")
        assert [k for k, _ in got] == TRAIL[2:5]

    async def test_scan_limits(self, store: Store) -> None:
        await put_all(store, "c", TRAIL)
        assert await store.scan("c", limit=0) == []
        assert len(await store.scan("c", limit=2)) == 2
        assert len(await store.scan("c", limit=1000)) == len(TRAIL)

    async def test_scan_revisions_lists_keys_and_revisions_in_pages(self, store: Store) -> None:
        keys = [f"p/{i:03d}" for i in range(23)]
        await put_all(store, "c", [*keys, "p0", "q/1", "o/1"])
        await store.write([Change("c", "p/004", {"changed": True})])
        revs = await store.revisions("c", keys)
        listed: list[tuple[str, str]] = []
        after: str | None = None
        while page := await store.scan_revisions("c", "p/", after=after, limit=5):
            listed += page
            after = page[-1][0]
        assert listed == [(k, revs[k]) for k in keys]  # the revisions ``read`` and ``revisions`` give
        assert dict(listed)["p/004"] != dict(listed)["p/003"]  # the one written since moved
        assert [k for k, _ in await store.scan_revisions("c")] == sorted([*keys, "p0", "q/1", "o/1"])
        assert await store.scan_revisions("c", limit=0) == []
        assert await store.scan_revisions("c", "p/", after="p/022") == []
        assert await store.scan_revisions("empty") == []

    async def test_unicode_and_slash_keys_sort_by_code_point(self, store: Store) -> None:
        await put_all(store, "c", UNICODE_KEYS[::-1])
        assert [k for k, _ in await store.scan("c", limit=100)] == sorted(UNICODE_KEYS)
        under_a = [k for k in sorted(UNICODE_KEYS) if k.startswith("a/")]
        assert [k for k, _ in await store.scan("c", "a/")] == under_a
        assert [k for k, _ in await store.scan("c", "a/", descending=True)] == under_a[::-1]
        assert [k for k, _ in await store.scan("c", "a/日本/")] == ["a/日本/1"]
        assert (await store.get("c", "a/😀/x") or {}).get("key") == "a/😀/x"
        got = await store.scan("c", "a/", after="a/\uffff")
        assert [k for k, _ in got] == ["a/\U00010000", "a/😀/x"]

    async def test_count_by_prefix(self, store: Store) -> None:
        await put_all(store, "c", TRAIL)
        assert await store.count("c") == len(TRAIL)
        assert await store.count("c", "ann/ml/") == 5
        assert await store.count("c", "ann") == 8
        assert await store.count("c", "zzz") == 0
        assert await store.count("empty") == 0

    # --- one atomic write ----------------------------------------------------------------------

    async def test_write_lands_docs_offsets_and_outbox_together(self, store: Store) -> None:
        await store.write(
            [Change("c", "k", doc(1)), Change("d", "k", doc(2))],
            offsets={("proj", "lemma.test", 0): 41, ("proj", "lemma.test", 1): 7},
            outbox=[rec("0001"), rec("0002")],
        )
        assert await store.get("c", "k") == doc(1)
        assert await store.get("d", "k") == doc(2)
        assert await store.offsets("proj") == {("lemma.test", 0): 41, ("lemma.test", 1): 7}
        assert [r.seq for r in await store.pending_outbox()] == ["0001", "0002"]
        await store.write()  # an empty write is a no-op
        assert await store.count("c") == 1

    async def _seed(self, store: Store) -> tuple[object, ...]:
        await store.write(
            [Change("c", "keep", doc(0)), Change("c", "doomed", doc(9))],
            offsets={("proj", "lemma.test", 0): 5},
            outbox=[rec("0001")],
        )
        return await snapshot(store)

    async def _failing_write_leaves_nothing(self, store: Store, **bad: Any) -> None:
        before = await self._seed(store)
        good = [Change("c", "new", doc(1)), Change("c", "keep", doc(2)), Change("c", "doomed", None)]
        args: dict[str, Any] = {
            "changes": [*good, Change("d", "new", doc(3))],
            "offsets": {("proj", "lemma.test", 0): 6, ("proj", "lemma.test", 1): 1},
            "outbox": [rec("0002"), rec("0003")],
            **bad,
        }
        with pytest.raises(UNWRITABLE):
            await store.write(args["changes"], offsets=args["offsets"], outbox=args["outbox"])
        assert await snapshot(store) == before
        # and the store is still usable: no transaction was left open
        await store.write([Change("c", "after", doc(4))], outbox=[rec("0004")])
        assert await store.get("c", "after") == doc(4)
        assert [r.seq for r in await store.pending_outbox()] == ["0001", "0004"]

    async def test_write_with_unserialisable_doc_leaves_nothing(self, store: Store) -> None:
        bad = Change("d", "bad", {"not json": {1, 2}})
        ok = [Change("c", "new", doc(1)), Change("c", "keep", doc(2)), Change("c", "doomed", None)]
        await self._failing_write_leaves_nothing(store, changes=[*ok, bad])

    async def test_write_failing_at_offsets_leaves_nothing(self, store: Store) -> None:
        """The documents were sent before the offsets failed: they must be rolled back."""
        await self._failing_write_leaves_nothing(
            store, offsets={("proj", "lemma.test", 0): 6, ("proj", "lemma.test", 1): cast(Any, object())}
        )

    async def test_write_failing_at_outbox_leaves_nothing(self, store: Store) -> None:
        """Documents and offsets were sent before the outbox failed: both are rolled back."""
        bad = OutboxRecord(seq="0003", topic="lemma.test", key="k", value=cast(Any, object()))
        await self._failing_write_leaves_nothing(store, outbox=[rec("0002"), bad])

    # --- offsets and outbox --------------------------------------------------------------------

    async def test_offsets_are_per_consumer(self, store: Store) -> None:
        await store.write(
            offsets={
                ("proj", "lemma.a", 0): 5,
                ("proj", "lemma.a", 1): 7,
                ("proj", "lemma.b", 0): 1,
                ("proj|v2", "lemma.a", 0): 100,  # a "|" in a consumer name must not collide
                ("other", "lemma.a", 0): 2,
            }
        )
        await store.write(offsets={("proj", "lemma.a", 0): 9})
        assert await store.offsets("proj") == {("lemma.a", 0): 9, ("lemma.a", 1): 7, ("lemma.b", 0): 1}
        assert await store.offsets("proj|v2") == {("lemma.a", 0): 100}
        assert await store.offsets("other") == {("lemma.a", 0): 2}
        assert await store.offsets("nobody") == {}

    async def test_outbox_order_pending_and_ack(self, store: Store) -> None:
        await store.write(outbox=[rec("0003"), rec("0001")])
        await store.write(outbox=[rec("0002", b"two")])
        pending = await store.pending_outbox()
        assert [r.seq for r in pending] == ["0001", "0002", "0003"]
        assert pending[1] == OutboxRecord("0002", "lemma.test", "k-0002", b"two")
        assert pending[0].value == b"\x00\xff\x80payload"
        assert [r.seq for r in await store.pending_outbox(limit=2)] == ["0001", "0002"]
        await store.ack_outbox(["0001", "0003"])
        assert [r.seq for r in await store.pending_outbox()] == ["0002"]

    async def test_outbox_seq_is_written_once(self, store: Store) -> None:
        await store.write(outbox=[rec("0001", b"first")])
        await store.write(outbox=[rec("0001", b"second")])  # a replayed write: kept as first written
        assert await store.pending_outbox() == [rec("0001", b"first")]

    async def test_ack_is_idempotent(self, store: Store) -> None:
        await store.write(outbox=[rec("0001"), rec("0002")])
        await store.ack_outbox(["0001"])
        await store.ack_outbox(["0001", "0001", "unknown"])
        await store.ack_outbox([])
        assert [r.seq for r in await store.pending_outbox()] == ["0002"]

    # --- lifecycle -----------------------------------------------------------------------------

    async def test_collections_are_listed_and_dropped_whole(self, store: Store) -> None:
        await store.write(
            [Change("a", "1", {"n": 1}), Change("a", "2", {"n": 2}), Change("b_c", "1", {"n": 3})],
            offsets={("p", "t", 0): 4, ("q", "t", 0): 7},
        )
        assert {"a", "b_c"} <= set(await store.collections())
        assert await store.drop_collection("a") == 2
        assert "a" not in await store.collections() and await store.count("a") == 0
        assert await store.get("b_c", "1") == {"n": 3}
        assert await store.drop_collection("nothing_here") == 0
        await store.drop_offsets("p")
        assert await store.offsets("p") == {} and await store.offsets("q") == {("t", 0): 7}

    async def test_ping(self, store: Store) -> None:
        assert await store.ping() is True

    # --- several writers: revisions, expectations, fences, outbox claims ----------------------

    async def test_every_write_gives_a_new_revision(self, store: Store) -> None:
        await store.write([Change("c", "k", doc(1))])
        first = (await store.read("c", ["k", "none"]))["k"]
        assert first.doc == doc(1) and await store.revisions("c", ["k", "none"]) == {"k": first.rev}
        await store.write([Change("c", "k", doc(1))])  # the same body: still a new revision
        assert (await store.revisions("c", ["k"]))["k"] != first.rev

    async def test_compare_and_set(self, store: Store) -> None:
        await store.write([Change("c", "k", doc(1))], expect={("c", "k"): ABSENT})
        with pytest.raises(Conflict):  # create-only: it exists now
            await store.write([Change("c", "k", doc(9))], expect={("c", "k"): ABSENT})
        read = (await store.read("c", ["k"]))["k"]
        await store.write([Change("c", "k", doc(2))], expect={("c", "k"): read.rev})
        with pytest.raises(Conflict) as refused:  # the revision read is gone
            await store.write(
                [Change("c", "k", doc(3)), Change("c", "other", doc(3))],
                offsets={("p", "t", 0): 5},
                outbox=[rec("0001")],
                expect={("c", "k"): read.rev},
            )
        assert refused.value.refs == [("c", "k")]
        assert await store.get("c", "k") == doc(2)  # nothing of the refused write landed
        assert await store.get("c", "other") is None and await store.offsets("p") == {}
        assert await store.pending_outbox() == []

    async def test_a_document_deleted_and_made_again_is_not_the_one_read(self, store: Store) -> None:
        await store.write([Change("c", "k", doc(1))])
        read = (await store.read("c", ["k"]))["k"]
        await store.write([Change("c", "k", None)])
        await store.write([Change("c", "k", doc(1))])
        with pytest.raises(Conflict):
            await store.write([Change("c", "k", doc(2))], expect={("c", "k"): read.rev})

    async def test_a_document_only_read_guards_the_write(self, store: Store) -> None:
        await store.write([Change("c", "calibration", doc(1))])
        guard = {("c", "calibration"): (await store.revisions("c", ["calibration"]))["calibration"]}
        await store.write([Change("d", "score", doc(1))], expect=guard)
        await store.write([Change("c", "calibration", doc(2))])
        with pytest.raises(Conflict):
            await store.write([Change("d", "score", doc(2))], expect=guard)
        assert await store.get("d", "score") == doc(1)

    async def test_only_the_last_claimant_of_a_partition_writes(self, store: Store) -> None:
        assert await store.claim_partitions("proj", [("t", 0), ("t", 1)], "a") == {("t", 0): 1, ("t", 1): 1}
        await store.write(
            [Change("c", "k", doc(1))], offsets={("proj", "t", 0): 3}, fence={("proj", "t", 0): 1}
        )
        assert await store.claim_partitions("proj", [("t", 0)], "b") == {("t", 0): 2}
        assert await store.owners("proj") == {("t", 0): (2, "b"), ("t", 1): (1, "a")}
        with pytest.raises(Fenced) as refused:  # a's write, after b claimed the partition
            await store.write(
                [Change("c", "k", doc(2))],
                offsets={("proj", "t", 0): 9, ("proj", "t", 1): 9},
                outbox=[rec("0001")],
                fence={("proj", "t", 0): 1, ("proj", "t", 1): 1},
            )
        assert refused.value.partitions == {("proj", "t", 0): 2}
        assert await store.get("c", "k") == doc(1) and await store.offsets("proj") == {("t", 0): 3}
        assert await store.pending_outbox() == []
        with pytest.raises(Fenced):  # never claimed
            await store.write([], offsets={("proj", "t", 7): 1}, fence={("proj", "t", 7): 1})
        await store.write(
            [Change("c", "k", doc(3))], offsets={("proj", "t", 0): 9}, fence={("proj", "t", 0): 2}
        )
        assert await store.offsets("proj") == {("t", 0): 9}

    async def test_outbox_records_are_claimed_by_one_relay_in_key_order(self, store: Store) -> None:
        def keyed(seq: str, key: str) -> OutboxRecord:
            return OutboxRecord(seq=seq, topic="lemma.test", key=key, value=seq.encode())

        await store.write(outbox=[keyed("01", "x"), keyed("02", "y"), keyed("03", "x"), keyed("04", "z")])
        first = await store.claim_outbox("a", limit=2)
        assert [r.seq for r in first] == ["01", "02"]
        # b may not take 03 while a holds 01 (same key): only z's record is free
        assert [r.seq for r in await store.claim_outbox("b", limit=10)] == ["04"]
        assert [r.seq for r in await store.claim_outbox("a", limit=10)] == ["01", "02", "03"]  # its own again
        await store.ack_outbox(["01", "02"])
        await store.release_outbox("a")  # a stops: b takes what a held at once
        assert [r.seq for r in await store.claim_outbox("b", limit=10)] == ["03", "04"]
        assert [r.seq for r in await store.pending_outbox()] == ["03", "04"]

    async def test_an_outbox_claim_runs_out(self, store: Store) -> None:
        await store.write(outbox=[rec("0001")])
        assert [r.seq for r in await store.claim_outbox("a", lease_s=0.0)] == ["0001"]
        assert [r.seq for r in await store.claim_outbox("b", lease_s=30.0)] == ["0001"]  # a's lease ran out
        assert await store.claim_outbox("a") == []

    async def test_close_and_reopen(self, make_store: StoreFactory) -> None:
        """A persistent store keeps everything across close and reopen; one that is not starts
        empty again (nothing leaks from one instance into the next)."""
        first = make_store()
        await first.write(
            [Change("c", "k/1", doc(1))], offsets={("proj", "lemma.test", 0): 3}, outbox=[rec("0001")]
        )
        await first.close()
        second = make_store()
        try:
            if self.persistent:
                assert await second.get("c", "k/1") == doc(1)
                assert await second.offsets("proj") == {("lemma.test", 0): 3}
                assert await second.pending_outbox() == [rec("0001")]
            else:
                assert await second.get("c", "k/1") is None
                assert await second.offsets("proj") == {}
                assert await second.pending_outbox() == []
        finally:
            await second.close()


class TestSqliteFileStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        path = tmp_path / "nested" / "store.db"  # the parent folder is made on open
        return lambda: SqliteStore(str(path))


class TestSqliteMemoryStore(StoreContract):
    persistent = False

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        return lambda: SqliteStore(":memory:")


class TestMongoStore(StoreContract):
    @pytest.fixture
    def make_store(self, mongo_db_url: str) -> StoreFactory:
        return lambda: MongoStore(mongo_db_url)


class TestVersionStore(StoreContract):
    """A projection's second version seen through ``VersionStore``: the contract holds, and
    what it writes stays out of the first version's collections."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: VersionStore(SqliteStore(str(tmp_path / "versions.db")), 2)

    async def test_a_version_sees_only_its_own_documents(self, make_store: StoreFactory) -> None:
        second = make_store()
        assert isinstance(second, VersionStore)
        first = VersionStore(second.inner, 1)
        await first.write([Change("scores", "ann", {"v": 1})])
        await second.write([Change("scores", "ann", {"v": 2})])
        assert await first.get("scores", "ann") == {"v": 1} and await second.get("scores", "ann") == {"v": 2}
        assert await second.inner.get("v2__scores", "ann") == {"v": 2}
        assert await first.collections() == ["scores"] and await second.collections() == ["scores"]
        await second.close()
