"""Crash safety, shown: a consumer process killed with SIGKILL in the middle of a burst, then
restarted, ends with exactly the projection a clean fold of the same events gives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from services.evidence.projection import EvidenceProjection
from services.sci.projection import SciProjection
from shared.catalog import get_catalog
from shared.events import CloudEvent, decode
from shared.events.registry import Topic
from shared.projection import Projection, fold_events
from tests.support.kafka import Namespace
from tests.support.population import session_burst
from tests.support.processes import free_port, stop_process

SESSIONS = 1100  # x5 events = 5,500 events in the burst


def start_service(name: str, ns: Namespace, state: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEMMA_ENVIRONMENT": "test",
        "LEMMA_KAFKA_BOOTSTRAP": ns.bootstrap,
        "LEMMA_KAFKA_PREFIX": ns.prefix,  # topics and groups of this test's own
        # the killed member holds its partitions until its session times out: the broker's least
        "LEMMA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "LEMMA_STATE_DIR": str(state),
        "LEMMA_PORT": str(free_port()),
        "LEMMA_CONSUMER_MAX_RECORDS": "100",  # small batches: the kill lands mid-burst
    }
    log = (state / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def folded_records(db: Path, consumer: str) -> int:
    """How many records the consumer has folded, read from its own offsets (offset + 1 per partition)."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            rows = conn.execute("SELECT offset FROM offsets WHERE consumer=?", (consumer,)).fetchall()
        except sqlite3.OperationalError:
            return 0
    return sum(o + 1 for (o,) in rows)


def docs(db: Path, collections: set[str]) -> dict[tuple[str, str], object]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT collection, key, doc FROM docs").fetchall()
    return {(c, k): json.loads(d) for c, k, d in rows if c in collections}


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_mid_burst_and_recover(name: str, ns: Namespace, state: Path, total: int) -> None:
    db = state / "data" / f"{name}.db"
    proc = start_service(name, ns, state)
    try:
        wait_until(lambda: folded_records(db, name) >= total // 5, 60, f"{name} to fold a fifth of the burst")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        at_kill = folded_records(db, name)
        assert 0 < at_kill < total, f"the kill must land mid-burst (folded {at_kill} of {total})"
        proc = start_service(name, ns, state)
        wait_until(lambda: folded_records(db, name) == total, 120, f"{name} to fold all {total} records")
    finally:
        stop_process(proc)


def clean_fold(projection: Projection, events: list[CloudEvent]) -> dict[str, object]:
    """The projection a clean, crash-free fold gives, keyed and typed as the store returns it."""
    state, _ = fold_events(projection, events)
    folded: dict[str, object] = json.loads(json.dumps({json.dumps(list(k)): v for k, v in state.items()}))
    return folded


def as_json_keys(found: dict[tuple[str, str], object]) -> dict[str, object]:
    return {json.dumps(list(k)): v for k, v in found.items()}


async def test_sigkill_mid_burst_neither_loses_nor_double_counts(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    broker = private_kafka
    burst = session_burst(SESSIONS)
    assert len(burst) >= 5000
    await broker.publish(burst)
    total = len(burst)  # one record per event: the producer is idempotent, offsets are dense

    # evidence: folds the session burst, emits one EvidenceRecorded per rating
    await asyncio.to_thread(kill_mid_burst_and_recover, "evidence", broker, tmp_path, total)
    collections = {"sessions", "evidence", "evidence_by_skill", "evidence_ids"}
    stored = docs(tmp_path / "data" / "evidence.db", collections)
    expected = clean_fold(EvidenceProjection(get_catalog()), burst)
    # a session doc, and per rating (two each) a trail item, a per-skill trail item and an index doc
    assert len(stored) == len(expected) == SESSIONS * 7
    assert as_json_keys(stored) == expected

    ratings = SESSIONS * 2
    published = await broker.read_until(Topic.EVIDENCE, lambda rs: len({r.value for r in rs}) >= ratings)
    recorded = {decode(r.value).id: decode(r.value) for r in published}
    assert len(recorded) == ratings  # republished after the crash at most, never a new id

    # sci: folds the evidence (duplicates included) and the sessions; killed and restarted too
    sci_total = len(published) + len(burst)
    await asyncio.to_thread(kill_mid_burst_and_recover, "sci", broker, tmp_path, sci_total)
    stored = docs(tmp_path / "data" / "sci.db", {"scores", "received", "session_skill"})
    skills = [s.id for s in get_catalog().skills]
    expected = clean_fold(SciProjection(skills), [*burst, *recorded.values()])
    assert len(stored) == len(expected) > SESSIONS
    assert as_json_keys(stored) == expected
