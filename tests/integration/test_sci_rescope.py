"""``lemma replay sci --learner ID`` / ``--skill S`` on the real broker: refused beside a running
sci service (``--dry-run`` runs beside it), written with it stopped: the scope's damaged
documents are rebuilt from the log into the live version, nothing outside the scope is touched,
the result is what a full rebuild gives (``--verify`` finds only the damage left outside), the
changed score is announced and the operator's action recorded."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as lemma
from services.sci.app import bootstrap
from services.sci.projection import RECEIVED, SCORES, received_prefix, score_key
from shared.events import new_event
from shared.events.envelope import CloudEvent, deterministic_id
from shared.events.payloads import EvidenceRecorded, SkillClaimed
from shared.events.registry import Topic
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

pytestmark = pytest.mark.timeout(240)

ML, DE = "machine-learning", "data-engineering"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def rated(learner: str, rater: str, n: int, value: int) -> CloudEvent:
    at = T0 + timedelta(hours=n)
    payload = EvidenceRecorded(
        evidence_id=f"{learner}-{rater}-{n}",
        learner_id=learner,
        skill=ML,
        session_id=f"{learner}-s{n}",
        rater_id=rater,
        scores={"model-selection": value, "deployment": value},
        occurred_at=at,
    )
    return new_event(payload, source="evidence", time=at)


async def lemma_run(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, lemma, list(args))


async def damage(db: Path, ann: str, other: str, third: str) -> None:
    """What a bug (or a hand) did to the live version's documents."""
    store = SqliteStore(str(db))
    try:
        doc = await store.get(SCORES, score_key(ann, ML))
        assert doc is not None
        await store.write([Change(SCORES, score_key(ann, ML), {**doc, "facts": 99, "sessions": 1})])
        (key, _), *_ = await store.scan(RECEIVED, received_prefix(ML, ann), limit=1)
        await store.write([Change(RECEIVED, key, None)])
        other_doc = await store.get(SCORES, score_key(other, ML))
        assert other_doc is not None
        await store.write([Change(SCORES, score_key(other, ML), {**other_doc, "no_shows": 7})])
        claim = await store.get(SCORES, score_key(third, DE))
        assert claim is not None
        await store.write([Change(SCORES, score_key(third, DE), {**claim, "claimed": False})])
    finally:
        await store.close()


