"""The MongoDB adapter's pure parts, and what it does before any I/O (no server needed).

The adapter against a real server is covered by tests/integration/test_store_contract.py
when LEMMA_TEST_MONGO_URL is set.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.store import open_store
from shared.store.base import Change
from shared.store.mongo import MongoStore, as_json, key_range, offset_id

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
