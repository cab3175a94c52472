"""``lemma replay`` on the real broker against a running evidence service: a new version is
built from the log beside the live one while events keep coming, handed over and switched to;
reads never fail nor go backwards; the rebuilt version equals a clean fold of the whole log; a
second rebuild is refused while one is alive; a rebuild killed with SIGKILL resumes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as lemma
from services.evidence.app import bootstrap, projection
from services.evidence.projection import EVIDENCE, EVIDENCE_BY_SKILL, EVIDENCE_IDS, SESSIONS
from services.sci.domain import SCORE_MODEL
from shared.events import CloudEvent, new_event
from shared.events.envelope import deterministic_id
from shared.events.payloads import EvidenceRecorded, RatingSubmitted
from shared.events.registry import Topic
from shared.projection.fold import fold_events
from shared.projection.versions import VERSIONS, Versions, namespace
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.apps import projections, serving
from tests.support.kafka import Namespace, eventually
from tests.support.population import session_burst

COLLECTIONS = (SESSIONS, EVIDENCE, EVIDENCE_BY_SKILL, EVIDENCE_IDS)


def cli_env(monkeypatch: pytest.MonkeyPatch, ns: Namespace, state: Path) -> None:
    monkeypatch.setenv("LEMMA_STATE_DIR", str(state))
    monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", ns.bootstrap)
    monkeypatch.setenv("LEMMA_KAFKA_PREFIX", ns.prefix)
    monkeypatch.setenv("COLUMNS", "200")


async def versions_of(db: Path) -> Versions:
    store = SqliteStore(str(db))
    try:
        return Versions.from_doc("evidence", await store.get(VERSIONS, "evidence"))
    finally:
        await store.close()


async def documents(db: Path, version: int) -> dict[tuple[str, str], Any]:
    store = SqliteStore(str(db))
    try:
        docs: dict[tuple[str, str], Any] = {}
        for collection in COLLECTIONS:
            after = None
            while page := await store.scan(namespace(collection, version), after=after, limit=1000):
                docs |= {(collection, key): doc for key, doc in page}
                after = page[-1][0]
        return docs
    finally:
        await store.close()


def clean_fold(events: list[CloudEvent]) -> dict[tuple[str, str], Any]:
    docs, _ = fold_events(projection(None), events)  # type: ignore[arg-type]
    return {ref: doc for ref, doc in docs.items() if ref[0] in COLLECTIONS}


async def folded_count(db: Path, consumer: str) -> int:
    store = SqliteStore(str(db))
    try:
        return sum(o + 1 for o in (await store.offsets(consumer)).values())
    finally:
        await store.close()


class Reader:
    """Reads each learner's evidence trail over and over: every answer must be 200, and no
    learner's count may ever go down."""

    def __init__(self, client: httpx.AsyncClient, learners: list[str]) -> None:
        self.client, self.learners = client, learners
        self.seen: Counter[str] = Counter()
        self.reads = 0
        self.problems: list[str] = []

    async def run(self) -> None:
        while True:
            for learner in self.learners:
                answer = await self.client.get("/v1/evidence", params={"learner_id": learner, "limit": 100})
                self.reads += 1
                if answer.status_code != 200:
                    self.problems.append(f"{learner}: {answer.status_code} {answer.text}")
                    continue
                count = len(answer.json()["items"])
                if count < self.seen[learner]:
                    self.problems.append(f"{learner}: {self.seen[learner]} then {count}")
                self.seen[learner] = max(count, self.seen[learner])
            await asyncio.sleep(0.01)


