"""Benchmark: rebuilding the evidence and sci projections from a simulated log, and the live sci fold.

A log of ``--events`` events made by the simulator (``bench.replay_log``: registrations and
claims, sessions, ratings, no-shows, the evidence made of each rating) is produced to a real
Apache Kafka broker started here (``bench.broker_process``), then, in the same run:

- **baseline**: raw consume, and consume + decode (``shared.events.decode``), of the records
  of each projection's topics, with the consumer settings the rebuild uses;
- **rebuild**: ``lemma replay evidence`` and ``lemma replay sci`` as the CLI runs them
  (``shared.rebuild.Rebuild`` with the service's projection, topics and finish step: catch-up
  mode, then the sci calibration of every skill), each in a fresh process whose peak resident
  memory is measured;
- **incremental**: the live runtime (scoring, emitting into the outbox) over the same log in
  consumed batches: evidence, and sci with a calibration in place for every skill from the
  first event (the rebuilt version's, as a skill past 100 ratings has one): its events/s and
  the SciUpdated it emitted, coalesced per learner and skill per batch.

Then it checks that each rebuilt version equals the incremental fold of the same log,
document by document (``bench.replay_checks``), and that what readers keep of the live fold's
announcements is each learner's final score. A failed check is printed and makes the run fail
(exit 1). The last output line is one JSON object: figures, targets, whether each is met.

    .venv/bin/python -m bench.replay [--events 1000000] [--seed 11] [--batch 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from bench.broker_process import started_broker
from bench.replay_checks import check_announced, compare_stores
from bench.replay_log import LogRecord, log_events, log_records
from bench.replay_stages import (
    baseline,
    in_process,
    incremental,
    read_calibrations,
    rebuild,
    service_topics,
)
from deploy.local.broker import kafka_version
from services.sci.app import VERIFY_IGNORE
from services.sci.projection import no_show_of
from shared.events.payloads import EvidenceRecorded
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of

TARGET_VS_BASELINE = 0.5
STRETCH_EPS = 100_000
TARGET_RSS_MIB = 1024.0
TARGET_LIVE_EPS = 20_000
SERVICES = ("evidence", "sci")


async def produce(bootstrap: str, records: Sequence[LogRecord]) -> float:
    """Every record to its topic's partition for its key (Kafka's default partitioner, as the
    services' producers use), handed to the producer in whole batches; checked in the log."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, max_batch_size=512 * 1024
    )
    partitioner = DefaultPartitioner()
    partitions = {t: await partitions_of(KafkaConnection(bootstrap), t) for t in {r.topic for r in records}}
    await producer.start()
    start = time.perf_counter()
    try:
        batches: dict[tuple[str, int], Any] = {}
        sent = []
        for record in records:
            where = (
                record.topic,
                partitioner(record.key, partitions[record.topic], partitions[record.topic]),
            )
            batch = batches.get(where) or batches.setdefault(where, producer.create_batch())
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                sent.append(await producer.send_batch(batch, where[0], partition=where[1]))
                batch = batches[where] = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None)
        for (topic, partition), batch in sorted(batches.items()):
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - start
    held = await log_sizes(bootstrap, partitions)
    wanted = Counter(r.topic for r in records)
    if held != wanted:
        raise RuntimeError(f"the log holds {dict(held)}; {dict(wanted)} were produced")
    return seconds


