"""The sessions service on a real broker and SQLite: the requests and their MatchFound in, a session
driven over HTTP, its events out on ``lemma.sessions.v1`` keyed by session id, and every refusal on
the way. A conflicting second decision naming an already matched ticket schedules nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import ConsumerRecord

from services.sessions.app import bootstrap
from shared.auth import mint_token
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchedTicket, MatchFound, MatchRequested
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, read_until

SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}


def settings(kafka: str, tmp_path: Path) -> Settings:
    return Settings(environment="test", kafka_bootstrap=kafka, state_dir=str(tmp_path))


T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def requested(ticket_id: str, learner: str) -> CloudEvent:
    payload = MatchRequested(
        ticket_id=ticket_id, learner_id=learner, skill="machine-learning", level=2.0, requested_at=T0
    )
    return new_event(payload, source="matching", time=T0)


def match_found(match_id: str, a: str, b: str, tickets: tuple[str, str] | None = None) -> CloudEvent:
    ta, tb = tickets or (f"{match_id}-a", f"{match_id}-b")
    payload = MatchFound(
        match_id=match_id,
        skill="machine-learning",
        specialty="nlp",
        format="build",
        tickets=(
            MatchedTicket(ticket_id=ta, learner_id=a, level=2.0),
            MatchedTicket(ticket_id=tb, learner_id=b, level=2.3),
        ),
        level_gap=0.3,
        waited_ms=4200,
    )
    return new_event(payload, source="matching", time=T0)


def match(match_id: str, a: str, b: str) -> list[CloudEvent]:
    """What the matching service writes: both requests first (same partition), then the decision."""
    return [requested(f"{match_id}-a", a), requested(f"{match_id}-b", b), match_found(match_id, a, b)]


async def test_session_lifecycle_ratings_and_refusals(kafka: str, tmp_path: Path) -> None:
    cfg = settings(kafka, tmp_path)
    run = uuid.uuid4().hex[:8]
    sid, other = f"m-{run}", f"m-{run}-2"
    ann, bob, cat = f"ann-{run}", f"bob-{run}", f"cat-{run}"
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (ann, bob, cat)}
    *requests, found = match(sid, ann, bob)
    waits = requested(f"t-{run}", cat)  # cat waits; nobody pairs her until the conflict below
    copy = found.model_copy(update={"id": str(uuid.uuid4())})  # a second copy under a new event id
    # a second matcher (a rebalance) paired ann's ticket with cat's too: the log holds it second
    conflict = match_found(f"m-{run}-x", ann, cat, (f"{sid}-a", f"t-{run}"))
    # all keyed by the skill: one partition, folded in this order; the last one is the sentinel
    await publish(kafka, [*requests, found, waits, found, copy, conflict, *match(other, ann, bob)])

    async with serving(bootstrap(cfg)) as client:

        async def session(session_id: str) -> dict[str, object] | None:
            r = await client.get(f"/v1/sessions/{session_id}", headers=auth[ann])
            return r.json() if r.status_code == 200 else None

        await eventually(lambda: session(other), timeout=20)
        assert await session(f"m-{run}-x") is None  # the void decision scheduled nothing
        doc = await session(sid)
        assert doc is not None
        assert doc["status"] == "scheduled" and doc["participants"] == [ann, bob]
        assert (doc["skill"], doc["specialty"], doc["format"]) == ("machine-learning", "nlp", "build")
        assert doc["match_id"] == sid and doc["ratings"] == []

        async def post(path: str, who: str | None, body: object = None) -> httpx.Response:
            return await client.post(f"/v1/sessions/{path}", json=body, headers=auth[who] if who else {})

        rating = {"ratee_id": bob, "scores": SCORES, "comment": "sharp on metrics"}

        # refusals before the session runs
        assert (await post(f"{sid}/start", None)).status_code == 401
        assert (await post(f"{sid}/start", cat)).status_code == 403
        assert (await post(f"m-nope-{run}/start", ann)).status_code == 404
        assert (await client.get(f"/v1/sessions/m-nope-{run}", headers=auth[ann])).status_code == 404
        # who met whom is for the two of them and operators only
        assert (await client.get(f"/v1/sessions/{sid}")).status_code == 401
        assert (await client.get(f"/v1/sessions/{sid}", headers=auth[cat])).status_code == 403
        ops = {"Authorization": f"Bearer {mint_token(cfg, 'operator', role='ops')}"}
        assert (await client.get(f"/v1/sessions/{sid}", headers=ops)).json()["participants"] == [ann, bob]
        assert (await post(f"{sid}/complete", ann)).status_code == 409
        early = await post(f"{sid}/ratings", ann, rating)
        assert early.status_code == 409
        assert early.headers["content-type"].startswith("application/problem+json")

        # start (twice: idempotent), complete by one (twice: idempotent), confirmed by the other
        r = await post(f"{sid}/start", ann)
        assert r.status_code == 200 and r.json()["status"] == "started" and r.json()["started_at"]
        assert (await post(f"{sid}/start", bob)).status_code == 200
        assert (await post(f"{sid}/ratings", ann, rating)).status_code == 409
        r = await post(f"{sid}/complete", bob)
        assert r.status_code == 200 and r.json()["status"] == "completed"
        assert r.json()["duration_s"] >= 0 and r.json()["completed_at"]
        assert r.json()["confirmation"]["state"] == "pending"
        assert (await post(f"{sid}/complete", bob)).status_code == 200
        r = await post(f"{sid}/confirm", ann)
        assert r.status_code == 200 and r.json()["confirmation"]["state"] == "confirmed"
        assert (await post(f"{sid}/complete", ann)).status_code == 200
        assert (await post(f"{sid}/abandon", ann, {"reason": "schedule-conflict"})).status_code == 409

        # rating refusals after completion
        missing = {k: v for k, v in SCORES.items() if k != "deployment"}
        for bad in ({**rating, "scores": missing}, {**rating, "scores": {**SCORES, "charisma": 4}}):
            r = await post(f"{sid}/ratings", ann, bad)
            assert r.status_code == 422 and "rubric" in r.json()["detail"]
        assert (await post(f"{sid}/ratings", ann, {**rating, "ratee_id": ann})).status_code == 422
        assert (await post(f"{sid}/ratings", cat, rating)).status_code == 403
        assert (await post(f"{sid}/ratings", None, rating)).status_code == 401

        # the two ratings, and a second one by the same rater
        r = await post(f"{sid}/ratings", ann, rating)
        assert r.status_code == 201
        assert r.json()["rater_id"] == ann and r.json()["ratee_id"] == bob and r.json()["rating_id"]
        assert (await post(f"{sid}/ratings", ann, rating)).status_code == 409
        assert (await post(f"{sid}/ratings", bob, {"ratee_id": ann, "scores": SCORES})).status_code == 201

        doc = await session(sid)
        assert doc is not None and doc["status"] == "completed"
        # read as ann: her comment on bob is for bob (and operators), not shown back to her
        assert doc["ratings"] == [
            {"rater_id": ann, "ratee_id": bob, "comment": None},
            {"rater_id": bob, "ratee_id": ann, "comment": None},
        ]

        # abandon the other session: the reason is a code, never free text; no_show must be the partner
        r = await post(f"{other}/abandon", ann, {"reason": "Bob was rude and never came", "no_show": bob})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert (
            await post(f"{other}/abandon", ann, {"reason": "partner-absent", "no_show": cat})
        ).status_code == 422
        r = await post(f"{other}/abandon", ann, {"reason": "partner-absent", "no_show": bob})
        assert r.status_code == 200 and r.json()["status"] == "abandoned" and r.json()["no_show"] == bob
        assert r.json()["abandon_reason"] == "partner-absent"
        assert r.json()["no_show_claim"]["state"] == "pending"  # bob may contest it
        assert (await post(f"{other}/start", bob)).status_code == 409

        def mine(records: list[ConsumerRecord[bytes, bytes]]) -> list[CloudEvent]:
            # the topic is shared with other tests (some write malformed records on purpose)
            return [decode(r.value) for r in records if r.key == sid.encode()]

        records = await read_until(
            kafka,
            Topic.SESSIONS.value,
            lambda rs: sum(e.type.endswith("RatingSubmitted.v1") for e in mine(list(rs))) >= 2,
        )
        events = mine(list(records))
        assert not [r for r in records if r.key == f"m-{run}-x".encode()]  # nothing from the void decision
        assert [e.type.split(".")[2] for e in events] == [
            "SessionScheduled",
            "SessionStarted",
            "SessionCompleted",
            "SessionConfirmed",
            "RatingSubmitted",
            "RatingSubmitted",
        ]
        # the session is one story, from the match on; each rating starts its own (its request's)
        assert {e.correlationid for e in events[:4]} == {found.correlationid}
        ratings = {e.correlationid for e in events[4:]}
        assert len(ratings) == 2 and found.correlationid not in ratings
        assert events[0].causationid == found.id
        assert events[4].data.rater_id == ann and events[4].data.scores == SCORES  # type: ignore[attr-defined]
