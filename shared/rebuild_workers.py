"""Folding a rebuild's partitions in parallel processes, as far as its projection allows.

One process folds at most one core's worth: decoding alone takes a third of a rebuild's time.
A projection says how its log may be split (``CatchUpPhase``): topics are folded phase after
phase, and the partitions of a phase marked ``apart`` by separate processes (``python -m
shared.rebuild_workers``), partition number p of each of its topics in the same one, each with
its own consumer, its own ``CatchUpRuntime`` and its own connection to the store. Each writes
its documents with its own partitions' offsets, so a kill anywhere loses no more than each
process's unwritten window, and the next run resumes every partition where it stands.

The rebuild's process keeps the lease (its heartbeat), shows the progress the workers send,
and stops them all if one fails. A worker exits when the rebuild's process is gone, however it
went (SIGKILL included): a killed rebuild leaves nothing folding behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from shared.gc_tuning import tune_for_folding
from shared.parent_watch import exit_with_parent
from shared.projection.catchup import CatchUpRuntime
from shared.projection.fold import CatchUpPhase, Projection
from shared.rebuild_fold import Progress, RebuildStopped, fold_to_head, make_runtime
from shared.settings import Settings
from shared.store.factory import open_store

POLL_S = 0.2
REPORT_S = 0.5


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
    in as many processes as it may use (``settings.rebuild_workers``; 0: up to twice the cores:
    with three partitions on two cores, three processes fold a million events in 22 s, two in
    27, since two cannot share three partitions evenly)."""
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


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``: of this process alone, unlike
    ``ru_maxrss``, which a spawned child inherits from its parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    """A worker process (``python -m shared.rebuild_workers``): reads its ``Job`` pickled on
    stdin, folds its partitions to their ends and writes how it goes on stdout, length-prefixed
    pickles (anything else printed goes to stderr). A process of its own rather than a
    multiprocessing child: that one would import the rebuild's main module again (the CLI and
    all it imports), a second of a core per worker."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    job: Job = pickle.load(sys.stdin.buffer)

    def send(message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message)
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()

    exit_with_parent()
    tune_for_folding()
    try:
        message: tuple[Any, ...] = asyncio.run(_fold(job, send))
    except RebuildStopped as exc:
        message = ("stopped", str(exc))
    except BaseException as exc:
        message = ("failed", "".join(traceback.format_exception(exc)))
    send(message)
    out.close()


async def _fold(job: Job, send: Callable[[tuple[Any, ...]], None]) -> tuple[Any, ...]:
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
                send(("progress", now.folded, now.positions, now.ends))
                sent = time.monotonic()

        partitions = [TopicPartition(topic, number) for topic, number in job.partitions]
        await fold_to_head(job.settings, runtime, partitions, progress, report)
        return ("done", progress.folded, progress.positions, progress.ends, peak_rss_mib())
    finally:
        await store.close()


async def _messages(n: int, process: asyncio.subprocess.Process, queue: asyncio.Queue[Any]) -> None:
    """What worker ``n`` says, message by message, then ``None`` when it has gone."""
    assert process.stdout is not None
    try:
        while True:
            size = int.from_bytes(await process.stdout.readexactly(4), "big")
            await queue.put((n, pickle.loads(await process.stdout.readexactly(size))))
    except asyncio.IncompleteReadError:
        await queue.put((n, None))


async def fold_in_processes(
    jobs: Sequence[Job],
    progress: Progress,
    on_progress: Callable[[Progress], None],
    tick: Callable[[], Awaitable[None]],
    own: Awaitable[None] | None = None,
) -> None:
    """Run ``jobs`` each in a process of its own, and ``own`` (a share folded in this process)
    meanwhile, until all are done. Raises ``RebuildStopped`` when one parked a partition,
    ``RuntimeError`` when one failed or died; the others are stopped (their written windows
    stay)."""
    mine = asyncio.ensure_future(own) if own is not None else None
    # the worker finds the code where this process found it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    running: list[asyncio.subprocess.Process] = []
    queue: asyncio.Queue[Any] = asyncio.Queue()
    readers: list[asyncio.Task[None]] = []
    folded = [0] * len(jobs)
    done = [False] * len(jobs)
    try:
        for job in jobs:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.rebuild_workers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(job))
            await process.stdin.drain()
            process.stdin.close()
            readers.append(asyncio.create_task(_messages(len(running), process, queue)))
            running.append(process)
        while not all(done) or (mine is not None and not mine.done()):
            try:
                n, message = await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                n, message = None, None
            if mine is not None and mine.done():
                mine.result()  # raises what the share in this process raised
            if n is not None and not done[n]:
                if message is None:
                    await running[n].wait()
                    raise RuntimeError(f"rebuild worker {n} died (exit code {running[n].returncode})")
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
            on_progress(progress)
            await tick()
    finally:
        if mine is not None and not mine.done():
            mine.cancel()
            with contextlib.suppress(BaseException):
                await mine
        for reader in readers:
            reader.cancel()
        for process in running:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


if __name__ == "__main__":
    main()
