"""Benchmark: the sci service's event loop during a replay and a large calibration (heartbeats).

    .venv/bin/python -m bench.loop_lag [--events 200000] [--learners 20000] [--watch]

aiokafka sends a consumer's heartbeats from a task on the service's event loop; work that holds
the loop delays them, and a member whose heartbeats stop for the session timeout (45 s) loses
its partitions. Every service exports its worst lag since the start,
``lemma_event_loop_lag_max_seconds{service}`` (``shared/loop_lag.py``).

The bench starts Apache Kafka (one KRaft node, as ``make run`` starts it), produces a replay of
``--events`` ``EvidenceRecorded`` events built as ``bench.sci_fold`` builds them (one skill,
``--learners`` learners, round-robin in time order, 7 distinct raters a learner), then starts
the real sci service as a process (``python -m services.sci``, ``LEMMA_SCI_CALIBRATION_INTERVAL_S=1``,
the default session timeout). It watches the service's ``/metrics``
(``lemma_events_consumed_total``, the loop lag) and ``lemma.sci.v1`` (the calibrations'
RatersCalibrated parts) until every event is folded and a calibration over every rating is
announced whole, waits ``--settle`` seconds, and reads the worst lag and the lag histogram.

Baseline: the heartbeat interval the service's consumers get (``shared.bus.consumer_options``;
a third of the 45 s session timeout, 15 s). Target: worst lag under 1 s, so no heartbeat is ever
late by more than a fifteenth of that interval. ``--watch`` runs the
service under ``bench.loop_watch`` (a sampler of its main thread) and prints which code held the
loop; use it to find a cause, not for the figures. The last output line is one JSON object with
the figures, the targets, the checks and whether they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bench.broker_process import started_broker
from bench.sci_fold import evidence_values, produce
from deploy.local.broker import kafka_version
from shared.bus import consumer_options
from shared.events.envelope import decode
from shared.events.payloads import RatersCalibrated
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.processes import free_port, stop_process

SERVICE = "sci"
TARGET_WORST_LAG_S = 1.0
SESSION_TIMEOUT_MS = Settings.model_fields["consumer_session_timeout_ms"].default
#: the heartbeat interval the service's consumers get (the baseline of the ratio)
HEARTBEAT_S = (
    consumer_options(Settings(consumer_session_timeout_ms=SESSION_TIMEOUT_MS))["heartbeat_interval_ms"] / 1000
)
EVIDENCE_TYPE = "lemma.evidence.EvidenceRecorded.v1"


def metrics(text: str) -> dict[str, Any]:
    """What the bench reads of the sci service's ``/metrics``."""
    out: dict[str, Any] = {"consumed": 0.0, "lag_max_s": 0.0, "lag_buckets": {}, "lag_count": 0.0}
    out |= {"fold_batch_s_sum": 0.0, "fold_batches": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("service") != SERVICE:
                continue
            if s.name == "lemma_events_consumed_total" and s.labels.get("type") == EVIDENCE_TYPE:
                out["consumed"] += s.value
            elif s.name == "lemma_event_loop_lag_max_seconds":
                out["lag_max_s"] = s.value
            elif s.name == "lemma_event_loop_lag_seconds_bucket":
                out["lag_buckets"][s.labels["le"]] = s.value
            elif s.name == "lemma_event_loop_lag_seconds_count":
                out["lag_count"] = s.value
            elif s.name == "lemma_fold_batch_seconds_sum":
                out["fold_batch_s_sum"] += s.value
            elif s.name == "lemma_fold_batch_seconds_count":
                out["fold_batches"] += s.value
    return out


def late_counts(buckets: dict[str, float], count: float) -> dict[str, int]:
    """How many lag samples were later than each bucket bound (from the cumulative histogram)."""
    return {f">{le}s": int(count - n) for le, n in buckets.items() if le != "+Inf" and count - n > 0}


@dataclass
class Calibrations:
    """RatersCalibrated parts read from ``lemma.sci.v1``, grouped by calibration (digest)."""

    parts: dict[str, set[int]] = field(default_factory=dict)
    seen: list[tuple[float, int, str, int]] = field(default_factory=list)  # (at, ratings, digest, parts)
    sci_events: int = 0

    def add(self, event: RatersCalibrated, at: float) -> None:
        got = self.parts.setdefault(event.digest, set())
        got.add(event.part)
        if len(got) == event.parts:
            self.seen.append((at, event.ratings, event.digest, event.parts))

    def whole_over(self, ratings: int) -> bool:
        return any(r >= ratings for _, r, _, _ in self.seen)


async def follow_calibrations(bootstrap: str, calibrations: Calibrations, origin: float) -> None:
    consumer = AIOKafkaConsumer(
        Topic.SCI.value, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while True:
            got = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in got.values():
                calibrations.sci_events += len(records)
                for r in records:
                    if r.value is not None and b"RatersCalibrated" in r.value[:400]:
                        event = decode(r.value)
                        if isinstance(event.data, RatersCalibrated):
                            calibrations.add(event.data, time.monotonic() - origin)
    finally:
        await consumer.stop()


def start_sci(bootstrap: str, state: Path, port: int, watch: Path | None) -> subprocess.Popen[bytes]:
    """``python -m services.sci`` with its own state directory (as the integration tests start it);
    under ``bench.loop_watch`` when ``watch`` names its report."""
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LEMMA_ENVIRONMENT": "test",
        "LEMMA_KAFKA_BOOTSTRAP": bootstrap,
        "LEMMA_STATE_DIR": str(state),
        "LEMMA_PORT": str(port),
        "LEMMA_SCI_CALIBRATION_INTERVAL_S": "1",
        "LEMMA_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
    }
    argv = [sys.executable, "-m", "services.sci"]
    if watch is not None:
        argv = [sys.executable, "-m", "bench.loop_watch", "services.sci", "--out", str(watch)]
    with (state / "sci.log").open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def observe(
    args: argparse.Namespace, bootstrap: str, proc: subprocess.Popen[bytes], base: str
) -> dict[str, Any]:
    """Poll the service until everything is folded and calibrated whole (or ``--timeout``)."""
    origin = time.monotonic()
    calibrations = Calibrations()
    follower = asyncio.create_task(follow_calibrations(bootstrap, calibrations, origin))
    timeline: list[dict[str, Any]] = []
    folded_at: float | None = None
    done_at: float | None = None
    last: dict[str, Any] = metrics("")
    next_report = 15.0
    worst_seen = -1.0
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the sci service exited ({proc.returncode}); see its log")
                if follower.done():
                    follower.result()
                now = time.monotonic() - origin
                with contextlib.suppress(httpx.TransportError):
                    last = metrics((await client.get("/metrics")).text)
                    if last["lag_max_s"] > worst_seen:
                        worst_seen = last["lag_max_s"]
                        timeline.append(
                            {
                                "at_s": round(now, 1),
                                "consumed": int(last["consumed"]),
                                "calibrations": len(calibrations.seen),
                                "lag_max_s": round(last["lag_max_s"], 3),
                            }
                        )
                if folded_at is None and last["consumed"] >= args.events:
                    folded_at = round(now, 1)
                    print(f"  {now:6.1f} s: all {args.events:,} events folded", flush=True)
                if folded_at is not None and calibrations.whole_over(args.events):
                    done_at = round(now, 1)
                    print(f"  {now:6.1f} s: a calibration over every rating announced", flush=True)
                    await asyncio.sleep(args.settle)
                    last = metrics((await client.get("/metrics")).text)
                    break
                if now > args.timeout:
                    print(f"  TIMEOUT after {args.timeout:g} s", flush=True)
                    break
                if now >= next_report:
                    next_report += 15
                    print(
                        f"  {now:6.1f} s: {int(last['consumed']):,} folded, {len(calibrations.seen)} "
                        f"calibrations, worst lag {last['lag_max_s']:.3f} s",
                        flush=True,
                    )
                await asyncio.sleep(args.poll)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
    return {
        "metrics": last,
        "timeline": timeline,
        "folded_at_s": folded_at,
        "calibrated_at_s": done_at,
        "calibrations": calibrations.seen,
        "sci_events": calibrations.sci_events,
    }


def print_watch(report: dict[str, Any]) -> None:
    print(
        f"where the loop was held (stalls >= {report['min_stall_s']} s, sampled every "
        f"{report['interval_s']} s; {report['stalls']} stalls):"
    )
    for frame, seconds in report["stalled_s_by_frame"][:10]:
        print(f"  {seconds:8.2f} s  {frame}")
    print("longest stalls (at, seconds, innermost project frames by share of samples; the stack):")
    for stall in report["longest"][:8]:
        print(f"  at {stall['at_s']:.1f} s: {stall['seconds']:.3f} s")
        for frame, share in stall["frames"][:3]:
            print(f"      {share:5.0%} {frame}")
        for frame in stall["stack"][1:6]:
            print(f"            < {frame}")
        if stall["other_threads"]:
            print(f"      other threads meanwhile: {stall['other_threads']}")


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    values = list(evidence_values(args.events, min(args.learners, args.events)))
    with started_broker(workdir / "kafka") as kafka:
        produce_s = await produce(kafka.bootstrap, values)
        del values
        print(f"{args.events:,} EvidenceRecorded events produced in {produce_s:.1f} s", flush=True)
        watch = workdir / "loop_watch.json" if args.watch else None
        port = free_port()
        proc = start_sci(kafka.bootstrap, workdir / "sci", port, watch)
        started = time.monotonic()
        try:
            seen = await observe(args, kafka.bootstrap, proc, f"http://127.0.0.1:{port}")
        finally:
            stop_process(proc, timeout=60)
        seen["wall_s"] = time.monotonic() - started
        seen["broker"] = kafka.figures()
    if watch is not None:
        seen["watch"] = json.loads(watch.read_text()) if watch.exists() else None
    return seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--settle", type=float, default=5.0, help="wait this long after the last calibration")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    parser.add_argument("--poll", type=float, default=0.5, help="read /metrics this often")
    parser.add_argument(
        "--watch", action="store_true", help="sample the service's main thread (bench.loop_watch)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs, store)")
    args = parser.parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # the broker and the service are stopped on SIGTERM, and on SIGINT even when started with it ignored
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="lemma-loop-lag-"))
    try:
        seen = asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            print(f"state kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    m = seen["metrics"]
    worst = float(m["lag_max_s"])
    largest = max((r for _, r, _, _ in seen["calibrations"]), default=0)
    checks = {
        "folded_every_event": m["consumed"] >= args.events,
        "calibrated_over_every_rating": largest >= args.events,
        "worst_lag_under_target": worst < TARGET_WORST_LAG_S,
    }
    print(
        f"loop lag benchmark: sci service (python -m services.sci), {args.events:,} EvidenceRecorded events, "
        f"{args.learners:,} learners in one skill; Apache Kafka {kafka_version()}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"  folded after {seen['folded_at_s']} s ({m['fold_batches']:.0f} batches, mean "
        f"{m['fold_batch_s_sum'] / max(m['fold_batches'], 1):.3f} s), calibrated over every rating after "
        f"{seen['calibrated_at_s']} s; {len(seen['calibrations'])} calibrations announced, the largest over "
        f"{largest:,} ratings; {seen['sci_events']:,} records on {Topic.SCI.value}"
    )
    print(
        f"  worst loop lag {worst:.3f} s = {worst / HEARTBEAT_S:.4f} x the heartbeat interval "
        f"({HEARTBEAT_S:g} s); target < {TARGET_WORST_LAG_S:g} s"
    )
    late = late_counts(m["lag_buckets"], m["lag_count"])
    print(f"  lag samples {int(m['lag_count']):,}; later than: {late}")
    print("  when the worst lag grew (s since the service started, events folded, calibrations):")
    for row in seen["timeline"]:
        print(
            f"    {row['at_s']:7.1f} s  {row['consumed']:>9,}  {row['calibrations']:>3}  "
            f"{row['lag_max_s']:.3f} s"
        )
    print(f"  broker: {seen['broker']}")
    if seen.get("watch"):
        print_watch(seen["watch"])
    elif args.watch:
        print("  no report from bench.loop_watch (the service wrote none)")
    for name, ok in checks.items():
        print(f"  {name}: {'met' if ok else 'MISSED'}")
    missed = [name for name, ok in checks.items() if not ok]
    result = {
        "benchmark": "loop_lag",
        "service": SERVICE,
        "events": args.events,
        "learners": args.learners,
        "worst_lag_s": round(worst, 4),
        "heartbeat_interval_s": HEARTBEAT_S,
        "worst_lag_vs_heartbeat": round(worst / HEARTBEAT_S, 5),
        "lag_samples": int(m["lag_count"]),
        "lag_samples_later_than": late,
        "folded_at_s": seen["folded_at_s"],
        "calibrated_at_s": seen["calibrated_at_s"],
        "largest_calibration_ratings": largest,
        "calibrations": len(seen["calibrations"]),
        "watched": bool(args.watch),
        "broker": seen["broker"],
        "targets": {"worst_lag_s": TARGET_WORST_LAG_S},
        "checks": checks,
        "meets_targets": not missed,
        "missed": missed,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