async def test_a_rebuild_goes_live_beside_live_traffic_and_equals_a_clean_fold(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    before, during = session_burst(150, seed=61), session_burst(60, seed=62)
    rated = sorted({e.data.ratee_id for e in before if isinstance(e.data, RatingSubmitted)})[:12]
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(before)
        await eventually(lambda: _at_least(db, "evidence", len(before)), timeout=60)
        reader = Reader(client, rated)
        reading = asyncio.create_task(reader.run())
        replay = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence"]))
        await ns.publish(during)  # live traffic while it builds
        result = await asyncio.wait_for(replay, 120)
        assert result.exit_code == 0, result.output
        assert "version 2 is live" in result.output, result.output
        await eventually(lambda: _at_least(db, "evidence.v2", len(before) + len(during)), timeout=60)
        await asyncio.sleep(0.5)
        reading.cancel()
        report = (await projections(client, settings))[0]
        versions = await versions_of(db)
        rebuilt = await documents(db, 2)
        second = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence"])
    assert reader.problems == [] and reader.reads > 20
    assert versions.live == 2 and versions.versions[1].state == "retired"
    assert report["version"] == 2 and report["live_version"] == 2
    assert rebuilt == clean_fold(before + during)
    assert second.exit_code == 0 and "building version 3" in second.output  # a new version, not a resume
    assert (await versions_of(db)).live == 3

    live = await asyncio.to_thread(CliRunner().invoke, lemma, ["projections", "drop", "evidence", "3"])
    assert live.exit_code == 1 and "only a retired one" in live.output
    dropped = await asyncio.to_thread(CliRunner().invoke, lemma, ["projections", "drop", "evidence", "1"])
    assert dropped.exit_code == 0 and "version 1 dropped" in dropped.output, dropped.output
    assert set((await versions_of(db)).versions) == {2, 3}
    assert await documents(db, 1) == {} and await folded_count(db, "evidence") == 0
    assert await documents(db, 3) == rebuilt  # nothing else touched


async def _at_least(db: Path, consumer: str, n: int) -> bool:
    return await folded_count(db, consumer) >= n


async def test_a_second_rebuild_is_refused_and_a_killed_one_resumes(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    events = session_burst(1500, seed=63)
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(bootstrap(settings)) as client:
        await ns.publish(events)
        await eventually(lambda: _at_least(db, "evidence", len(events)), timeout=120)
        # small batches, each window written: time to kill it between two
        env = {**os.environ, "LEMMA_CONSUMER_MAX_RECORDS": "200", "LEMMA_REBUILD_WINDOW": "200"}
        first = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "replay",
            "evidence",
            env=env,
            cwd=Path(__file__).parents[2],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await eventually(lambda: _at_least(db, "evidence.v2", 1), timeout=60)
            refused = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence"])
            assert refused.exit_code == 1 and "being rebuilt already: version 2" in refused.output
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        partial = await folded_count(db, "evidence.v2")
        assert 0 < partial < len(events), partial
        resumed = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence"])
        assert resumed.exit_code == 0, resumed.output
        assert "resuming version 2" in resumed.output and "version 2 is live" in resumed.output
        assert (await projections(client, settings))[0]["live_version"] == 2
    assert await documents(db, 2) == clean_fold(events)


pytestmark = pytest.mark.timeout(300)


async def test_a_rebuilt_sci_is_calibrated_when_it_goes_live_and_answers_as_the_live_one_did(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild calibrates the new version before it hands over, so the scores read after
    the switch are the calibrated ones the live version served: same model, same answers."""
    from services.sci.app import bootstrap as sci_app

    ns = private_kafka
    settings = ns.settings(
        state_dir=str(tmp_path), sci_calibration_interval_s=0.3, sci_calibration_min_ratings=10
    )
    monkeypatch.setenv("LEMMA_SCI_CALIBRATION_MIN_RATINGS", "10")
    cli_env(monkeypatch, ns, tmp_path)
    learners = [f"learner-{n}" for n in range(8)]
    raters = [f"judge-{n}" for n in range(4)]
    events = [
        new_event(
            EvidenceRecorded(
                evidence_id=f"{learner}-{rater}",
                learner_id=learner,
                skill="machine-learning",
                specialty="nlp",
                session_id=f"{learner}-s{j}",
                rater_id=rater,
                scores={"model-selection": min(5, 2 + i % 3 + (j == 0)), "deployment": min(5, 2 + i % 3)},
                occurred_at=T0 + timedelta(hours=j),
            ),
            source="evidence",
            time=T0 + timedelta(hours=j),
        )
        for i, learner in enumerate(learners)
        for j, rater in enumerate(raters)
    ]
    db = tmp_path / "data" / "sci.db"

    async def scores(client: httpx.AsyncClient) -> dict[str, Any]:
        out = {}
        for learner in learners:
            answer = await client.get(f"/v1/scores/{learner}/machine-learning", params={"as_of": AS_OF})
            out[learner] = answer.json()
        return out

    async with serving(sci_app(settings)) as client:
        await ns.publish(events)

        async def calibrated() -> dict[str, Any] | None:
            now = await scores(client)
            return (
                now
                if all(s.get("calibration", {}).get("ratings") == len(events) for s in now.values())
                else None
            )

        before = await eventually(calibrated, timeout=60)
        first = await versions_of_projection(db, "sci")
        # a store that starts empty records the rules it folds with
        assert first.versions[1].model == SCORE_MODEL
        await earlier_release(db, "sci")
        result = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "sci"])
        assert result.exit_code == 0 and "version 2 is live" in result.output, result.output
        await asyncio.sleep(0.6)  # readers look the live version up at most every 0.5 s
        after = await scores(client)
        again = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "sci"])
        assert again.exit_code == 0 and "version 3 is live" in again.output, again.output
    assert (await versions_of_projection(db, "sci")).live == 3
    assert after == before
    assert all(s["calibration"]["ratings"] == len(events) for s in after.values())
    # version 1 was built by a release that did not record its model: going live, version 2 announces every
    # score under its model; version 3, built with the same model, finds none changed
    acted = await ns.read_until(Topic.OPS, lambda rs: sum(b'"switch"' in r.value for r in rs) >= 2)
    # the relay publishes at least once (a stop between publishing and acking publishes again,
    # with the same id): one switch per id
    by_id = {json.loads(r.value)["id"]: json.loads(r.value) for r in acted if b'"switch"' in r.value}
    switches = sorted((e["data"]["detail"] for e in by_id.values()), key=lambda d: d["to"])
    assert [(d["to"], d["announced"]) for d in switches] == [(2, len(learners)), (3, 0)]
    ids = {
        deterministic_id("sci", "version-2", "SciUpdated", learner, "machine-learning")
        for learner in learners
    }
    records = await ns.read_until(Topic.SCI, lambda rs: ids <= {json.loads(r.value)["id"] for r in rs})
    announced = [json.loads(r.value) for r in records if json.loads(r.value)["id"] in ids]
    assert len(announced) == len(learners) and all(a["data"]["model"] == SCORE_MODEL for a in announced)


async def earlier_release(db: Path, name: str) -> None:
    """Make the store one an earlier release wrote: no record of the rules version 1 used."""
    store = SqliteStore(str(db))
    try:
        doc = await store.get(VERSIONS, name)
        assert doc is not None
        doc["versions"]["1"]["model"] = 0
        await store.write([Change(VERSIONS, name, doc)])
    finally:
        await store.close()


async def versions_of_projection(db: Path, name: str) -> Versions:
    store = SqliteStore(str(db))
    try:
        return Versions.from_doc(name, await store.get(VERSIONS, name))
    finally:
        await store.close()


T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
AS_OF = (T0 + timedelta(days=5)).isoformat()


async def test_verify_compares_a_rebuild_with_the_live_version_and_finds_a_planted_difference(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "evidence.db"
    events = session_burst(40, seed=64)
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(bootstrap(settings)):
        await ns.publish(events)
        await eventually(lambda: _at_least(db, "evidence", len(events)), timeout=60)
        clean = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence", "--verify"])
        assert clean.exit_code == 0 and "no difference" in clean.output, clean.output

        store = SqliteStore(str(db))  # a bug, or a hand, changed one document of the live version
        try:
            key, doc = (await store.scan(SESSIONS, limit=1))[0]
            await store.write([Change(SESSIONS, key, {**doc, "status": "abandoned"})])
        finally:
            await store.close()
        drift = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence", "--verify"])
    assert drift.exit_code == 1, drift.output
    assert f"sessions/{key}: status differ" in drift.output and "1 documents differ" in drift.output
    versions = await versions_of(db)
    assert set(versions.versions) == {1} and versions.live == 1  # the compared copies are gone
    assert await documents(db, 2) == {} and await documents(db, 3) == {}
