"""The evidence service on a real broker and SQLite: sessions in, evidence trail and events out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from services.evidence.app import bootstrap
from shared.events import decode, new_event
from shared.events.payloads import RatingSubmitted, SessionCompleted, SessionScheduled
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, publish_raw, read_until

SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}


def settings(tansu: str, tmp_path: Path) -> Settings:
    return Settings(environment="test", kafka_bootstrap=tansu, state_dir=str(tmp_path))


async def test_completed_session_ratings_become_evidence(tansu: str, tmp_path: Path) -> None:
    sid = f"s-{tmp_path.name}"
    t0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    events = [
        new_event(
            SessionScheduled(
                session_id=sid,
                match_id=sid,
                skill="machine-learning",
                specialty="nlp",
                format="build",
                participants=("ann", "bob"),
            ),
            source="test",
            time=t0,
        ),
        new_event(
            SessionCompleted(session_id=sid, completed_by="ann", duration_s=1800), source="test", time=t0
        ),
        new_event(
            RatingSubmitted(
                rating_id=f"r1-{sid}",
                session_id=sid,
                rater_id="ann",
                ratee_id="bob",
                skill="machine-learning",
                specialty="nlp",
                scores=SCORES,
            ),
            source="test",
            time=t0,
        ),
    ]
    async with serving(bootstrap(settings(tansu, tmp_path))) as client:
        await publish(tansu, events)
        await publish(tansu, events[-1:])  # a duplicate delivery must not count twice
        await publish_raw(tansu, Topic.SESSIONS.value, sid.encode(), b"{not json")

        async def trail() -> list[dict[str, object]]:
            r = await client.get("/v1/evidence", params={"learner_id": "bob"})
            items: list[dict[str, object]] = r.json()["items"]
            return items

        items = await eventually(trail)
        assert isinstance(items, list) and len(items) == 1
        assert items[0]["session_id"] == sid and items[0]["rater_id"] == "ann"
        assert items[0]["specialty"] == "nlp" and items[0]["format"] == "build"

        recorded = await read_until(
            tansu,
            Topic.EVIDENCE.value,
            lambda rs: any(decode(r.value).data.session_id == sid for r in rs),  # type: ignore[attr-defined]
        )
        mine = [decode(r.value) for r in recorded if json.loads(r.value)["data"]["session_id"] == sid]
        assert len({e.id for e in mine}) == 1
        assert mine[0].key == "bob"

        dead = await read_until(
            tansu, Topic.DLQ.value, lambda rs: any(json.loads(r.value)["data"]["key"] == sid for r in rs)
        )
        letter = next(json.loads(r.value)["data"] for r in dead if json.loads(r.value)["data"]["key"] == sid)
        assert letter["consumer"] == "evidence" and letter["topic"] == Topic.SESSIONS.value
        assert "Invalid JSON" in letter["error"] or "json" in letter["error"].lower()

        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "lemma_dead_letters_total" in metrics


async def test_an_empty_store_is_rebuilt_from_the_start_of_the_log(tansu: str, tmp_path: Path) -> None:
    """The consumer group has committed offsets already; the store's own (absent) offsets win."""
    sid = f"s-{tmp_path.name}"
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    events = [
        new_event(
            SessionScheduled(
                session_id=sid,
                match_id=sid,
                skill="machine-learning",
                specialty=None,
                format=None,
                participants=("cat", "dan"),
            ),
            source="test",
            time=t0,
        ),
        new_event(
            SessionCompleted(session_id=sid, completed_by="cat", duration_s=60), source="test", time=t0
        ),
        new_event(
            RatingSubmitted(
                rating_id=f"r-{sid}",
                session_id=sid,
                rater_id="dan",
                ratee_id="cat",
                skill="machine-learning",
                scores=SCORES,
            ),
            source="test",
            time=t0,
        ),
    ]
    for generation in ("first", "rebuilt"):
        state = tmp_path / generation
        async with serving(bootstrap(settings(tansu, state))) as client:
            if generation == "first":
                await publish(tansu, events)

            async def trail() -> list[dict[str, object]]:
                r = await client.get("/v1/evidence", params={"learner_id": "cat"})
                items: list[dict[str, object]] = r.json()["items"]
                return [i for i in items if i["session_id"] == sid]

            assert len(await eventually(trail)) == 1
