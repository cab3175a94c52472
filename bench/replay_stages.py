"""The measured stages of ``bench.replay``, each run in a process of its own (``in_process``).

A fresh process per stage: its peak resident memory is its own (``ru_maxrss``), and its heap
holds what the stage holds, as a rebuild or a service would, not the bench's copy of the log.
Every stage reads the log from the broker the bench started, from the beginning, with the
consumer settings the rebuild uses (no group, ``getmany`` of up to ``consumer_max_records``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events.envelope import decode
from shared.events.registry import Topic
from shared.gc_tuning import tune_for_folding
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.projection.runtime import ProjectionRuntime
from shared.rebuild import Rebuild
from shared.rebuild_workers import peak_rss_mib
from shared.settings import Settings
from shared.store.base import Change, Store
from shared.store.sqlite import SqliteStore

STALL_S = 30.0
T = TypeVar("T")


def in_process(stage: Callable[..., T], *args: Any) -> T:
    """``stage(*args)`` in a new spawned process; its result."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(stage, *args).result()


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and every process under it (``VmRSS``), now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class TreeMemory:
    """The peak, over a stage, of the resident memory of this process and all it started (its
    rebuild workers, its calibration processes), sampled every ``every_s``."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.peak_kib = 0
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(os.getpid()))

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _tree_rss_kib(os.getpid()))


def bench_settings(bootstrap: str, workdir: Path) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, state_dir=str(workdir), environment="test")


def service_topics(service: str) -> tuple[Topic, ...]:
    """The topics a service's projection folds (what its rebuild reads)."""
    topics: tuple[Topic, ...] = importlib.import_module(f"services.{service}.consumers").TOPICS
    return topics


async def _read(
    bootstrap: str, topics: Sequence[str], count: int, batch: int, handle: Callable[[list[Any]], Any]
) -> float:
    """Read ``count`` records of ``topics`` from the beginning, handing each batch to ``handle``
    (awaited when it returns an awaitable); the seconds from the first poll to the last handled."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=batch,
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in topics for p in await partitions_of(KafkaConnection(bootstrap), t)
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        seen = 0
        start = last = time.perf_counter()
        while seen < count:
            got = await consumer.getmany(timeout_ms=200, max_records=batch)
            records = [r for tp in sorted(got, key=lambda t: (t.topic, t.partition)) for r in got[tp]]
            if records:
                done = handle(records)
                if asyncio.iscoroutine(done):
                    await done
                seen += len(records)
                last = time.perf_counter()
            elif time.perf_counter() - last > STALL_S:
                raise RuntimeError(f"no records for {STALL_S} s after {seen} of {count}")
        return time.perf_counter() - start
    finally:
        await consumer.stop()


def baseline(bootstrap: str, topics: list[str], count: int, batch: int) -> dict[str, float]:
    """Raw consume, then consume + decode, of the records of ``topics``: the rebuild's baseline
    (with the collector tuned as the rebuild and the services tune it)."""
    tune_for_folding()

    def decode_all(records: list[Any]) -> None:
        for record in records:
            decode(record.value)

    consume_s = asyncio.run(_read(bootstrap, topics, count, batch, lambda _: None))
    decode_s = asyncio.run(_read(bootstrap, topics, count, batch, decode_all))
    return {"consume_eps": count / consume_s, "consume_decode_eps": count / decode_s}


def rebuild(bootstrap: str, workdir: Path, service: str, db: Path) -> dict[str, Any]:
    """``lemma replay SERVICE`` as the CLI runs it (``shared.rebuild.Rebuild``, the service's
    projection, topics and finish step), into a new version of the store at ``db``."""
    settings = bench_settings(bootstrap, workdir)
    app = importlib.import_module(f"services.{service}.app")

    async def run() -> dict[str, Any]:
        store = SqliteStore(str(db))
        finish_s = 0.0
        finish = getattr(app, "finish_rebuild", None)

        async def timed_finish(version: Store) -> None:
            nonlocal finish_s
            assert finish is not None
            started = time.perf_counter()
            await finish(version, settings)
            finish_s = time.perf_counter() - started

        job = Rebuild(
            settings,
            store,
            app.projection(settings),
            service_topics(service),
            service=service,
            by="bench",
            finish=timed_finish if finish else None,
        )
        try:
            version = await job.begin()
            started = time.perf_counter()
            with TreeMemory() as memory:
                progress = await job.run()
            total_s = time.perf_counter() - started
        finally:
            await store.close()
        own = peak_rss_mib()
        workers = progress.worker_peak_rss_mib
        return {
            "version": version.number,
            "folded": progress.folded,
            "seconds": total_s,
            "finish_s": finish_s,
            "processes": 1 + len(workers),
            # all its processes at once (sampled every 0.25 s): the rebuild's, its workers, the
            # calibration's
            "peak_rss_mib": round(memory.peak_kib / 1024, 1),
            "peak_rss_mib_per_process": [round(own, 1), *workers],
        }

    return asyncio.run(run())


def incremental(
    bootstrap: str, service: str, db: Path, count: int, batch: int, calibrations: dict[str, Any]
) -> dict[str, Any]:
    """The live fold: the service's runtime (scoring, emitting into the outbox) over the whole
    log in consumed batches, into a fresh store holding ``calibrations`` (sci) from the start."""
    settings = bench_settings(bootstrap, db.parent)
    app = importlib.import_module(f"services.{service}.app")
    topics = [settings.topic(t) for t in service_topics(service)]

    tune_for_folding()  # as ``shared.runner.serve`` does in the service's process

    async def run() -> dict[str, Any]:
        store = SqliteStore(str(db))
        if calibrations:
            await store.write(
                [Change("calibrations", skill, doc) for skill, doc in sorted(calibrations.items())]
            )
        runtime = ProjectionRuntime(app.projection(settings), store, service=service)
        try:
            seconds = await _read(bootstrap, topics, count, batch, runtime.handle)
        finally:
            await store.close()
        return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()}

    return asyncio.run(run())


def read_calibrations(db: Path, version: int) -> dict[str, Any]:
    """The calibrations a rebuilt sci version holds (``version``'s collection), by skill."""
    import sqlite3

    from shared.projection.versions import namespace

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT key, doc FROM docs WHERE collection=?", (namespace("calibrations", version),)
        ).fetchall()
    return {key: json.loads(doc) for key, doc in rows}