async def log_sizes(bootstrap: str, partitions: dict[str, list[int]]) -> Counter[str]:
    """Records per topic: the sum of its partitions' end offsets (no transactions: dense)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, ps in partitions.items() for p in ps])
    finally:
        await consumer.stop()
    sizes = Counter[str]()
    for tp, end in ends.items():
        sizes[tp.topic] += end
    return sizes


def verdict(value: float, target: float, *, below: bool = False) -> dict[str, Any]:
    met = value < target if below else value >= target
    return {"value": round(value, 3), "target": target, "met": met}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    events = log_events(args.events, args.seed)
    generate_s = time.perf_counter() - started
    types = Counter(e.type.split(".")[2] for e in events)
    facts = sum(1 for e in events if isinstance(e.data, EvidenceRecorded) or no_show_of(e.data) is not None)
    records = list(log_records(events))
    size = sum(len(r.value) for r in records) / len(records)
    per_topic = Counter(r.topic for r in records)
    del events
    print(
        f"replay bench: {len(records):,} events ({size:.0f} bytes avg), seed {args.seed}, "
        f"made in {generate_s:.1f} s"
    )
    print("  " + ", ".join(f"{n:,} {t}" for t, n in types.most_common()))
    out: dict[str, Any] = {
        "benchmark": "replay",
        "events": len(records),
        "seed": args.seed,
        "event_bytes": round(size),
    }
    with started_broker(workdir / "kafka") as kafka:
        bootstrap = kafka.bootstrap
        produce_s = asyncio.run(produce(bootstrap, records))
        del records
        gc.collect()
        print(f"  produced in {produce_s:.1f} s; Apache Kafka {kafka_version()}")
        figures: dict[str, Any] = {}
        for service in SERVICES:
            topics = [t.value for t in service_topics(service)]
            count = sum(per_topic[t] for t in topics)
            base = in_process(baseline, bootstrap, topics, count, args.batch)
            built = in_process(rebuild, bootstrap, workdir, service, workdir / f"{service}-rebuilt.db")
            if built["folded"] != count:
                raise RuntimeError(f"the {service} rebuild folded {built['folded']} of {count} events")
            figures[service] = {"events": count, **base, "rebuild": built}
        calibrations = read_calibrations(workdir / "sci-rebuilt.db", figures["sci"]["rebuild"]["version"])
        for service in SERVICES:
            wanted = calibrations if service == "sci" else {}
            figures[service]["incremental"] = in_process(
                incremental,
                bootstrap,
                service,
                workdir / f"{service}-live.db",
                figures[service]["events"],
                args.batch,
                wanted,
            )
        out["broker"] = kafka.figures()
    checks = {
        service: compare_stores(
            workdir / f"{service}-rebuilt.db",
            figures[service]["rebuild"]["version"],
            workdir / f"{service}-live.db",
            VERIFY_IGNORE if service == "sci" else None,
        )
        for service in SERVICES
    }
    announced = check_announced(workdir / "sci-live.db")
    return report(out, figures, checks, announced, facts, calibrations)


def report(
    out: dict[str, Any],
    figures: dict[str, Any],
    checks: dict[str, Any],
    announced: Any,
    facts: int,
    calibrations: dict[str, Any],
) -> dict[str, Any]:
    print(f"  {'measure':<46}{'events':>10}{'seconds':>9}{'events/s':>11}{'vs baseline':>13}")
    targets: dict[str, Any] = {}
    for service in SERVICES:
        f = figures[service]
        n, base = f["events"], f["consume_decode_eps"]
        built, live = f["rebuild"], f["incremental"]
        fold_s = built["seconds"] - built["finish_s"]
        rows = [
            ("raw consume", n / f["consume_eps"]),
            ("raw consume + decode (baseline)", n / base),
            (f"rebuild {service} (lemma replay: Rebuild.run)", built["seconds"]),
            ("  of which catch-up to the head", fold_s),
            ("  of which the finish step (calibration)", built["finish_s"]),
            (f"incremental {service} (live runtime)", live["seconds"]),
        ]
        for label, seconds in rows:
            if seconds:
                eps = n / seconds
                print(f"  {label:<46}{n:>10,}{seconds:>9.2f}{eps:>11,.0f}{eps / base:>13.3f}")
        print(f"  rebuild {service}: peak resident {built['peak_rss_mib']:.0f} MiB")
        rate = n / built["seconds"]
        f.update(
            rebuild_eps=round(rate),
            catch_up_eps=round(n / fold_s),
            incremental_eps=round(n / live["seconds"]),
            consume_eps=round(f["consume_eps"]),
            consume_decode_eps=round(base),
        )
        targets[f"{service}_rebuild_vs_baseline"] = verdict(rate / base, TARGET_VS_BASELINE)
        targets[f"{service}_rebuild_eps_stretch"] = verdict(rate, STRETCH_EPS)
        targets[f"{service}_rebuild_peak_rss_mib"] = verdict(
            built["peak_rss_mib"], TARGET_RSS_MIB, below=True
        )
        targets[f"{service}_rebuilt_equals_incremental"] = {"met": checks[service].equal}
        f["check"] = checks[service].figures()
    sci = figures["sci"]
    targets["sci_catch_up_vs_baseline"] = verdict(
        sci["catch_up_eps"] / sci["consume_decode_eps"], TARGET_VS_BASELINE
    )
    targets["live_sci_fold_eps"] = verdict(sci["incremental_eps"], TARGET_LIVE_EPS)
    targets["live_sci_readers_right"] = {"met": not announced.wrong}
    sci["announced"] = {**announced.figures(), "facts": facts}
    sci["calibrated_skills"] = sorted(calibrations)
    print(
        f"  live sci fold: {announced.sci_updated:,} SciUpdated for {facts:,} facts folded "
        f"({announced.tier_changed:,} TierChanged); calibrated skills: {', '.join(sorted(calibrations))}"
    )
    failed = False
    for service in SERVICES:
        check = checks[service]
        if check.equal:
            print(
                f"  {service}: the rebuilt version equals the incremental fold "
                f"({check.documents:,} documents)"
            )
        else:
            failed = True
            print(f"  {service}: THE REBUILT VERSION DIFFERS FROM THE INCREMENTAL FOLD: {check.figures()}")
            for line in check.samples:
                print(f"    {line}")
    if announced.wrong:
        failed = True
        print(
            f"  READERS WOULD HOLD ANOTHER SCORE than the final one for {len(announced.wrong)}: "
            f"{announced.wrong[:5]}"
        )
    for name, result in targets.items():
        print(f"  target {name}: {result}")
    return {
        **out,
        **figures,
        "targets": targets,
        "meets_targets": all(t["met"] for t in targets.values()),
        "checks_failed": failed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--batch", type=int, default=2_000, help="max records per getmany (consumer_max_records)"
    )
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the stores and the broker's log")
    args = parser.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        result = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            result = run(args, Path(tmp))
    print(json.dumps(result))
    return 1 if result["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
