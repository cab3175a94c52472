"""The rules that make replicas safe, as model tests: outbox claims, fences and compare-and-set.

Each test plays many interleavings that hypothesis picks (which replica acts next, and how) on
a real store, and checks the invariants against a model: no outbox record held by two relays,
a key's records never claimable out of order; only a partition's last claimant writes it and its
offsets never go backwards; no increment lost when every writer compare-and-sets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.store.base import ABSENT, Change, Conflict, Fenced, OutboxRecord
from shared.store.concurrency import Pending, claimable
from shared.store.sqlite import SqliteStore

OWNERS = ["a", "b", "c"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


rows = st.lists(
    st.tuples(st.sampled_from(["x", "y", "z"]), st.sampled_from(["", *OWNERS]), st.booleans()),
    max_size=30,
)


@given(rows, st.sampled_from(OWNERS), st.integers(min_value=0, max_value=10))
def test_a_claim_never_takes_a_record_held_by_another_nor_passes_an_earlier_one_of_its_key(
    head: list[tuple[str, str, bool]], owner: str, limit: int
) -> None:
    pending = [
        Pending(f"{n:04d}", "t", key, holder, until=200.0 if live else 50.0)
        for n, (key, holder, live) in enumerate(head)
    ]
    taken = set(claimable(pending, owner, now=100.0, limit=limit))
    assert len(taken) <= limit
    for n, row in enumerate(pending):
        if row.seq not in taken:
            continue
        assert not row.holder or row.holder == owner or row.until <= 100.0  # free, ours, or lapsed
        # every earlier record of its key is taken with it (or published already: not here)
        assert all(earlier.seq in taken for earlier in pending[:n] if earlier.key == row.key)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(OWNERS), st.sampled_from(["claim", "ack", "release"])), max_size=25)
)
def test_outbox_records_go_out_once_and_in_key_order_whatever_the_relays_do(
    steps: list[tuple[str, str]],
) -> None:
    async def play() -> None:
        store = SqliteStore(":memory:")
        records = [OutboxRecord(f"{n:04d}", "t", "xyz"[n % 3], b"v") for n in range(12)]
        await store.write(outbox=records)
        holding: dict[str, list[str]] = {owner: [] for owner in OWNERS}
        published: list[str] = []
        for owner, action in steps:
            if action == "claim":
                holding[owner] = [r.seq for r in await store.claim_outbox(owner, limit=4)]
                held = [seq for seqs in holding.values() for seq in seqs]
                assert len(held) == len(set(held)), holding  # never one record in two relays
            elif action == "ack":  # published what it holds, then acknowledged
                published += holding[owner]
                await store.ack_outbox(holding[owner])
                holding[owner] = []
            else:
                await store.release_outbox(owner)
                holding[owner] = []
        assert len(published) == len(set(published))  # once each
        for key in "xyz":  # each key's records in outbox order
            mine = [seq for seq in published if records[int(seq)].key == key]
            assert mine == sorted(mine)

    run(play())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OWNERS), st.sampled_from(["claim", "write"])), max_size=30))
def test_only_the_last_claimant_writes_a_partition_and_its_offset_never_goes_back(
    steps: list[tuple[str, str]],
) -> None:
    async def play() -> None:
        store = SqliteStore(":memory:")
        epochs: dict[str, int] = {}
        last_claimant = None
        offset = {owner: 0 for owner in OWNERS}  # how far each replica thinks it has folded
        stored = -1
        for owner, action in steps:
            if action == "claim":
                epochs[owner] = (await store.claim_partitions("p", [("t", 0)], owner))[("t", 0)]
                last_claimant = owner
                offset[owner] = max(stored, -1) + 1  # positioned from the store, as at an assignment
                continue
            if owner not in epochs:
                continue  # never assigned: a replica writes only what it claimed
            offset[owner] += 5
            try:
                await store.write(
                    [Change("docs", "d", {"by": owner})],
                    offsets={("p", "t", 0): offset[owner]},
                    fence={("p", "t", 0): epochs[owner]},
                )
            except Fenced:
                assert owner != last_claimant
                continue
            assert owner == last_claimant
            assert offset[owner] > stored  # forward only
            stored = offset[owner]
        assert (await store.offsets("p")).get(("t", 0), -1) == stored

    run(play())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(OWNERS), min_size=1, max_size=30))
def test_no_increment_is_lost_when_every_writer_compares_and_sets(order: list[str]) -> None:
    """Each writer reads, then (in the order hypothesis picks) tries to write its increment;
    one refused reads again. Every increment lands once."""

    async def play() -> None:
        store = SqliteStore(":memory:")
        read: dict[str, tuple[int, str]] = {}
        landed = 0
        for owner in order:
            if owner not in read:
                found = (await store.read("c", ["n"])).get("n")
                read[owner] = (found.doc["n"], found.rev) if found else (0, ABSENT)
                continue
            value, rev = read.pop(owner)
            try:
                await store.write([Change("c", "n", {"n": value + 1})], expect={("c", "n"): rev})
                landed += 1
            except Conflict:
                pass
        final = await store.get("c", "n")
        assert (final["n"] if final else 0) == landed

    run(play())
