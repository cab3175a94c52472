"""Benchmark: the sci projection folding a replay of evidence into SQLite (issue 3).

Generates N ``EvidenceRecorded`` events deterministically, produces them to a real Apache
Kafka broker (one KRaft node, as ``make run`` starts it) started here, then in the same run
measures:

- raw consume: an aiokafka consumer reading every record of ``lemma.evidence.v1`` from the
  beginning with ``getmany`` (no decoding) -- the baseline;
- decode: ``shared.events.decode`` over the same record values (no broker), for context;
- fold: the same records consumed the same way and fed, one ``getmany`` batch at a time, through
  the real ``ProjectionRuntime(SciProjection, SqliteStore)`` the sci service runs (decode,
  refs, load, apply, emitted events into the outbox, one SQLite write per batch).

The last output line is one JSON object with the figures, the target and whether it is met.

    .venv/bin/python -m bench.sci_fold [--events 500000] [--batch 2000] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from services.sci.projection import SciProjection
from shared.catalog import get_catalog
from shared.events.envelope import decode, deterministic_id, encode, new_event
from shared.events.payloads import EvidenceRecorded
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.processes import kafka_broker

TARGET_FOLD_EPS = 50_000
STALL_S = 30.0  # give up when the broker hands out nothing for this long
TOPIC = Topic.EVIDENCE.value
SKILL = "machine-learning"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def evidence_values(count: int, learners: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``count`` encoded EvidenceRecorded events, the same every run.

    Time order, round-robin over learners (each round one item for every learner), so a
    batch touches many documents, as a replay of real traffic would; each learner gets
    about ``count / learners`` items from several raters, specialties and formats.
    """
    skill = get_catalog().get(SKILL)
    assert skill is not None
    rubric = [d.id for d in skill.rubric]
    specialties = [s.id for s in skill.specialties]
    formats = [f.id for f in skill.formats]
    for i in range(count):
        learner_no, round_no = i % learners, i // learners
        learner = f"learner-{learner_no:06d}"
        at = START + timedelta(days=round_no, seconds=learner_no)
        payload = EvidenceRecorded(
            evidence_id=deterministic_id("bench", "evidence", str(i)),
            learner_id=learner,
            skill=SKILL,
            specialty=specialties[(learner_no + round_no) % len(specialties)],
            session_id=f"session-{round_no:04d}-{learner_no // 2:06d}",
            rater_id=f"learner-{(learner_no + 1 + round_no % 7) % learners:06d}",
            scores={d: 1 + (i + n) % 5 for n, d in enumerate(rubric)},
            format=formats[(i // 3) % len(formats)],
            occurred_at=at,
        )
        event = new_event(payload, source="evidence", time=at, id=deterministic_id("bench", str(i)))
        yield learner.encode(), encode(event)


async def produce(bootstrap: str, values: Sequence[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    start = time.perf_counter()
    try:
        for begin in range(0, len(values), 20_000):
            futures = [
                await producer.send(TOPIC, value=value, key=key)
                for key, value in values[begin : begin + 20_000]
            ]
            await asyncio.gather(*futures)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - start


Records = list[ConsumerRecord[bytes, bytes]]


async def consume(bootstrap: str, count: int, batch: int, runtime: ProjectionRuntime | None) -> float:
    """Read ``count`` records from the beginning; hand each batch to ``runtime`` if given.

    Returns the seconds from the first poll to the last record handled.
    """
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    try:
        start = last = time.perf_counter()
        while seen < count:
            got = await consumer.getmany(timeout_ms=500, max_records=batch)
            records = [r for part in got.values() for r in part]
            if runtime is not None and records:
                await runtime.handle(records)
            seen += len(records)
            now = time.perf_counter()
            if records:
                last = now
            elif now - last > STALL_S:
                raise RuntimeError(f"no records for {STALL_S} s after {seen} of {count}")
        return time.perf_counter() - start
    finally:
        await consumer.stop()


async def collect(bootstrap: str, count: int) -> list[bytes]:
    """The record values, for the decode-only measure and the profile."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.perf_counter() + STALL_S + count / 10_000
    try:
        while len(values) < count:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"read only {len(values)} of {count} records")
            got = await consumer.getmany(timeout_ms=500, max_records=10_000)
            values.extend(r.value or b"" for part in got.values() for r in part)
        return values
    finally:
        await consumer.stop()


def decode_seconds(values: Sequence[bytes]) -> float:
    start = time.perf_counter()
    for value in values:
        decode(value)
    return time.perf_counter() - start


def new_runtime(db: Path) -> ProjectionRuntime:
    projection = SciProjection(skill.id for skill in get_catalog().skills)
    return ProjectionRuntime(projection, SqliteStore(str(db)), service="bench")


@dataclass(slots=True)
class _Rec:
    """An in-memory record (the runtime's ``Record`` protocol) for the profile run."""

    offset: int
    value: bytes | None
    topic: str = TOPIC
    partition: int = 0
    key: bytes | None = None


async def fold_in_memory(runtime: ProjectionRuntime, values: Sequence[bytes], batch: int) -> None:
    records = [_Rec(i, v) for i, v in enumerate(values)]
    for begin in range(0, len(records), batch):
        await runtime.handle(records[begin : begin + batch])


def profile(values: Sequence[bytes], batch: int, workdir: Path, out: Path) -> None:
    """cProfile the runtime folding in-memory records (no broker): where the fold's time goes."""
    runtime = new_runtime(workdir / "profile.sqlite")
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(fold_in_memory(runtime, values, batch))
    profiler.disable()
    profiler.dump_stats(str(out))
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("cumulative")
    stats.print_stats(40)
    asyncio.run(runtime.store.close())


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    learners = min(args.learners, args.events)
    t0 = time.perf_counter()
    values = list(evidence_values(args.events, learners))
    generate_s = time.perf_counter() - t0
    size = sum(len(v) for _, v in values) / len(values)
    with kafka_broker(workdir) as bootstrap:
        produce_s = await produce(bootstrap, values)
        del values
        raw_s = await consume(bootstrap, args.events, args.batch, None)
        runtime = new_runtime(workdir / "sci.sqlite")
        fold_s = await consume(bootstrap, args.events, args.batch, runtime)
        docs = await runtime.store.count("scores")
        await runtime.store.close()
        recorded = await collect(bootstrap, args.events)
    decode_s = decode_seconds(recorded)
    if args.profile:
        # the measured figures are taken; profile the fold alone on a prefix of the same records
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                profile, recorded[: args.profile_events], args.batch, workdir, Path(args.profile)
            ).result()
    n = args.events
    figures = {
        "raw_consume_eps": round(n / raw_s),
        "decode_eps": round(n / decode_s),
        "fold_eps": round(n / fold_s),
    }
    print(f"sci fold benchmark: {n:,} EvidenceRecorded events ({size:.0f} bytes avg), {learners:,} learners,")
    print(f"batches of {args.batch:,}; score documents written: {docs:,}")
    print(f"  generated + encoded in {generate_s:6.1f} s   ({n / generate_s:>10,.0f} events/s)")
    print(f"  produced to Kafka in  {produce_s:6.1f} s   ({n / produce_s:>10,.0f} events/s)")
    print(f"  {'measure':<34}{'seconds':>9}{'events/s':>12}{'vs raw':>9}")
    rows = [("raw consume (getmany, no decode)", raw_s), ("decode only (in memory)", decode_s)]
    rows.append(("sci fold (consume+runtime+SQLite)", fold_s))
    for label, seconds in rows:
        print(f"  {label:<34}{seconds:>9.2f}{n / seconds:>12,.0f}{raw_s / seconds:>9.3f}")
    meets = figures["fold_eps"] >= TARGET_FOLD_EPS
    print(f"  target: fold >= {TARGET_FOLD_EPS:,} events/s -> {'met' if meets else 'NOT met'}")
    return {
        "benchmark": "sci_fold",
        "events": n,
        **figures,
        "fold_vs_raw_consume": round(raw_s / fold_s, 4),
        "targets": {"fold_eps": TARGET_FOLD_EPS},
        "meets_targets": meets,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000, help="max records per getmany and per fold")
    parser.add_argument("--profile", metavar="FILE", help="also cProfile an in-memory fold; stats to FILE")
    parser.add_argument("--profile-events", type=int, default=50_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sci-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
