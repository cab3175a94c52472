"""Catch-up mode on the real broker: ``Rebuild`` of sci and of evidence (what ``lemma replay``
runs: catch-up, the partitions the projection allows folded in worker processes, the sci
calibration at the end) equals the live fold of the same log, document by document, with a
calibration in place for every skill while the live fold scored each fact."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bench.replay_log import log_events
from services.evidence.app import projection as evidence_projection
from services.evidence.consumers import TOPICS as EVIDENCE_TOPICS
from services.sci.app import finish_rebuild
from services.sci.app import projection as sci_projection
from services.sci.calibration import calibrate
from services.sci.consumers import TOPICS as SCI_TOPICS
from services.sci.projection import CALIBRATIONS
from services.sci.recalibration import calibrate_quietly, ratings_in
from shared.events import encode
from shared.events.registry import Topic
from shared.projection.fingerprint import FINGERPRINTS
from shared.projection.fold import fold_events
from shared.projection.runtime import ProjectionRuntime
from shared.projection.versions import namespace
from shared.rebuild import Rebuild
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.kafka import Namespace, eventually
from tests.support.records import Rec

pytestmark = pytest.mark.timeout(240)
SKILLS = ["machine-learning", "data-engineering", "backend-development"]
EVENTS = log_events(4000, seed=21)


def documents(db: Path, version: int, ignore: frozenset[str] = frozenset()) -> dict[tuple[str, str], Any]:
    """Every document of ``version`` (its collections under their own names), fingerprints aside
    (they name the consumer); fields in ``ignore`` left out of the calibrations."""
    prefix = namespace("", version)
    out: dict[tuple[str, str], Any] = {}
    with sqlite3.connect(db) as conn:
        for collection, key, text in conn.execute("SELECT collection, key, doc FROM docs"):
            name = collection[len(prefix) :] if version > 1 else collection
            if (version > 1 and not collection.startswith(prefix)) or name in (FINGERPRINTS, "_versions"):
                continue
            doc = json.loads(text)
            out[(name, key)] = (
                {k: v for k, v in doc.items() if k not in ignore} if name == CALIBRATIONS else text
            )
    return out


async def live_fold(service: str, db: Path, topics: set[str], calibrated: bool) -> None:
    """The live runtime over the log in batches of 200, scoring with every skill's calibration."""
    projection = sci_projection(None) if service == "sci" else evidence_projection(None)  # type: ignore[arg-type]
    store = SqliteStore(str(db))
    records = [
        Rec(e.topic, 0, n, e.key.encode(), encode(e)) for n, e in enumerate(EVENTS) if e.topic in topics
    ]
    for n, record in enumerate(records):
        record.offset = n
    if calibrated:  # what the job would hold by then: a calibration over the whole log
        clean = SqliteStore(":memory:")
        await ProjectionRuntime(projection, clean, service="t", emit=False).handle(records)
        await store.write(
            [
                Change(CALIBRATIONS, s, calibrate(await ratings_in(clean, s)).correction().to_doc())
                for s in SKILLS
            ]
        )
    runtime = ProjectionRuntime(projection, store, service=service)
    for start in range(0, len(records), 200):
        await runtime.handle(records[start : start + 200])
    if calibrated:
        await calibrate_quietly(store, SKILLS, minimum=100)  # the job, once the log is folded
    await store.close()


@pytest.mark.parametrize("service", ["sci", "evidence"])
async def test_a_rebuild_in_catch_up_mode_equals_the_live_fold(
    private_kafka: Namespace, tmp_path: Path, service: str
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path), rebuild_workers=3)  # apart, however short the log
    topics = SCI_TOPICS if service == "sci" else EVIDENCE_TOPICS
    await ns.publish([e for e in EVENTS if e.topic in {t.value for t in topics}])
    store = SqliteStore(str(tmp_path / "rebuilt.db"))
    finish = (lambda version: finish_rebuild(version, settings)) if service == "sci" else None
    projection = sci_projection(settings) if service == "sci" else evidence_projection(settings)
    rebuild = Rebuild(settings, store, projection, topics, service=service, by="test", finish=finish)
    version = await rebuild.begin()
    progress = await rebuild.run(hand_over=False)
    await store.close()
    assert progress.folded == sum(1 for e in EVENTS if e.topic in {t.value for t in topics})
    assert len(progress.worker_peak_rss_mib) == 2  # the rebuild's process folds a third share
    await live_fold(service, tmp_path / "live.db", {t.value for t in topics}, calibrated=service == "sci")
    ignore = frozenset({"calibrated_at"})
    rebuilt, live = (
        documents(tmp_path / "rebuilt.db", version.number, ignore),
        documents(tmp_path / "live.db", 1, ignore),
    )
    assert len(rebuilt) > 1000
    assert rebuilt.keys() == live.keys()
    assert [ref for ref in sorted(live) if rebuilt[ref] != live[ref]] == []
    if service == "sci":
        assert {k for c, k in rebuilt if c == CALIBRATIONS} == set(SKILLS)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


async def test_a_rebuild_in_processes_killed_with_sigkill_leaves_none_behind_and_resumes(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    events = [e for e in log_events(20_000, seed=23) if e.topic == Topic.SESSIONS.value]
    await ns.publish(events)
    env = {
        **os.environ,
        "LEMMA_STATE_DIR": str(tmp_path),
        "LEMMA_KAFKA_BOOTSTRAP": ns.bootstrap,
        "LEMMA_KAFKA_PREFIX": ns.prefix,
        "LEMMA_REBUILD_WORKERS": "3",
        "LEMMA_REBUILD_WINDOW": "300",  # small windows, written often: time to kill it between two
        "LEMMA_CONSUMER_MAX_RECORDS": "100",
    }
    db = tmp_path / "data" / "evidence.db"

    async def folded() -> int:
        if not db.exists():
            return 0
        store = SqliteStore(str(db))
        try:
            return sum(o + 1 for o in (await store.offsets("evidence.v2")).values())
        finally:
            await store.close()

    replay = ["-m", "cli.main", "replay", "evidence", "--wait", "0"]
    root = Path(__file__).parents[2]
    first = await asyncio.create_subprocess_exec(
        sys.executable,
        *replay,
        env=env,
        cwd=root,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await eventually(lambda: _more_than(folded, 0), timeout=60)
    workers = children_of(first.pid)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    partial = await folded()
    assert 0 < partial < len(events), partial
    assert len(workers) >= 2  # folding apart (and the resource tracker)
    await eventually(lambda: not any(alive(w) for w in workers), timeout=15)  # they watch the rebuild
    second = await asyncio.create_subprocess_exec(
        sys.executable,
        *replay,
        env=env,
        cwd=root,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await second.communicate())[0].decode()
    assert "resuming version 2" in output and "caught up" in output, output
    assert await folded() == len(events)
    clean, _ = fold_events(evidence_projection(None), events)  # type: ignore[arg-type]
    expected = {(c, k): json.dumps(d) for (c, k), d in clean.items()}
    rebuilt = documents(db, 2)
    assert {ref: text for ref, text in rebuilt.items() if ref[0] in {c for c, _ in expected}} == expected


async def _more_than(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() > n
