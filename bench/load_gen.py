"""An open-loop, constant-arrival-rate load generator, in worker processes.

Arrival ``i`` of a run is due at ``t0 + i / rate`` whatever happened to the ones before it
(open loop): a slow answer never delays the next request, so a slow server cannot slow the
client down and hide its own slowness (coordinated omission). Latency is measured from the
due time, not from when the request went out, so time a request spent waiting for the client
(its loop, a free connection) counts against the server. How late the client itself was (send
time minus due time) is kept too: a run whose sends lag is limited by the client, not the
server, and says so.

A run is split over ``workers`` processes (arrival ``i`` goes to worker ``i % workers``), each
an asyncio loop with its own connections. A worker is given a ``Workload``: picklable, it
builds the next request of each arrival (reads from fixed lists, writes from chains whose next
step is ready only once the previous one was answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Protocol

from bench.load_http import Answer, HttpError, Pool

#: How long after its last arrival a run waits for answers; later ones count as timeouts.
GRACE_S = 10.0
#: The client kept to its schedule when its sends lag at most this at p99 and ...
CLIENT_LAG_P99_MS = 10.0
#: ... at least this share of the arrivals went out in the run's time.
CLIENT_SENT_SHARE = 0.98
#: A run's latency is the client's, not the server's, when the sends lag by more than this
#: share of the latency p99 (beyond ``CLIENT_LAG_P99_MS``): the client's own lateness would
#: explain most of the figure.
CLIENT_LAG_SHARE = 0.5


@dataclass(frozen=True)
class Call:
    """One request to send: ``kind`` labels it in the figures; ``target`` indexes the run's
    base URLs; ``raw`` is the request's bytes; ``key`` names it for the workload's ``answered``."""

    kind: str
    target: int
    raw: bytes
    key: Any = None


class Workload(Protocol):
    """Builds the request of each arrival; told of every answer (None: no answer)."""

    def next_call(self, index: int) -> Call: ...

    def answered(self, call: Call, answer: Answer | None) -> None: ...

    def outcome(self) -> dict[str, Any]: ...


@dataclass
class Tally:
    """The answers of one kind of request: latencies from the due time (ms) of those answered,
    statuses, and failures with no answer (by exception name)."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Tally) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.statuses.update(other.statuses)
        self.failures.update(other.failures)

    @property
    def count(self) -> int:
        return len(self.latencies_ms) + sum(self.failures.values())


@dataclass
class RunResult:
    """What a run (all its workers) sent and got back."""

    rate: float
    duration_s: float
    arrivals: int = 0
    sent: int = 0
    send_span_s: float = 0.0  # from the first due time to the last send
    lag_ms: list[float] = field(default_factory=list)  # send time - due time, per arrival
    kinds: dict[str, Tally] = field(default_factory=dict)
    cpu_s: float = 0.0  # the workers' own CPU time
    retries: int = 0  # requests sent again after a reused connection closed unanswered
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # each worker's workload outcome

    def merge(self, other: RunResult) -> None:
        self.arrivals += other.arrivals
        self.sent += other.sent
        self.send_span_s = max(self.send_span_s, other.send_span_s)
        self.lag_ms.extend(other.lag_ms)
        for kind, tally in other.kinds.items():
            self.kinds.setdefault(kind, Tally()).merge(tally)
        self.cpu_s += other.cpu_s
        self.retries += other.retries
        self.outcomes.extend(other.outcomes)

    def total(self, exclude: tuple[str, ...] = ()) -> Tally:
        out = Tally()
        for kind, tally in self.kinds.items():
            if kind not in exclude:
                out.merge(tally)
        return out

    @property
    def on_time(self) -> bool:
        """The client sent every arrival on schedule (lag p99 within ``CLIENT_LAG_P99_MS``)."""
        share = self.sent / self.arrivals if self.arrivals else 1.0
        return percentile(self.lag_ms, 99) <= CLIENT_LAG_P99_MS and share >= CLIENT_SENT_SHARE

    @property
    def client_limited(self) -> bool:
        """The figure is the client's, not the server's: it could not send its arrivals, or its
        lateness is a large part of the latency it reports."""
        share = self.sent / self.arrivals if self.arrivals else 1.0
        lag = percentile(self.lag_ms, 99)
        p99 = percentile(self.total().latencies_ms, 99)
        return share < CLIENT_SENT_SHARE or lag > max(CLIENT_LAG_P99_MS, CLIENT_LAG_SHARE * p99)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(tally: Tally) -> dict[str, Any]:
    """p50/p90/p99/max over every request of ``tally``; one without an answer counts as
    infinitely slow (so more than 1% of failures puts p99 at infinity: reported as null)."""
    values = tally.latencies_ms + [math.inf] * sum(tally.failures.values())

    def fig(v: float) -> float | None:
        return None if math.isinf(v) else round(v, 2)

    return {
        "requests": tally.count,
        "p50_ms": fig(percentile(values, 50)),
        "p90_ms": fig(percentile(values, 90)),
        "p99_ms": fig(percentile(values, 99)),
        "max_ms": fig(max(values, default=0.0)),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "no_answer": dict(tally.failures),
        "5xx": sum(v for k, v in tally.statuses.items() if k >= 500),
    }


