"""The evidence service on a real broker and SQLite: sessions in, evidence trail and events out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.evidence.app import bootstrap
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.events import CloudEvent, decode, new_event
from shared.events.payloads import RatingSubmitted, SessionCompleted, SessionScheduled
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import ops_headers, serving
from tests.support.kafka import eventually, publish, publish_raw, read_until

SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}


def as_(cfg: Settings, learner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(cfg, learner)}"}


def settings(kafka: str, tmp_path: Path) -> Settings:
    return Settings(environment="test", kafka_bootstrap=kafka, state_dir=str(tmp_path))


async def test_completed_session_ratings_become_evidence(kafka: str, tmp_path: Path) -> None:
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
    cfg = settings(kafka, tmp_path)
    async with serving(bootstrap(cfg)) as client:
        await publish(kafka, events)
        await publish(kafka, events[-1:])  # a duplicate delivery must not count twice
        await publish_raw(kafka, Topic.SESSIONS.value, sid.encode(), b"{not json")

        async def trail() -> list[dict[str, object]]:
            r = await client.get("/v1/evidence", params={"learner_id": "bob"}, headers=as_(cfg, "bob"))
            items: list[dict[str, object]] = r.json()["items"]
            return [i for i in items if i["session_id"] == sid]

        items = await eventually(trail)  # only this test's session: other tests share the broker
        assert isinstance(items, list) and len(items) == 1
        assert items[0]["session_id"] == sid and items[0]["rater_id"] == "ann"
        assert items[0]["specialty"] == "nlp" and items[0]["format"] == "build"
        assert items[0]["scores"] == SCORES
        # anyone else (the rater too) sees what the passport shows: no rater, session or scores
        shown = {"evidence_id", "learner_id", "skill", "specialty", "format", "occurred_at", "mean_score"}
        for caller in ({}, as_(cfg, "ann")):
            r = await client.get("/v1/evidence", params={"learner_id": "bob"}, headers=caller)
            public = [i for i in r.json()["items"] if i["evidence_id"] == items[0]["evidence_id"]]
            assert len(public) == 1 and {k for k, v in public[0].items() if v is not None} == shown
            assert public[0]["mean_score"] == items[0]["mean_score"]
        ops = await client.get("/v1/evidence", params={"learner_id": "bob"}, headers=ops_headers(cfg))
        assert any(i["rater_id"] == "ann" for i in ops.json()["items"])
        forged = {"Authorization": "Bearer not-a-token"}  # a token that is sent must be good
        assert (
            await client.get("/v1/evidence", params={"learner_id": "bob"}, headers=forged)
        ).status_code == 401

        recorded = await read_until(
            kafka,
            Topic.EVIDENCE.value,
            lambda rs: any(decode(r.value).data.session_id == sid for r in rs),  # type: ignore[attr-defined]
        )
        mine = [decode(r.value) for r in recorded if json.loads(r.value)["data"]["session_id"] == sid]
        assert len({e.id for e in mine}) == 1
        assert mine[0].key == "bob"

        dead = await read_until(
            kafka, Topic.DLQ.value, lambda rs: any(json.loads(r.value)["data"]["key"] == sid for r in rs)
        )
        letter = next(json.loads(r.value)["data"] for r in dead if json.loads(r.value)["data"]["key"] == sid)
        assert letter["consumer"] == "evidence" and letter["topic"] == Topic.SESSIONS.value
        assert "Invalid JSON" in letter["error"] or "json" in letter["error"].lower()

        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "lemma_dead_letters_total" in metrics


async def test_an_empty_store_is_rebuilt_from_the_start_of_the_log(kafka: str, tmp_path: Path) -> None:
    """The consumer group has committed offsets already; the store's own (absent) offsets win."""
    sid = f"s-{tmp_path.name}"
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    events = a_session(sid, "machine-learning", ("cat", "dan"), t0, [("dan", "cat", SCORES)])
    for generation in ("first", "rebuilt"):
        state = tmp_path / generation
        cfg = settings(kafka, state)
        async with serving(bootstrap(cfg)) as client:
            if generation == "first":
                await publish(kafka, events)

            cat = as_(cfg, "cat")

            async def trail(cat: dict[str, str] = cat) -> list[dict[str, object]]:
                r = await client.get("/v1/evidence", params={"learner_id": "cat"}, headers=cat)
                items: list[dict[str, object]] = r.json()["items"]
                return [i for i in items if i["session_id"] == sid]

            assert len(await eventually(trail)) == 1


def a_session(
    sid: str, skill: str, pair: tuple[str, str], at: datetime, ratings: list[tuple[str, str, dict[str, int]]]
) -> list[CloudEvent]:
    """Scheduled and completed at ``at``; rating n at ``at`` + n+1 minutes (its key's time)."""
    events = [
        new_event(
            SessionScheduled(
                session_id=sid, match_id=sid, skill=skill, specialty=None, format=None, participants=pair
            ),
            source="test",
            time=at,
        ),
        new_event(
            SessionCompleted(session_id=sid, completed_by=pair[0], duration_s=60), source="test", time=at
        ),
    ]
    for n, (rater, ratee, scores) in enumerate(ratings):
        rating = RatingSubmitted(
            rating_id=f"r-{sid}-{rater}",
            session_id=sid,
            rater_id=rater,
            ratee_id=ratee,
            skill=skill,
            scores=scores,
        )
        events.append(new_event(rating, source="test", time=at + timedelta(minutes=n + 1)))
    return events


