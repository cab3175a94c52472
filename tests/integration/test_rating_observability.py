"""One rating through the services as processes (``python -m services.<name>``, as the stack and a
deployment start them) on the real broker: sessions, evidence, sci and passport.

Afterwards the passport's ``/metrics`` counts one more rating-to-passport latency, sci's shows the
learner in the range of the SCI its API gives, and the rating's correlation id (the one the rating
request answered with) is on the RatingSubmitted and on every event that came of it, and on the
JSON log lines of every service it passed: the request line and the fold of the rating in
sessions, the fold of the rating in evidence, of the evidence in sci, of the evidence and the
score in passport. Every line every process wrote is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.broker import create_topics
from deploy.local.processes import http_status, wait_until
from services.sci.distribution import RANGES, sci_range
from shared.auth import mint_token
from shared.events import decode
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.settings import Settings
from tests.integration.test_sessions_service import SCORES, match
from tests.support.kafka import Namespace, eventually
from tests.support.processes import free_port, stop_process

SERVICES = ("sessions", "evidence", "sci", "passport")
ML = "machine-learning"


@dataclass(frozen=True)
class Stack:
    ns: Namespace
    urls: dict[str, str]
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def stack(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The four services as processes on topics of their own, each logging JSON to its file."""
    state = tmp_path_factory.mktemp("observability")
    ns = Namespace(kafka, f"t{uuid.uuid4().hex[:10]}.")
    create_topics(KafkaConnection(kafka), prefix=ns.prefix)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    logs: dict[str, Path] = {}
    try:
        for name in SERVICES:
            port = free_port()
            env = {
                **os.environ,
                "LEMMA_ENVIRONMENT": "test",
                "LEMMA_KAFKA_BOOTSTRAP": kafka,
                "LEMMA_KAFKA_PREFIX": ns.prefix,
                "LEMMA_STATE_DIR": str(state),
                "LEMMA_PORT": str(port),
                "LEMMA_INSTANCE": "7",
                "LEMMA_LOG_FORMAT": "json",
                "LEMMA_LOG_LEVEL": "INFO",
                "LEMMA_SCI_DISTRIBUTION_INTERVAL_S": "0.5",
            }
            env.pop("LEMMA_STORE_URL", None)
            logs[name] = state / f"{name}.log"
            with logs[name].open("ab") as out:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            urls[name] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            wait_until(
                lambda name=name: http_status(f"{urls[name]}/readyz") == 200,  # type: ignore[misc]
                timeout=90,
                what=f"{name} ready",
                alive=lambda proc=proc: proc.poll() is None,  # type: ignore[misc]
            )
        yield Stack(ns, urls, logs)
    finally:
        for proc in procs.values():
            stop_process(proc)


@dataclass(frozen=True)
class Rated:
    session_id: str
    rater: str
    ratee: str
    correlation_id: str
    latencies_before: float


def auth(learner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(environment='test'), learner)}"}


async def metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def latencies(stack: Stack) -> float:
    found = await metrics(stack.urls["passport"])
    return found.get(("lemma_rating_to_passport_seconds_count", (("service", "passport"),)), 0.0)


async def rate_once(stack: Stack) -> Rated:
    """A session matched, started, completed and confirmed, then ann rates bob (counted at once)."""
    run = uuid.uuid4().hex[:8]
    sid, ann, bob = f"m-{run}", f"ann-{run}", f"bob-{run}"
    await stack.ns.publish(match(sid, ann, bob))
    async with httpx.AsyncClient(base_url=stack.urls["sessions"], timeout=30) as client:

        async def scheduled() -> bool:
            return (await client.get(f"/v1/sessions/{sid}", headers=auth(ann))).status_code == 200

        await eventually(scheduled, timeout=60)
        for who, step in ((ann, "start"), (ann, "complete"), (bob, "confirm")):
            answer = await client.post(f"/v1/sessions/{sid}/{step}", headers=auth(who))
            assert answer.status_code == 200, answer.text
        before = await latencies(stack)
        rated = await client.post(
            f"/v1/sessions/{sid}/ratings",
            json={"ratee_id": bob, "scores": SCORES},
            headers={**auth(ann), "X-Request-ID": f"req-{run}"},
        )
        assert rated.status_code == 201, rated.text
    return Rated(sid, ann, bob, rated.headers["X-Correlation-ID"], before)