# --- one worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    urls: tuple[str, ...]
    rate: float  # the whole run's arrivals per second
    duration_s: float
    t0: float  # time.monotonic() of arrival 0 (one clock for every process of the machine)
    worker: int
    workers: int
    workload: Any  # a Workload
    connections: int = 512  # per target, per worker


async def _run(spec: WorkerSpec) -> RunResult:
    pools = [Pool.of(url, limit=spec.connections) for url in spec.urls]
    workload: Workload = spec.workload
    result = RunResult(spec.rate, spec.duration_s)
    total = max(0, math.ceil(spec.rate * spec.duration_s))
    mine = range(spec.worker, total, spec.workers)
    result.arrivals = len(mine)
    tasks: set[asyncio.Task[None]] = set()
    last_send = spec.t0

    async def fire(index: int, due: float) -> None:
        nonlocal last_send
        call = workload.next_call(index)
        tally = result.kinds.setdefault(call.kind, Tally())
        sent = time.monotonic()
        last_send = max(last_send, sent)
        result.lag_ms.append((sent - due) * 1000)
        result.sent += 1
        try:
            answer = await pools[call.target].send(call.raw)
        except (HttpError, OSError, TimeoutError) as exc:
            tally.failures[type(exc).__name__] += 1
            workload.answered(call, None)
            return
        tally.latencies_ms.append((time.monotonic() - due) * 1000)
        tally.statuses[answer.status] += 1
        workload.answered(call, answer)

    gc.disable()  # a collection pause would show as client lag; the run is short
    try:
        for index in mine:
            due = spec.t0 + index / spec.rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(fire(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        result.send_span_s = last_send - spec.t0
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        result.send_span_s = last_send - spec.t0
    finally:
        gc.enable()
        for pool in pools:
            pool.close()
    result.retries = sum(p.retries for p in pools)
    result.outcomes.append(workload.outcome())
    return result


def run_worker(spec: WorkerSpec) -> RunResult:
    """A worker process's part of a run (the entry point the pool calls)."""
    started = time.process_time()
    result = asyncio.run(_run(spec))
    result.cpu_s = time.process_time() - started
    return result


def _ready() -> int:
    return os.getpid()


class Generator:
    """``workers`` processes kept for the bench's runs (spawned once, not per run)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.busy = False  # a run is under way
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        # start every process now (the executor spawns them on demand), so none starts inside a run
        self.pids = sorted({f.result() for f in [self.pool.submit(_ready) for _ in range(workers * 4)]})

    def run(
        self, urls: list[str], rate: float, duration_s: float, workloads: list[Any], lead_s: float = 1.0
    ) -> RunResult:
        """One run at ``rate`` arrivals/s for ``duration_s`` over as many workers as
        ``workloads`` (one workload each, at most ``workers``)."""
        n = len(workloads)
        assert 1 <= n <= self.workers
        t0 = time.monotonic() + lead_s
        specs = [WorkerSpec(tuple(urls), rate, duration_s, t0, w, n, workloads[w]) for w in range(n)]
        self.busy = True
        futures = [self.pool.submit(run_worker, spec) for spec in specs]
        out = RunResult(rate, duration_s)
        for future in futures:
            out.merge(future.result())
        self.busy = False
        return out

    def close(self) -> None:
        """Stop the workers: at once (SIGKILL by pid) when a run was cut short, else as they end."""
        if self.busy:
            for pid in self.pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- workloads of fixed requests ---------------------------------------------------------------


@dataclass
class FixedCalls:
    """Arrival ``i`` sends ``calls[i % len(calls)]`` (read-only requests, built beforehand)."""

    calls: list[Call]

    def next_call(self, index: int) -> Call:
        return self.calls[index % len(self.calls)]

    def answered(self, call: Call, answer: Answer | None) -> None:
        return None

    def outcome(self) -> dict[str, Any]:
        return {}
