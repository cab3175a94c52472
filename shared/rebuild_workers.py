"""Folding a rebuild's partitions in parallel processes, as far as its projection allows.

One process folds at most one core's worth: decoding alone takes a third of a rebuild's time.
A projection says how its log may be split (``CatchUpPhase``): topics are folded phase after
phase, and the partitions of a phase marked ``apart`` by separate spawned processes, partition
number p of each of its topics in the same one, each with its own consumer, its own
``CatchUpRuntime`` and its own connection to the store. Each writes its documents with its
own partitions' offsets, so a kill anywhere loses no more than each process's unwritten
window, and the next run resumes every partition where it stands.

The rebuild's process keeps the lease (its heartbeat), shows the progress the workers send,
and stops them all if one fails. A worker exits when the rebuild's process is gone, however it
went (SIGKILL included): a killed rebuild leaves nothing folding behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from shared.gc_tuning import tune_for_folding
from shared.projection.catchup import CatchUpRuntime
from shared.projection.fold import CatchUpPhase, Projection
from shared.rebuild_fold import Progress, RebuildStopped, fold_to_head, make_runtime
from shared.settings import Settings
from shared.store.factory import open_store

POLL_S = 0.2
REPORT_S = 0.5
PARENT_CHECK_S = 1.0


@dataclass(frozen=True)
class Phase:
    """The partitions of each process that folds a phase (the first: the rebuild's own
    process), and what each sets aside when there are several (``CatchUpRuntime.defer``)."""

    shares: list[list[TopicPartition]]
    defer: dict[str, frozenset[str]] = field(default_factory=dict)


def plan(
    projection: Projection, partitions: Mapping[str, Sequence[int]], settings: Settings, *, parallel: bool
) -> list[Phase]:
    """How to fold ``partitions`` (per topic name on the cluster): the projection's phases, each
    in as many processes as it may use (``settings.rebuild_workers``; 0: twice the cores)."""
    everything = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
    phases: tuple[CatchUpPhase, ...] = getattr(projection, "catch_up_phases", ())
    if not parallel or not phases:
        return [Phase([everything])]
    limit = settings.rebuild_workers or 2 * (os.cpu_count() or 1)
    out: list[Phase] = []
    seen: set[str] = set()
    for phase in phases:
        names = [settings.topic(t) for t in phase.topics if settings.topic(t) in partitions]
        if not names:
            continue
        seen.update(names)
        numbers = {tuple(sorted(partitions[name])) for name in names}
        workers = min(len(next(iter(numbers))), limit) if phase.apart and len(numbers) == 1 else 1
        if workers <= 1:
            out.append(Phase([[TopicPartition(n, p) for n in names for p in partitions[n]]]))
            continue
        shares = [
            [TopicPartition(n, p) for n in names for p in partitions[n] if p % workers == share]
            for share in range(workers)
        ]
        defer = {
            settings.topic(t): frozenset(c) for t, c in phase.deferred.items() if settings.topic(t) in names
        }
        out.append(Phase(shares, defer))
    rest = [TopicPartition(t, p) for t, ps in partitions.items() if t not in seen for p in ps]
    if rest:
        out.append(Phase([rest]))
    return out


@dataclass(frozen=True)
class Job:
    """One worker's share of a phase: what it needs to fold it in a process of its own."""

    settings: Settings
    store_url: str
    projection: Projection
    service: str
    version: int
    partitions: tuple[tuple[str, int], ...]
    defer: dict[str, frozenset[str]]


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``: of this process alone, unlike
    ``ru_maxrss``, which a spawned child inherits from its parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _work(job: Job, conn: Connection) -> None:
    """The worker process: fold its partitions to their ends, tell the rebuild how it went."""
    _exit_with_parent()
    tune_for_folding()
    try:
        message: tuple[Any, ...] = asyncio.run(_fold(job, conn))
    except RebuildStopped as exc:
        message = ("stopped", str(exc))
    except BaseException as exc:
        message = ("failed", "".join(traceback.format_exception(exc)))
    conn.send(message)
    conn.close()


async def _fold(job: Job, conn: Connection) -> tuple[Any, ...]:
    store = open_store(job.store_url)
    try:
        runtime = make_runtime(
            job.projection,
            store,
            service=job.service,
            version=job.version,
            window=job.settings.rebuild_window,
        )
        if isinstance(runtime, CatchUpRuntime):
            runtime.defer = job.defer
        progress = Progress()
        sent = 0.0

        def report(now: Progress) -> None:
            nonlocal sent
            if time.monotonic() - sent >= REPORT_S:
                conn.send(("progress", now.folded, now.positions, now.ends))
                sent = time.monotonic()

        partitions = [TopicPartition(topic, number) for topic, number in job.partitions]
        await fold_to_head(job.settings, runtime, partitions, progress, report)
        return ("done", progress.folded, progress.positions, progress.ends, peak_rss_mib())
    finally:
        await store.close()


async def fold_in_processes(
    jobs: Sequence[Job],
    progress: Progress,
    on_progress: Callable[[Progress], None],
    tick: Callable[[], Awaitable[None]],
    own: Awaitable[None] | None = None,
) -> None:
    """Run ``jobs`` each in a spawned process, and ``own`` (a share folded in this process)
    meanwhile, until all are done. Raises ``RebuildStopped`` when one parked a partition,
    ``RuntimeError`` when one failed or died; the others are stopped (their written windows
    stay)."""
    mine = asyncio.ensure_future(own) if own is not None else None
    spawn = multiprocessing.get_context("spawn")
    running: list[tuple[Any, Connection]] = []
    for n, job in enumerate(jobs):
        receive, send = spawn.Pipe(duplex=False)
        process = spawn.Process(
            target=_work, args=(job, send), name=f"rebuild-{job.service}-{n}", daemon=True
        )
        process.start()
        send.close()
        running.append((process, receive))
    folded = [0] * len(jobs)
    done = [False] * len(jobs)
    try:
        while not all(done) or (mine is not None and not mine.done()):
            await asyncio.sleep(POLL_S)
            if mine is not None and mine.done():
                mine.result()  # raises what the share in this process raised
            for n, (process, receive) in enumerate(running):
                while not done[n] and receive.poll():
                    try:
                        message = receive.recv()
                    except EOFError:
                        raise RuntimeError(
                            f"rebuild worker {n} died (exit code {process.exitcode})"
                        ) from None
                    kind = message[0]
                    if kind == "stopped":
                        raise RebuildStopped(message[1])
                    if kind == "failed":
                        raise RuntimeError(f"rebuild worker {n} failed:\n{message[1]}")
                    progress.folded += message[1] - folded[n]
                    folded[n] = message[1]
                    progress.positions.update(message[2])
                    progress.ends.update(message[3])
                    if kind == "done":
                        done[n] = True
                        progress.worker_peak_rss_mib.append(round(message[4], 1))
                if not done[n] and not process.is_alive() and not receive.poll():
                    raise RuntimeError(f"rebuild worker {n} died (exit code {process.exitcode})")
            on_progress(progress)
            await tick()
    finally:
        if mine is not None and not mine.done():
            mine.cancel()
            with contextlib.suppress(BaseException):
                await mine
        for process, receive in running:
            if process.is_alive():
                process.terminate()
            process.join(10)
            receive.close()
