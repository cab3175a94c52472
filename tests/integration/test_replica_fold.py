"""Replicas folding into one SQLite file, each through its own connection (as two processes do).

Two runtimes fold the two partitions of a topic side by side into documents they share (a total
over every learner), their batches interleaving between read and write; a third process-like
writer (a command) compare-and-sets the same documents meanwhile. Nothing is lost or counted
twice. A replica whose partition another claimed has its write refused and stops folding it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.events import CloudEvent
from shared.events.payloads import SkillClaimed
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.holds import FENCED
from shared.projection.runtime import ProjectionRuntime
from shared.store.base import ABSENT, Change, Conflict
from shared.store.sqlite import SqliteStore
from tests.unit.test_projection_runtime import claim, rec

TOTAL: DocRef = ("totals", "all")


class Totals:
    """Claims per learner, and one total over every learner (written from every partition)."""

    name = "totals"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return [("counts", event.subject), TOTAL]

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        if not isinstance(event.data, SkillClaimed):
            return NOTHING
        mine = docs[("counts", event.subject)] or {"n": 0}
        total = docs[TOTAL] or {"n": 0}
        return Outcome(
            changes={("counts", event.subject): {"n": mine["n"] + 1}, TOTAL: {"n": total["n"] + 1}}
        )


async def test_two_replicas_and_a_command_share_documents_without_losing_an_update(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    a, b, command = SqliteStore(path), SqliteStore(path), SqliteStore(path)
    first = ProjectionRuntime(Totals(), a, service="t", owner="t-1")
    second = ProjectionRuntime(Totals(), b, service="t", owner="t-2")
    await first.claim([("lemma.passport.v1", 0)])
    await second.claim([("lemma.passport.v1", 1)])
    batches = 40

    async def fold(runtime: ProjectionRuntime, partition: int) -> None:
        for n in range(batches):
            learner = f"l{partition}-{n % 3}"
            await runtime.handle(
                [rec(2 * n, claim(learner), partition), rec(2 * n + 1, claim(learner), partition)]
            )

    async def bump() -> int:
        """A command adding 1000 to the total, read-decide-compare-and-set, as a replica's route does."""
        done = 0
        for _ in range(batches):
            while True:
                found = (await command.read(*TOTAL[:1], [TOTAL[1]])).get(TOTAL[1])
                value, rev = (found.doc["n"], found.rev) if found else (0, ABSENT)
                try:
                    await command.write([Change(*TOTAL, {"n": value + 1000})], expect={TOTAL: rev})
                    break
                except Conflict:
                    await asyncio.sleep(0)
            done += 1
            await asyncio.sleep(0)
        return done

    *_, bumped = await asyncio.gather(fold(first, 0), fold(second, 1), bump())
    events = 2 * 2 * batches
    assert await a.get(*TOTAL) == {"n": events + 1000 * bumped}
    counts = {key: doc["n"] for key, doc in await a.scan("counts", limit=100)}
    assert sum(counts.values()) == events and len(counts) == 6
    assert await a.offsets("totals") == {
        ("lemma.passport.v1", 0): 2 * batches - 1,
        ("lemma.passport.v1", 1): 2 * batches - 1,
    }
    for store in (a, b, command):
        await store.close()


async def test_a_replica_whose_partition_was_claimed_by_another_stops_folding_it(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    old_store, new_store = SqliteStore(path), SqliteStore(path)
    old = ProjectionRuntime(Totals(), old_store, service="t", owner="t-1")
    new = ProjectionRuntime(Totals(), new_store, service="t", owner="t-2")
    await old.claim([("lemma.passport.v1", 0), ("lemma.passport.v1", 1)])
    assert await old.handle([rec(0, claim("ann"), 0), rec(0, claim("bob"), 1)]) == 2
    await new.claim([("lemma.passport.v1", 0)])  # a rebalance gave partition 0 to the new replica
    # the old replica's next batch (fetched before it learnt of the rebalance) spans both partitions
    assert await old.handle([rec(1, claim("ann"), 0), rec(1, claim("bob"), 1)]) == 1  # bob's only
    assert (
        old.held == {("lemma.passport.v1", 0): FENCED} and not old.refused
    )  # not a fault: the group moves it
    assert await old_store.get("counts", "ann") == {"n": 1}
    assert await old_store.get("counts", "bob") == {"n": 2}
    assert await new.handle([rec(1, claim("ann"), 0)]) == 1  # the new owner folds from the store's offset
    assert await new_store.get("counts", "ann") == {"n": 2} and await new_store.get(*TOTAL) == {"n": 4}
    owners = await new_store.owners("totals")
    assert owners[("lemma.passport.v1", 0)] == (2, "t-2") and owners[("lemma.passport.v1", 1)] == (1, "t-1")
    await old.claim([("lemma.passport.v1", 0)])  # given back: the old replica folds it again
    assert old.held == {}
    for store in (old_store, new_store):
        await store.close()


def _increment(path: str, times: int) -> None:
    async def go() -> None:
        store = SqliteStore(path)
        for _ in range(times):
            while True:
                found = (await store.read("c", ["n"])).get("n")
                value, rev = (found.doc["n"], found.rev) if found else (0, ABSENT)
                try:
                    await store.write([Change("c", "n", {"n": value + 1})], expect={("c", "n"): rev})
                    break
                except Conflict:
                    continue
        await store.close()

    asyncio.run(go())


def test_processes_compare_and_set_one_document_without_losing_an_increment(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_increment, args=(path, 150)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert asyncio.run(SqliteStore(path).get("c", "n")) == {"n": 450}