def rubric(skill: str) -> dict[str, int]:
    found = get_catalog().get(skill)
    assert found is not None
    return {d: 3 for d in sorted(found.rubric_ids)}


async def test_a_rating_that_does_not_fit_the_rubric_is_dead_lettered(kafka: str, tmp_path: Path) -> None:
    sid = f"bad-{tmp_path.name}"
    ann, bob = f"ann-{sid}", f"bob-{sid}"
    ml = "machine-learning"
    events = a_session(sid, ml, (ann, bob), datetime(2026, 11, 3, 9, 0, tzinfo=UTC), [(ann, bob, {})])
    events += a_session(
        f"{sid}-ok", ml, (ann, bob), datetime(2026, 11, 3, 10, 0, tzinfo=UTC), [(bob, ann, rubric(ml))]
    )
    async with serving(bootstrap(settings(kafka, tmp_path))) as client:
        client.headers.update(ops_headers(settings(kafka, tmp_path)))
        await publish(kafka, events)
        dead = await read_until(
            kafka, Topic.DLQ.value, lambda rs: any(json.loads(r.value)["data"]["key"] == sid for r in rs)
        )
        letter = next(json.loads(r.value)["data"] for r in dead if json.loads(r.value)["data"]["key"] == sid)
        assert letter["consumer"] == "evidence" and letter["topic"] == Topic.SESSIONS.value
        assert "missing rubric dimensions" in letter["error"]

        async def ann_trail() -> list[dict[str, object]]:
            r = await client.get("/v1/evidence", params={"learner_id": ann})
            items: list[dict[str, object]] = r.json()["items"]
            return items

        assert [i["session_id"] for i in await eventually(ann_trail)] == [f"{sid}-ok"]  # folded after
        r = await client.get("/v1/evidence", params={"learner_id": bob})
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}


async def test_the_trail_is_newest_first_across_skills_and_only_the_learners(
    kafka: str, tmp_path: Path
) -> None:
    run = tmp_path.name
    me, other, nested = f"me-{run}", f"pat-{run}", f"me-{run}/y"  # ``nested`` extends my id
    t0 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
    ml, be, de = "machine-learning", "backend-development", "data-engineering"
    events = [
        # the newest item is in the skill whose name sorts first: a skill-major scan puts it last
        *a_session(f"ml-{run}", ml, (me, other), t0, [(other, me, rubric(ml))]),
        *a_session(f"de-{run}", de, (me, other), t0 + timedelta(hours=1), [(other, me, rubric(de))]),
        *a_session(f"be-{run}", be, (me, other), t0 + timedelta(hours=2), [(other, me, rubric(be))]),
        *a_session(f"n-{run}", be, (nested, other), t0 + timedelta(hours=3), [(other, nested, rubric(be))]),
    ]
    async with serving(bootstrap(settings(kafka, tmp_path))) as client:
        client.headers.update(ops_headers(settings(kafka, tmp_path)))
        await publish(kafka, events)

        async def nested_trail() -> list[dict[str, object]]:
            r = await client.get("/v1/evidence", params={"learner_id": nested})
            items: list[dict[str, object]] = r.json()["items"]
            return items

        assert len(await eventually(nested_trail)) == 1  # published last, so all is folded now

        r = await client.get("/v1/evidence", params={"learner_id": me})
        assert r.status_code == 200
        assert [i["skill"] for i in r.json()["items"]] == [be, de, ml]
        assert r.json()["next_cursor"] is None

        walked: list[str] = []
        cursor: str | None = None
        while True:
            params = {"learner_id": me, "limit": "1", **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/evidence", params=params)).json()
            walked += [i["skill"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == [be, de, ml]

        r = await client.get("/v1/evidence", params={"learner_id": me, "skill": be, "limit": "1"})
        assert [i["session_id"] for i in r.json()["items"]] == [f"be-{run}"]
        assert r.json()["next_cursor"] is None  # ``nested``'s be item is not mine

        first = (await client.get("/v1/evidence", params={"learner_id": me, "limit": "1"})).json()
        for params in (
            {"learner_id": me, "skill": be, "cursor": first["next_cursor"]},  # the other keyspace
            {"learner_id": nested, "cursor": first["next_cursor"]},  # another learner
            {"learner_id": me, "cursor": "é"},  # not ASCII
            {"learner_id": me, "cursor": "not-a-cursor"},
        ):
            r = await client.get("/v1/evidence", params=params)
            assert r.status_code == 422, params
            assert r.headers["content-type"].startswith("application/problem+json")