@pytest.fixture(scope="module")
def rated(stack: Stack) -> Rated:
    return asyncio.run(rate_once(stack))


async def test_the_passport_times_the_rating_and_sci_counts_the_learner_in_its_range(
    stack: Stack, rated: Rated
) -> None:
    async def counted() -> float:
        return await latencies(stack) > rated.latencies_before

    await eventually(counted, timeout=60)
    found = await metrics(stack.urls["passport"])
    took = found[("lemma_rating_to_passport_seconds_sum", (("service", "passport"),))]
    assert 0 <= took < 60  # from the rating's own time: seconds here, not the session's age

    async with httpx.AsyncClient(base_url=stack.urls["sci"], timeout=10) as client:
        score = (await client.get(f"/v1/scores/{rated.ratee}/{ML}")).json()
    expected = sci_range(score["sci"])

    async def in_range() -> dict[str, float]:
        gauge = await metrics(stack.urls["sci"])
        by_range = {
            r: gauge.get(("lemma_sci_learners", (("range", r), ("service", "sci"), ("skill", ML))), -1.0)
            for r in RANGES
        }
        return by_range if by_range[expected] == 1 else {}

    by_range = await eventually(in_range, timeout=30)
    # this store's only score in the skill is the ratee's (the rater was not rated): one learner
    assert sum(by_range.values()) == 1, by_range


def lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for text in path.read_text().splitlines():
        if text.strip():
            out.append(json.loads(text))  # every line a process wrote is one JSON object
    return out


def folds(found: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [line for line in found if line.get("event_type", "").endswith(f".{event_type}.v1")]


async def test_one_ratings_correlation_id_follows_it_through_every_services_log(
    stack: Stack, rated: Rated
) -> None:
    chain = rated.correlation_id

    def reached_passport() -> bool:
        mine = [line for line in lines(stack.logs["passport"]) if line.get("correlation_id") == chain]
        return bool(folds(mine, "SciUpdated"))

    await eventually(reached_passport, timeout=60, interval=0.3)
    seen = {
        name: [line for line in lines(stack.logs[name]) if line.get("correlation_id") == chain]
        for name in SERVICES
    }
    for name, found in seen.items():
        assert found, f"{name} logged nothing under the rating's correlation id"
        assert {(line["service"], line["instance"]) for line in found} == {(name, "7")}
        assert all({"time", "level", "logger", "message"} <= set(line) for line in found)

    request = [line for line in seen["sessions"] if line["logger"] == "lemma.access"]
    assert len(request) == 1 and request[0]["route"] == "/v1/sessions/{session_id}/ratings"
    assert request[0]["status"] == 201 and request[0]["request_id"].startswith("req-")
    assert folds(seen["sessions"], "RatingSubmitted")  # sessions folds its own events too
    assert any("EvidenceRecorded" in line["message"] for line in folds(seen["evidence"], "RatingSubmitted"))
    assert any("SciUpdated" in line["message"] for line in folds(seen["sci"], "EvidenceRecorded"))
    assert folds(seen["passport"], "EvidenceRecorded") and folds(seen["passport"], "SciUpdated")
    # nothing else of the session is on this chain: its other commands keep the session's own
    assert not [line for line in seen["sessions"] if "SessionConfirmed" in line.get("event_type", "")]

    # and on the log itself: the rating carries the request's id, and everything that came of it
    def events_of(records: list[Any]) -> list[Any]:
        return [decode(r.value) for r in records]

    def all_there(records: list[Any]) -> bool:
        return any(
            e.type.endswith("SciUpdated.v1") and e.data.learner_id == rated.ratee for e in events_of(records)
        )

    sci = events_of(await stack.ns.read_until(Topic.SCI, all_there, timeout=20))
    sessions = events_of(await stack.ns.read_until(Topic.SESSIONS, lambda rs: len(rs) >= 5, timeout=20))
    evidence = events_of(await stack.ns.read_until(Topic.EVIDENCE, lambda rs: len(rs) >= 1, timeout=20))
    rating = [e for e in sessions if e.type.endswith("RatingSubmitted.v1") and e.subject == rated.session_id]
    assert [e.correlationid for e in rating] == [chain]
    assert [e.correlationid for e in evidence if e.data.session_id == rated.session_id] == [chain]
    assert chain in {e.correlationid for e in sci if e.data.learner_id == rated.ratee}
