"""Benchmark: what holds the sci service's event loop, timed in process with the service's code.

    .venv/bin/python -m bench.sci_loop_hold [--events 200000] [--learners 20000] [--batches 3]

``bench.loop_lag`` measures the worst lag of the running service; this bench finds where it
comes from. No broker: the sci service's own objects run in this process on one SQLite store.

1. **replay**: ``--events`` EvidenceRecorded events, built as ``bench.sci_fold`` builds them,
   folded through ``ProjectionRuntime(SciProjection, SqliteStore)`` in batches of 2,000 (the
   default ``LEMMA_CONSUMER_MAX_RECORDS``), before any calibration. ``SqliteStore`` runs its
   statements inline, so its awaits never suspend; a batch gives the loop back only between
   its phases (decode, load, fold, write). Its wall time is an upper bound of the loop's
   hold (the probe also runs, in step 1, to catch the real one). The median is the
   baseline of the ratios.
2. **the calibration job's step**: ``services.sci.recalibration.recalibrate`` on a
   ``ServiceContext`` over the same store (what the service's job runs each tick), with a probe
   task on the loop that records how late it wakes (as ``shared.loop_lag`` does), with the
   service's worker process (``services.sci.offload``) for ``calibrate`` and the re-scoring.
   ``ratings_in`` over every rating of the skill is also timed apart, and the scores the
   calibration moved are counted (the SciUpdated it left in the outbox).
3. **a batch after the calibration**: ``--batches`` batches of new evidence, wall time and the
   loop thread's CPU time; one more under cProfile (the functions that take the time).
4. **a batch beside the calibration**: the same while ``calibrate`` runs in the worker process,
   as the job runs it, and, for comparison, in a worker thread (``asyncio.to_thread``, as the
   job ran it before). Wall time far above CPU time is time the loop thread waited for the GIL.

Target: no step holds the loop for 1 s or more (``bench.loop_lag``'s target). The last output
line is one JSON object with the figures, the target, the checks and whether they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sci_fold import TOPIC, evidence_values
from services.sci.app import NAME
from services.sci.calibration import calibrate
from services.sci.offload import ProcessOffload
from services.sci.projection import SciProjection
from services.sci.recalibration import ratings_in, recalibrate
from shared.catalog import get_catalog
from shared.events.envelope import decode
from shared.events.payloads import SciUpdated
from shared.projection.runtime import ProjectionRuntime
from shared.service import ServiceContext
from shared.settings import Settings

SKILL = "machine-learning"
BATCH = Settings.model_fields["consumer_max_records"].default
TARGET_HOLD_S = 1.0


@dataclass(slots=True)
class Rec:
    """A consumed record as the runtime reads it (offsets past the replay's: new records)."""

    offset: int
    value: bytes | None
    topic: str = TOPIC
    partition: int = 0
    key: bytes | None = None


@dataclass
class Probe:
    """A task that sleeps ``interval_s`` over and over and keeps how late it woke (the loop's lag)."""

    interval_s: float = 0.01
    worst_s: float = 0.0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.worst_s = max(self.worst_s, time.monotonic() - due)

    def start(self) -> None:
        self.worst_s = 0.0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        assert self._task is not None
        await asyncio.sleep(self.interval_s * 2)  # let it see the end of the last hold
        self._task.cancel()
        return self.worst_s


async def fold(runtime: ProjectionRuntime, batch: Sequence[Rec]) -> tuple[float, float]:
    """One batch as the consumer hands it over: (wall seconds, the loop thread's CPU seconds)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    await runtime.handle(batch)
    return time.perf_counter() - wall, time.thread_time() - cpu


async def timed(step: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await step()
    return result, time.perf_counter() - started


async def beside_calibration(
    runtime: ProjectionRuntime,
    batches: list[list[Rec]],
    ratings: list[Any],
    offload: ProcessOffload | None,
) -> list[tuple[float, float]]:
    """Fold batches while ``calibrate`` runs in ``offload``'s process (as the job runs it), or
    in a worker thread when ``offload`` is None (as the job ran it before)."""
    job = asyncio.create_task(
        offload.run(calibrate, ratings) if offload else asyncio.to_thread(calibrate, ratings)
    )
    await asyncio.sleep(2.0)  # the process is started and under way (a thread would be already)
    out = []
    while batches and not job.done():
        out.append(await fold(runtime, batches.pop(0)))
    await job
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    extra = args.batches * 3 * BATCH
    values = [v for _, v in evidence_values(args.events + extra, args.learners)]
    records = [Rec(i, v) for i, v in enumerate(values)]
    replay, fresh = records[: args.events], records[args.events :]
    new = [fresh[i : i + BATCH] for i in range(0, len(fresh), BATCH)]
    # the service's composition (services/sci/app.py): one store, one lock, the outbox relay's kick
    ctx = ServiceContext.build(NAME, Settings(state_dir=str(workdir)))
    runtime = ctx.runtime(SciProjection(skill.id for skill in get_catalog().skills))
    probe = Probe()

    print(f"1. replay: {args.events:,} events in batches of {BATCH:,}, uncalibrated", flush=True)
    probe.start()
    replay_s = []
    for begin in range(0, len(replay), BATCH):
        replay_s.append((await fold(runtime, replay[begin : begin + BATCH]))[0])
        await asyncio.sleep(probe.interval_s * 2)  # as a consumer waits for its next fetch: the probe runs
    replay_lag = await probe.stop()
    baseline = statistics.median(replay_s)

    print("2. the calibration job's step (recalibrate) with a probe on the loop", flush=True)
    ratings, ratings_in_s = await timed(lambda: ratings_in(ctx.store, SKILL))
    while pending := await ctx.store.pending_outbox(limit=10_000):  # the replay's SciUpdated
        await ctx.store.ack_outbox([r.seq for r in pending])
    offload = ProcessOffload()
    probe.start()
    calibrated, recalibrate_s = await timed(lambda: recalibrate(ctx, SKILL, offload))
    recalibrate_lag = await probe.stop()
    if not calibrated:
        raise RuntimeError("recalibrate stored no calibration")
    emitted = await ctx.store.pending_outbox(limit=10 * args.events)
    moved = sum(1 for r in emitted if isinstance(decode(r.value).data, SciUpdated))
    seniors = len((await ctx.store.get("calibrations", SKILL) or {}).get("senior", ()))

    print("3. batches of new evidence after the calibration: alone, and one under cProfile", flush=True)
    after = [await fold(runtime, new.pop(0)) for _ in range(args.batches)]
    profiler = cProfile.Profile()
    profiler.enable()
    await runtime.handle(new.pop(0))
    profiler.disable()
    # keyed by (file, line, function): names alone collide (three classes have a ``from_doc``)
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    top = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
    profile_top = [
        [f"{Path(file).name}:{line} {function}", round(tottime, 3), calls]
        for (file, line, function), (_, calls, tottime, *_) in top
    ]

    print("4. the same beside calibrate() in the worker process, then in a worker thread", flush=True)
    try:
        beside = await beside_calibration(runtime, new[: args.batches], ratings, offload)
    finally:
        await offload.stop()
    del new[: args.batches]
    beside_thread = await beside_calibration(runtime, new[: args.batches], ratings, None)
    await ctx.store.close()

    holds = {
        "replay_batch_max_s": max(replay_s),
        "recalibrate_worst_lag_s": recalibrate_lag,
        "calibrated_batch_max_s": max(w for w, _ in after),
        "beside_calibration_batch_max_s": max((w for w, _ in beside), default=0.0),
    }
    return {
        "benchmark": "sci_loop_hold",
        "events": args.events,
        "learners": args.learners,
        "batch": BATCH,
        "ratings": len(ratings),
        "seniors": seniors,
        "baseline_batch_s": round(baseline, 3),
        "replay_batch_s": {
            "p50": round(baseline, 3),
            "p95": round(pct(replay_s, 95), 3),
            "max": round(max(replay_s), 3),
        },
        "replay_worst_lag_s": round(replay_lag, 3),
        "recalibrate": {
            "seconds": round(recalibrate_s, 1),
            "worst_lag_s": round(recalibrate_lag, 3),
            "ratings_in_s": round(ratings_in_s, 3),
            "scores_moved": moved,
        },
        "calibrated_batch": [{"wall_s": round(w, 3), "cpu_s": round(c, 3)} for w, c in after],
        "calibrated_batch_vs_baseline": round(max(w for w, _ in after) / baseline, 1),
        "profile_top_tottime": profile_top,
        "beside_calibration_batch": [{"wall_s": round(w, 3), "cpu_s": round(c, 3)} for w, c in beside],
        "beside_calibration_in_a_thread": [
            {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for w, c in beside_thread
        ],
        "holds_s": {k: round(v, 3) for k, v in holds.items()},
        "targets": {"hold_s": TARGET_HOLD_S},
        "checks": {f"{k}_under_target": v < TARGET_HOLD_S for k, v in holds.items()},
    }


def report(out: dict[str, Any]) -> None:
    r, base = out["recalibrate"], out["baseline_batch_s"]
    print(
        f"sci loop hold: {out['events']:,} events, {out['learners']:,} learners in one skill, batches of "
        f"{out['batch']:,}; {out['ratings']:,} ratings, {out['seniors']:,} senior learners in the calibration"
    )
    rb = out["replay_batch_s"]
    print(f"  1. replay batch (baseline): p50 {rb['p50']} s, p95 {rb['p95']} s, max {rb['max']} s")
    print(
        f"  2. recalibrate: {r['seconds']} s, worst loop lag {r['worst_lag_s']} s, "
        f"{r['scores_moved']:,} scores moved; ratings_in alone {r['ratings_in_s']} s"
    )
    for label, key in (
        ("3. batch after calibration", "calibrated_batch"),
        ("4. batch beside calibrate() (process)", "beside_calibration_batch"),
        ("   the same, calibrate() in a thread", "beside_calibration_in_a_thread"),
    ):
        rows = ", ".join(
            f"{b['wall_s']} s ({b['cpu_s']} s CPU, {b['wall_s'] / base:.1f} x)" for b in out[key]
        )
        print(f"  {label}: {rows or 'none (the calibration ended first)'}")
    print("  cProfile of one batch after calibration (tottime s, calls):")
    for name, tottime, calls in out["profile_top_tottime"]:
        print(f"    {tottime:7.3f} {calls:>7} {name}")
    for name, ok in out["checks"].items():
        print(f"  {name}: {'met' if ok else 'MISSED'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=3, help="batches timed in each of steps 3 and 4")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sci-hold-") as tmp:
        out = asyncio.run(run(args, Path(tmp)))
    missed = [name for name, ok in out["checks"].items() if not ok]
    out |= {"meets_targets": not missed, "missed": missed}
    report(out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
