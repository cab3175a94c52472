"""``lemma replay sci --as-of`` on the real broker beside a running sci service: a learner's
score audited from the log as of a past time is the one the service served and announced then,
and not today's, after more evidence and a recalibration; it reads only the partitions of the
learner's keys; the route's ``as_of`` is the deprecated name of ``freshness_at``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as lemma
from services.sci.app import bootstrap
from services.sci.calibration import Rating, calibrate
from services.sci.domain import EvidenceItem
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    RatersCalibrated,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
)
from shared.events.registry import Topic
from shared.log_window import logged_at, partition_of
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

pytestmark = pytest.mark.timeout(240)

ML = "machine-learning"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
PARTS = ("practice", "proof", "reliability", "freshness")


def rated(learner: str, rater: str, n: int, value: int) -> CloudEvent:
    at = T0 + timedelta(hours=n)
    payload = EvidenceRecorded(
        evidence_id=f"{learner}-{rater}-{n}",
        learner_id=learner,
        skill=ML,
        specialty="nlp",
        session_id=f"{learner}-s{n}",
        rater_id=rater,
        scores={"model-selection": value, "deployment": min(5, value + n % 2)},
        occurred_at=at,
    )
    return new_event(payload, source="evidence", time=at)


def cli_env(monkeypatch: pytest.MonkeyPatch, ns: Namespace, state: Path) -> None:
    monkeypatch.setenv("LEMMA_STATE_DIR", str(state))
    monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", ns.bootstrap)
    monkeypatch.setenv("LEMMA_KAFKA_PREFIX", ns.prefix)
    monkeypatch.setenv("LEMMA_SCI_CALIBRATION_MIN_RATINGS", "10")
    monkeypatch.setenv("COLUMNS", "200")


async def lemma_json(*args: str) -> dict[str, Any]:
    result = await asyncio.to_thread(CliRunner().invoke, lemma, list(args))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def route_part(audited: dict[str, Any]) -> dict[str, Any]:
    """What of an audited score the route answers too."""
    extra = {"facts", "ratings", "no_shows", "claimed", "newest_fact_at", "announced", "calibration_logged"}
    return {k: v for k, v in audited.items() if k not in extra}


async def test_a_score_audited_as_of_a_past_time_is_the_one_served_and_announced_then(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(
        state_dir=str(tmp_path), sci_calibration_interval_s=0.3, sci_calibration_min_ratings=10
    )
    cli_env(monkeypatch, ns, tmp_path)
    learners = [f"learner-{n}" for n in range(6)]
    ann = learners[0]
    judges = [f"judge-{n}" for n in range(4)]
    # judge 0 is lenient: a calibration moves the scores
    first = [
        rated(learner, judge, j, min(5, 2 + i % 3 + (j == 0)))
        for i, learner in enumerate(learners)
        for j, judge in enumerate(judges)
    ]
    first += [
        new_event(SkillClaimed(learner_id=ann, skill=ML, self_level="advanced"), source="passport"),
        new_event(
            SessionScheduled(session_id="missed", match_id="m", skill=ML, participants=(ann, learners[1])),
            source="sessions",
            time=T0,
        ),
        new_event(
            SessionAbandoned(
                session_id="missed", abandoned_by=learners[1], reason="partner-absent", no_show=ann
            ),
            source="sessions",
            time=T0 + timedelta(hours=1),
        ),
    ]
    later = [rated(learner, f"late-judge-{n}", 10 + n, 5) for learner in learners for n in range(2)]
    ratings = len(judges) * len(learners)

    async def served(client: httpx.AsyncClient, at: datetime, **params: str) -> dict[str, Any]:
        answer = await client.get(f"/v1/scores/{ann}/{ML}", params={"freshness_at": at.isoformat(), **params})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def calibrated_over(client: httpx.AsyncClient, n: int) -> bool:
        answer = await client.get(f"/v1/scores/{ann}/{ML}")
        return answer.status_code == 200 and answer.json()["calibration"]["ratings"] == n

    async with serving(bootstrap(settings)) as client:
        await ns.publish(first)
        await eventually(lambda: calibrated_over(client, ratings), timeout=60)
        digest = (await served(client, datetime.now(UTC)))["calibration"]["digest"]
        await ns.read_until(Topic.SCI, lambda rs: any(digest.encode() in r.value for r in rs))
        await asyncio.sleep(1.5)  # the outbox relays the re-scored SciUpdated with the calibration
        then = datetime.now(UTC)
        served_then = await served(client, then)
        await asyncio.sleep(0.1)  # later records are stamped after ``then``

        await ns.publish(later)
        await eventually(lambda: calibrated_over(client, ratings + len(later)), timeout=60)
        served_now_at_then = await served(client, then)
        now = datetime.now(UTC)
        served_now = await served(client, now)
        deprecated = await client.get(f"/v1/scores/{ann}/{ML}", params={"as_of": now.isoformat()})
        both = await client.get(
            f"/v1/scores/{ann}/{ML}", params={"as_of": now.isoformat(), "freshness_at": then.isoformat()}
        )
        sci_log = await ns.read_until(Topic.SCI, lambda rs: False, timeout=3)

    audited = await lemma_json("replay", "sci", "--as-of", then.isoformat(), "--learner", ann, "--json")
    audited_now = await lemma_json(
        "replay", "sci", "--as-of", now.isoformat(), "--learner", ann, "--skill", ML, "--json"
    )
    (score,) = audited["scores"]
    # the score the route served then, from the log alone, and not what the route says of then today
    assert route_part(score) == served_then
    assert served_now_at_then != served_then and served_now_at_then["sessions"] == served_then["sessions"] + 2
    assert route_part(audited_now["scores"][0]) == served_now
    assert (
        score["calibration_logged"]["digest"] == digest and score["calibration_logged"]["source"] == "logged"
    )
    assert score["calibration"]["ratings"] == ratings
    assert (score["facts"], score["no_shows"], score["claimed"]) == (len(judges) + 1, 1, True)

    # what a reader of lemma.sci.v1 held at ``then`` (the greatest (model, revision, calibration,
    # as_of, id) logged by then) is what the audit says was announced
    held: dict[str, Any] = {}
    for record in sci_log:
        event = decode(record.value)
        if logged_at(record) <= then and isinstance(event.data, SciUpdated) and event.data.learner_id == ann:
            u = event.data
            rank = (u.model, u.revision, u.calibration, u.as_of, event.id)
            if not held or rank > held["rank"]:
                held = {"rank": rank, "sci": u.sci, **{p: getattr(u, p) for p in PARTS}, "tier": u.tier}
    assert held["rank"][1:3] == (len(judges) + 1, ratings)
    assert score["announced"] == {k: v for k, v in held.items() if k != "rank"}
    assert any(isinstance(decode(r.value).data, RatersCalibrated) for r in sci_log)

    # only the partitions of the learner's keys were read (every one of sessions: keyed by session)
    log = audited["log"]
    assert log["partitions"][ns.topic(Topic.EVIDENCE)] == [partition_of(ann, 3)]
    assert log["partitions"][ns.topic(Topic.PASSPORT)] == [partition_of(ann, 3)]
    assert log["partitions"][ns.topic(Topic.SESSIONS)] == [0, 1, 2]
    assert log["records_decoded"] < log["records_read"]

    # ``as_of`` on the route is the deprecated name of ``freshness_at``
    assert deprecated.status_code == 200 and deprecated.json() == served_now
    assert deprecated.headers["Deprecation"].startswith("@") and "deprecation" in deprecated.headers["Link"]
    assert both.status_code == 422 and "freshness_at" in both.json()["detail"]


async def test_a_calibration_logged_with_its_biases_only_is_recomputed_from_the_ratings_logged_then(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts logged before they carried weights, prior and seniors: the audit recomputes the
    calibration from the ratings the log held when it was logged, and says whether the digest
    matched (the same calibration) or not (approximate)."""
    ns = private_kafka
    cli_env(monkeypatch, ns, tmp_path)
    learners = [f"old-{n}" for n in range(5)]
    evidence = [
        rated(learner, f"judge-{j}", j, min(5, 2 + i % 3 + (j == 0)))
        for i, learner in enumerate(learners)
        for j in range(3)
    ]
    ratings = sorted(
        {
            Rating(
                ratee_id=e.data.learner_id, rater_id=e.data.rater_id, rating_id=e.data.evidence_id, value=m
            )
            for e in evidence
            if isinstance(e.data, EvidenceRecorded)
            for m in [EvidenceItem.from_event(e.data).mean]
        }
    )
    correction = calibrate(ratings).correction()

    def legacy(digest: str, ratings: int) -> CloudEvent:
        part = RatersCalibrated(
            skill=ML,
            version=correction.version,
            digest=digest,
            ratings=ratings,
            part=0,
            parts=1,
            bias=dict(correction.bias),
        )
        return new_event(part, source="sci")

    await ns.publish([*evidence, legacy(correction.digest, len(ratings))])
    await asyncio.sleep(0.05)
    moment = datetime.now(UTC).isoformat()
    same = await lemma_json("replay", "sci", "--as-of", moment, "--learner", learners[0], "--json")
    await ns.publish([legacy("not-this-set", len(ratings) + 1)])
    await asyncio.sleep(0.05)
    other = await lemma_json(
        "replay", "sci", "--as-of", datetime.now(UTC).isoformat(), "--skill", ML, "--json"
    )
    (score,) = same["scores"]
    assert score["calibration_logged"]["source"] == "recomputed"
    assert score["calibration"] == {"version": correction.version, "ratings": 15, "digest": correction.digest}
    assert len(other["scores"]) == len(learners)
    assert {s["calibration_logged"]["source"] for s in other["scores"]} == {"approximate"}
    assert {s["calibration"]["digest"] for s in other["scores"]} == {"not-this-set"}
