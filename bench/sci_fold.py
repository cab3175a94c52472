"""Benchmark: the sci projection folding a replay of evidence into SQLite, and the raw broker.

Generates N ``EvidenceRecorded`` events deterministically, produces them to a real Apache
Kafka broker (one KRaft node, as ``make run`` starts it) started here, then in the same run
measures:

- raw produce: the producer the services use (aiokafka, ``acks=all``, idempotent) writing the
  N events to ``lemma.evidence.v1``, batched (linger 20 ms, batches up to 512 KiB);
- raw consume: an aiokafka consumer reading every record of ``lemma.evidence.v1`` from the
  beginning with ``getmany`` (no decoding) -- the baseline of the ratios;
- the same raw pair with records of ``--raw-bytes`` (353 by default) on a topic of its own made
  like ``lemma.evidence.v1``: broker rates comparable with those of other brokers; and that
  produce again with the producer handed whole batches (``send_batch``), which takes the
  client's per-record cost (about 13 us a ``send``, the limit of the first) mostly away;
- decode: ``shared.events.decode`` over the same record values (no broker), for context;
- fold: the same records consumed the same way and fed, one ``getmany`` batch at a time, through
  the real ``ProjectionRuntime(SciProjection, SqliteStore)`` the sci service runs (decode,
  refs, load, apply, emitted events into the outbox, one SQLite write per batch);
- the broker process: its start (spawn to listening, spawn to the topics made) and its resident
  memory (``VmRSS`` of the java process at the end, ``VmHWM`` its peak).

The last output line is one JSON object with the figures, the target and whether it is met.

    .venv/bin/python -m bench.sci_fold [--events 500000] [--batch 2000] [--raw-bytes 353]
        [--profile FILE]
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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench.broker_process import started_broker
from deploy.local.broker import kafka_version
from services.sci.projection import SciProjection
from shared.bus import PARTITIONS, ensure_topics
from shared.catalog import get_catalog
from shared.events.envelope import decode, deterministic_id, encode, new_event
from shared.events.payloads import EvidenceRecorded
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore

TARGET_FOLD_EPS = 50_000
STALL_S = 30.0  # give up when the broker hands out nothing for this long
TOPIC = Topic.EVIDENCE.value
SKILL = "machine-learning"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RAW_PREFIX = "bench-raw."  # the raw pair's topic: bench-raw.lemma.evidence.v1
BATCHED_PREFIX = "bench-raw-batched."  # the batch-built produce's topic


def rubric_score(learner_no: int, rater_no: int, i: int, n: int) -> int:
    """A rubric score, the same every run: the learner's level (1.5..5), the rater's leniency
    (-0.6..0.6) and noise (-0.8..0.8), rounded into 1..5."""
    level = 1.5 + (learner_no * 37 % 100) / 100 * 3.5
    leniency = (rater_no * 13 % 5 - 2) * 0.3
    noise = ((i * 7 + n * 3) % 9 - 4) * 0.2
    return max(1, min(5, round(level + leniency + noise)))


def evidence_values(count: int, learners: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``count`` encoded EvidenceRecorded events, the same every run.

    Time order, round-robin over learners (each round one item for every learner), so a
    batch touches many documents, as a replay of real traffic would; each learner gets
    about ``count / learners`` items from several raters, specialties and formats. The rubric
    scores vary as real ones do: each learner has a level, each rater a leniency, each score
    some noise, so a calibration finds biases and moves scores.
    """
    skill = get_catalog().get(SKILL)
    assert skill is not None
    rubric = [d.id for d in skill.rubric]
    specialties = [s.id for s in skill.specialties]
    formats = [f.id for f in skill.formats]
    for i in range(count):
        learner_no, round_no = i % learners, i // learners
        rater_no = (learner_no + 1 + round_no % 7) % learners
        learner = f"learner-{learner_no:06d}"
        at = START + timedelta(days=round_no, seconds=learner_no)
        payload = EvidenceRecorded(
            evidence_id=deterministic_id("bench", "evidence", str(i)),
            learner_id=learner,
            skill=SKILL,
            specialty=specialties[(learner_no + round_no) % len(specialties)],
            session_id=f"session-{round_no:04d}-{learner_no // 2:06d}",
            rater_id=f"learner-{rater_no:06d}",
            scores={d: rubric_score(learner_no, rater_no, i, n) for n, d in enumerate(rubric)},
            format=formats[(i // 3) % len(formats)],
            occurred_at=at,
        )
        event = new_event(payload, source="evidence", time=at, id=deterministic_id("bench", str(i)))
        yield learner.encode(), encode(event)


def filler_values(count: int, size: int, learners: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``count`` records of ``size`` bytes, keyed like the evidence (by learner)."""
    for i in range(count):
        key = f"learner-{i % learners:06d}".encode()
        yield key, (b"%010d" % i + b"x" * size)[:size]


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    """The services' producer settings (``acks=all``, idempotent), with batches of up to 512 KiB."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )


async def produce(bootstrap: str, values: Sequence[tuple[bytes, bytes]], topic: str = TOPIC) -> float:
    """Write every record as the services' producers do, one ``send`` a record (the producer
    batches them); returns the seconds from the first send to the last acknowledgement."""
    producer = new_producer(bootstrap)
    await producer.start()
    start = time.perf_counter()
    try:
        for begin in range(0, len(values), 20_000):
            futures = [
                await producer.send(topic, value=value, key=key)
                for key, value in values[begin : begin + 20_000]
            ]
            await asyncio.gather(*futures)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - start


async def produce_batched(
    bootstrap: str, values: Sequence[tuple[bytes, bytes]], topic: str, partitions: int
) -> float:
    """The same producer handed whole batches (``create_batch``/``send_batch``, each to the next
    partition): the client's per-record cost is mostly gone, so this is near the broker's rate."""
    producer = new_producer(bootstrap)
    await producer.start()
    start = time.perf_counter()
    try:
        sent = []
        batch, partition = producer.create_batch(), 0
        for key, value in values:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch, partition = producer.create_batch(), (partition + 1) % partitions
                batch.append(key=key, value=value, timestamp=None)
        sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - start


async def log_size(bootstrap: str, topic: str) -> int:
    """Records in ``topic``: the sum of its partitions' end offsets (dense: no transactions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS[Topic.EVIDENCE])]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def landed(bootstrap: str, topic: str, count: int) -> None:
    """Every record produced is in the log once, or the figures are not printed (each topic here
    is made like ``lemma.evidence.v1``)."""
    if (size := await log_size(bootstrap, topic)) != count:
        raise RuntimeError(f"{topic} holds {size} records; {count} were produced")


Records = list[ConsumerRecord[bytes, bytes]]


async def consume(
    bootstrap: str, count: int, batch: int, runtime: ProjectionRuntime | None, topic: str = TOPIC
) -> float:
    """Read ``count`` records from the beginning; hand each batch to ``runtime`` if given.

    Returns the seconds from the first poll to the last record handled.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",  # as the services read
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
    raw_n = args.raw_events if args.raw_events is not None else args.events
    with started_broker(workdir) as kafka:
        bootstrap = kafka.bootstrap
        # the raw pair on small records first, on a topic made like lemma.evidence.v1
        parts = PARTITIONS[Topic.EVIDENCE]
        for prefix in (RAW_PREFIX, BATCHED_PREFIX):
            await ensure_topics(KafkaConnection(bootstrap), {Topic.EVIDENCE: parts}, prefix=prefix)
        filler = list(filler_values(raw_n, args.raw_bytes, learners))
        small_produce_s = await produce(bootstrap, filler, RAW_PREFIX + TOPIC)
        await landed(bootstrap, RAW_PREFIX + TOPIC, raw_n)
        small_batched_s = await produce_batched(bootstrap, filler, BATCHED_PREFIX + TOPIC, parts)
        await landed(bootstrap, BATCHED_PREFIX + TOPIC, raw_n)
        del filler
        small_consume_s = await consume(bootstrap, raw_n, args.batch, None, RAW_PREFIX + TOPIC)
        produce_s = await produce(bootstrap, values)
        await landed(bootstrap, TOPIC, args.events)
        del values
        raw_s = await consume(bootstrap, args.events, args.batch, None)
        runtime = new_runtime(workdir / "sci.sqlite")
        fold_s = await consume(bootstrap, args.events, args.batch, runtime)
        docs = await runtime.store.count("scores")
        await runtime.store.close()
        recorded = await collect(bootstrap, args.events)
        broker_figures = kafka.figures()
    decode_s = decode_seconds(recorded)
    if args.profile:
        # the measured figures are taken; profile the fold alone on a prefix of the same records
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                profile, recorded[: args.profile_events], args.batch, workdir, Path(args.profile)
            ).result()
    n = args.events
    figures = {
        "raw_produce_eps": round(n / produce_s),
        "raw_consume_eps": round(n / raw_s),
        "raw_small": {
            "record_bytes": args.raw_bytes,
            "events": raw_n,
            "produce_eps": round(raw_n / small_produce_s),
            "produce_batched_eps": round(raw_n / small_batched_s),
            "consume_eps": round(raw_n / small_consume_s),
        },
        "decode_eps": round(n / decode_s),
        "fold_eps": round(n / fold_s),
    }
    print(f"sci fold benchmark: {n:,} EvidenceRecorded events ({size:.0f} bytes avg), {learners:,} learners,")
    print(f"batches of {args.batch:,}; score documents written: {docs:,}; Apache Kafka {kafka_version()}")
    print(f"  generated + encoded in {generate_s:6.1f} s   ({n / generate_s:>10,.0f} events/s)")
    print(f"  {'measure':<50}{'seconds':>9}{'events/s':>12}{'vs raw consume':>16}")
    rows = [
        (f"raw produce, {args.raw_bytes}-byte records (acks=all, idem.)", small_produce_s, raw_n),
        ("  the same, handed whole batches (send_batch)", small_batched_s, raw_n),
        (f"raw consume, {args.raw_bytes}-byte records (getmany)", small_consume_s, raw_n),
        ("raw produce, the events (acks=all, idempotent)", produce_s, n),
        ("raw consume, the events (getmany, no decode)", raw_s, n),
        ("decode only (in memory)", decode_s, n),
        ("sci fold (consume+runtime+SQLite)", fold_s, n),
    ]
    for label, seconds, count in rows:
        eps = count / seconds
        print(f"  {label:<50}{seconds:>9.2f}{eps:>12,.0f}{eps / (n / raw_s):>16.3f}")
    b = broker_figures
    print(
        f"  broker: {b['prepare_s']:.1f} s before the spawn (Java, jars, storage format); spawn to listening "
        f"{b['spawn_to_listening_s']:.2f} s, to the topics made {b['spawn_to_ready_s']:.2f} s; resident "
        f"{b['rss_mib']:.0f} MiB at the end, {b['peak_rss_mib']:.0f} MiB at most"
    )
    meets = figures["fold_eps"] >= TARGET_FOLD_EPS
    print(f"  target: fold >= {TARGET_FOLD_EPS:,} events/s -> {'met' if meets else 'NOT met'}")
    return {
        "benchmark": "sci_fold",
        "events": n,
        "event_bytes": round(size),
        **figures,
        "fold_vs_raw_consume": round(raw_s / fold_s, 4),
        "produce_vs_raw_consume": round(raw_s / produce_s, 4),
        "broker": broker_figures,
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
    parser.add_argument("--raw-bytes", type=int, default=353, help="record size of the raw pair on filler")
    parser.add_argument(
        "--raw-events", type=int, help="records of the raw pair on filler (default: --events)"
    )
    parser.add_argument("--profile", metavar="FILE", help="also cProfile an in-memory fold; stats to FILE")
    parser.add_argument("--profile-events", type=int, default=50_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sci-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
