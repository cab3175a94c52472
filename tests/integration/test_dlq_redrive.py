"""Dead letters on the real broker: listed and shown by ``lemma dlq``, and redriven after the
cause is gone: each record folded once, a second redrive a no-op, a record still bad reported
as such, and every redrive recorded on ``lemma.ops.v1`` with who did it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.dlq_commands import Letter, read_letters
from cli.main import app as lemma
from services.evidence.app import bootstrap
from services.evidence.domain import evidence_id_for
from shared.auth import mint_token
from shared.events import decode
from shared.events.envelope import deterministic_id
from shared.events.payloads import RatingSubmitted, SessionCompleted
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from tests.support.apps import ops_headers, serving
from tests.support.kafka import Namespace, eventually, publish_raw
from tests.support.population import session_burst

RATING = "lemma.sessions.RatingSubmitted.v1"


async def test_a_rating_that_came_too_early_is_redriven_once(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    scheduled, started, completed, confirmed, early, on_time = session_burst(1, seed=51)
    assert isinstance(completed.data, SessionCompleted) and isinstance(early.data, RatingSubmitted)
    dlq = ns.topic(Topic.DLQ)
    async with serving(bootstrap(settings)) as client:
        # a rating overtakes the session's completion: refused, dead-lettered
        await ns.publish([scheduled, started, early])
        await publish_raw(ns.bootstrap, ns.topic(Topic.SESSIONS), b"poison", b"not an event")
        letters = await eventually(lambda: _two(ns.bootstrap, dlq), timeout=30)
        await ns.publish([completed, confirmed, on_time])

        monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", ns.bootstrap)
        monkeypatch.setenv("LEMMA_KAFKA_PREFIX", ns.prefix)
        monkeypatch.setenv("COLUMNS", "300")
        monkeypatch.setenv("LEMMA_STATE_DIR", str(tmp_path))  # a wide terminal: the table on one line a row
        listed = await asyncio.to_thread(
            CliRunner().invoke, lemma, ["dlq", "list", "--state-dir", str(tmp_path)]
        )
        assert listed.exit_code == 0, listed.output
        assert RATING in listed.output and "(not JSON)" in listed.output and "2 dead letters" in listed.output
        rating_letter = next(x for x in letters if x.event_type == RATING)
        assert "arrived for a session that is started" in rating_letter.error
        shown = await asyncio.to_thread(
            CliRunner().invoke, lemma, ["dlq", "show", rating_letter.id, "--state-dir", str(tmp_path)]
        )
        assert shown.exit_code == 0 and rating_letter.error.splitlines()[0] in shown.output

        places = [{"topic": x.topic, "partition": x.partition, "offset": x.offset} for x in letters]
        gone = {"topic": ns.topic(Topic.SESSIONS), "partition": 0, "offset": 10**9}
        learner = {"Authorization": f"Bearer {mint_token(settings, 'learner-0001')}"}
        url, ops = "/ops/projections/evidence/redrive", ops_headers(settings)
        assert (await client.post(url, json={"records": places}, headers=learner)).status_code == 403
        assert (await client.post(url, json={"records": []}, headers=ops)).status_code == 422
        # a partition the cluster does not have is refused at once (reading it waited 40 s, then 500)
        for nowhere in (
            {"topic": f"{ns.prefix}no-such-topic", "partition": 0, "offset": 0},
            {"topic": ns.topic(Topic.SESSIONS), "partition": 999, "offset": 0},
        ):
            asked = time.monotonic()
            refused = await client.post(url, json={"records": [nowhere]}, headers=ops)
            assert refused.status_code == 422 and "no such partition" in refused.json()["detail"], (
                refused.text
            )
            assert time.monotonic() - asked < 10

        first = (await client.post(url, json={"records": [*places, gone]}, headers=ops)).json()
        assert first["outcomes"] == {"folded": 1, "still-refused": 1, "gone": 1}
        still = next(r for r in first["records"] if r["outcome"] == "still-refused")
        assert "Invalid JSON" in still["why"]
        again = (await client.post(url, json={"records": places}, headers=ops)).json()
        assert again["outcomes"] == {"already-redriven": 1, "still-refused": 1}

        # the redriven rating became evidence, announced once, with the id a normal fold gives it
        evidence_id = deterministic_id("evidence", early.id, "0")
        recorded = await ns.read_until(
            Topic.EVIDENCE, lambda rs: sum(decode(r.value).id == evidence_id for r in rs) >= 1
        )
        assert sum(decode(r.value).id == evidence_id for r in recorded) == 1
        trail = await client.get("/v1/evidence", params={"learner_id": early.data.ratee_id})
        assert evidence_id_for(early.data.rating_id) in {
            item["evidence_id"] for item in trail.json()["items"]
        }

        # a rebuild dead-letters the early rating again (same order in the log) and carries the
        # operator's redrive over, so the new version holds its evidence too
        rebuilt = await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", "evidence"])
        assert rebuilt.exit_code == 0 and "1 redriven records carried over" in rebuilt.output, rebuilt.output
        await asyncio.sleep(0.6)  # readers look the live version up at most every 0.5 s
        trail = await client.get("/v1/evidence", params={"learner_id": early.data.ratee_id})
        assert evidence_id_for(early.data.rating_id) in {
            item["evidence_id"] for item in trail.json()["items"]
        }
        third = (await client.post(url, json={"records": places}, headers=ops)).json()
        assert third["outcomes"] == {"already-redriven": 1, "still-refused": 1}

    acted = await ns.read_until(Topic.OPS, lambda rs: len(rs) >= 5)
    actions = [json.loads(r.value)["data"] for r in acted]
    who = [(a["action"], a["by"], a["projection"]) for a in actions[:2]]
    assert who == [("redrive", "operator", "evidence")] * 2
    assert actions[0]["detail"]["outcomes"] == {"folded": 1, "still-refused": 1, "gone": 1}
    assert [a["action"] for a in actions[2:]] == ["replay", "switch", "redrive"]


async def _two(bootstrap: str, topic: str) -> list[Letter]:
    letters = await read_letters(KafkaConnection(bootstrap), topic)
    return letters if len(letters) >= 2 else []