async def test_one_learners_then_one_skills_documents_are_rebuilt_in_the_live_version(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(  # a dynamic member: it leaves the group as it stops
        state_dir=str(tmp_path),
        sci_calibration_interval_s=0.3,
        sci_calibration_min_ratings=10,
        consumer_static_membership=False,
    )
    monkeypatch.setenv("LEMMA_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", ns.bootstrap)
    monkeypatch.setenv("LEMMA_KAFKA_PREFIX", ns.prefix)
    monkeypatch.setenv("COLUMNS", "200")
    learners = [f"learner-{n}" for n in range(5)]
    ann, other, third = learners[0], learners[1], learners[2]
    events = [
        rated(learner, f"judge-{j}", j, 2 + (i + j) % 4)
        for i, learner in enumerate(learners)
        for j in range(3)
    ]
    events.append(
        new_event(SkillClaimed(learner_id=third, skill=DE, self_level="beginner"), source="passport")
    )
    more = [rated(learner, f"late-{n}", 5 + n, 4) for n in range(6) for learner in learners]
    db = tmp_path / "data" / "sci.db"

    async with serving(bootstrap(settings)) as client:

        async def sessions(learner: str) -> int:
            answer = await client.get(f"/v1/scores/{learner}/{ML}")
            return int(answer.json()["sessions"]) if answer.status_code == 200 else 0

        await ns.publish(events)
        await eventually(lambda: _all(sessions, learners, 3), timeout=60)
        at = {"freshness_at": T0.isoformat()}
        before = (await client.get(f"/v1/scores/{ann}/{ML}", params=at)).json()
        await damage(db, ann, other, third)
        damaged = (await client.get(f"/v1/scores/{ann}/{ML}", params=at)).json()
        assert damaged["sessions"] == 1 and damaged["sci"] != before["sci"]

        dry = await lemma_run("replay", "sci", "--learner", ann, "--dry-run")
        assert dry.exit_code == 1, dry.output
        assert f"scores/{ann}/{ML}: facts, sessions differ" in dry.output
        assert f"received/{ML}/{ann}/" in dry.output and "only in the rebuilt version" in dry.output
        assert f"scores/{other}" not in dry.output and "nothing written" in dry.output
        assert (await client.get(f"/v1/scores/{ann}/{ML}", params=at)).json() == damaged

        await ns.publish(more)  # folded over ann's damaged documents: 1 + 6 sessions
        await eventually(lambda: _all(sessions, learners[1:], 9), timeout=60)
        await eventually(lambda: _all(sessions, [ann], 7), timeout=60)
        running = await lemma_run("replay", "sci", "--learner", ann, "--by", "auditor")
        assert running.exit_code == 1 and "the sci service is running" in running.output, running.output
        fold_stopped_at = await _offsets(db)

    # the service stopped: a batch of its cannot put old documents back beside the write
    fixed = await lemma_run("replay", "sci", "--learner", ann, "--by", "auditor")
    assert fixed.exit_code == 0, fixed.output
    assert f"scores/{ann}/{ML}: " in fixed.output and "verified" in fixed.output, fixed.output
    store = SqliteStore(str(db))
    try:  # the learner's scope left the other learners' documents alone
        assert (await store.get(SCORES, score_key(other, ML)) or {})["no_shows"] == 7
    finally:
        await store.close()
    skill = await lemma_run("replay", "sci", "--skill", ML)
    assert skill.exit_code == 0 and "1 documents differ" in skill.output, skill.output
    assert f"scores/{other}/{ML}: no_shows differ" in skill.output and "verified" in skill.output
    assert await _offsets(db) == fold_stopped_at  # the service's positions are left as they were

    async with serving(bootstrap(settings)) as client:
        await eventually(lambda: _all(sessions_of(client), learners, 9), timeout=60)
        store = SqliteStore(str(db))
        try:
            assert (await store.get(SCORES, score_key(other, ML)) or {})["no_shows"] == 0
            assert (await store.get(SCORES, score_key(ann, ML)) or {})["sessions"] == 9
        finally:
            await store.close()
        # a full rebuild from the log finds only the damage outside both scopes (and perhaps a
        # calibration the job made while a damaged document was in the live version)
        verify = await lemma_run("replay", "sci", "--verify")
        assert verify.exit_code == 1, verify.output
        drift = [line.strip() for line in verify.output.splitlines() if line.strip().startswith("drift")]
        assert f"drift scores/{third}/{DE}: claimed differ" in drift, verify.output
        assert all(f"/{third}/{DE}" in line or "calibrations/" in line for line in drift), verify.output
        records = await ns.read_until(Topic.OPS, lambda rs: sum(b'"scope"' in r.value for r in rs) >= 2)
        acted = [json.loads(r.value) for r in records if b'"scope"' in r.value]
        announced = deterministic_id("sci", "rescope", acted[0]["id"], "SciUpdated", ann, ML)
        sci = await ns.read_until(Topic.SCI, lambda rs: any(announced.encode() in r.value for r in rs))

    first, second = (a["data"] for a in acted)
    assert (first["action"], first["by"], first["detail"]["scope"]) == (
        "replay",
        "auditor",
        {"learner": ann, "skill": None},
    )
    assert second["detail"]["scope"] == {"learner": None, "skill": ML} and second["detail"]["documents"] == 1
    assert first["detail"]["announced"] >= 1
    assert any(announced.encode() in r.value for r in sci)  # ann's repaired score, announced once


def sessions_of(client: Any) -> Any:
    async def sessions(learner: str) -> int:
        answer = await client.get(f"/v1/scores/{learner}/{ML}")
        return int(answer.json()["sessions"]) if answer.status_code == 200 else 0

    return sessions


async def _offsets(db: Path) -> dict[tuple[str, int], int]:
    store = SqliteStore(str(db))
    try:
        return await store.offsets("sci")
    finally:
        await store.close()


async def _all(sessions: Any, learners: list[str], n: int) -> bool:
    return all([await sessions(learner) == n for learner in learners])
