"""The matching service on a real broker and SQLite: levels folded from claims and SCI updates,
tickets queued and paired through the log, MatchFound published on ``lemma.matching.v1``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.matching.app import MatchingRules, bootstrap
from shared.auth import mint_token
from shared.events import decode, new_event
from shared.events.payloads import MatchCancelled, MatchFound, SciUpdated, SkillClaimed
from shared.events.registry import Topic
from shared.service import ServiceContext
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, read_until

ML = "machine-learning"


def settings(tansu: str, tmp_path: Path) -> Settings:
    return Settings(environment="test", kafka_bootstrap=tansu, state_dir=str(tmp_path))


async def test_closest_levels_are_paired_and_the_match_is_published(tansu: str, tmp_path: Path) -> None:
    cfg = settings(tansu, tmp_path)
    run = uuid.uuid4().hex[:8]
    ann, bob, cat = (f"{name}-{run}" for name in ("ann", "bob", "cat"))
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (ann, bob, cat)}
    t0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    claims = [
        new_event(SkillClaimed(learner_id=ann, skill=ML, self_level="expert"), source="test", time=t0),
        new_event(SkillClaimed(learner_id=bob, skill=ML, self_level="expert"), source="test", time=t0),
        new_event(SkillClaimed(learner_id=cat, skill=ML, self_level="advanced"), source="test", time=t0),
        # ann's SCI says beginner: an SCI wins over the self-level
        new_event(
            SciUpdated(
                learner_id=ann,
                skill=ML,
                sci=0,
                practice=0,
                proof=0,
                reliability=0,
                freshness=0,
                tier=2,
                sessions=1,
                as_of=t0,
            ),
            source="test",
            time=t0,
        ),
    ]
    # a window of one level that never widens, so the far-apart ann and bob both wait
    app = bootstrap(cfg, rules=MatchingRules(expansions="0:1.0"))
    ctx = app.state.ctx
    assert isinstance(ctx, ServiceContext)
    async with serving(app) as client:
        await publish(tansu, claims)

        async def levels_known() -> bool:
            docs = await ctx.store.get_many("levels", [f"{who}/{ML}" for who in (ann, bob, cat)])
            found = {key.split("/")[0]: doc["level"] for key, doc in docs.items()}
            return found == {ann: 1.0, bob: 4.0, cat: 3.0}

        await eventually(levels_known)

        async def request(who: str, **body: object) -> httpx.Response:
            return await client.post("/v1/match-requests", json={"skill": ML, **body}, headers=auth[who])

        r_ann = await request(ann, specialty="nlp")
        assert r_ann.status_code == 202, r_ann.text
        assert r_ann.json()["status"] == "waiting" and r_ann.json()["level"] == 1.0
        assert r_ann.json()["session_id"] is None and r_ann.json()["specialty"] == "nlp"
        r_bob = await request(bob, format="build")
        assert r_bob.status_code == 202 and r_bob.json()["status"] == "waiting"  # gap 3: too far from ann
        r_cat = await request(cat)
        assert r_cat.status_code == 202, r_cat.text
        # the matcher decides once this process owns the skill; wait for the outcome, no polling
        waited = await client.get(f"/v1/match-requests/{r_cat.json()['ticket_id']}", params={"wait": 30})
        matched = waited.json()
        assert matched["status"] == "matched" and matched["partner_id"] == bob and matched["level"] == 3.0
        session_id = matched["session_id"]
        assert session_id

        bobs = (await client.get(f"/v1/match-requests/{r_bob.json()['ticket_id']}")).json()
        assert bobs["status"] == "matched" and bobs["session_id"] == session_id and bobs["partner_id"] == cat
        assert bobs["learner_id"] == bob and bobs["requested_at"]

        again = await request(ann, specialty="nlp")
        assert again.status_code == 200 and again.json()["ticket_id"] == r_ann.json()["ticket_id"]

        ann_ticket = f"/v1/match-requests/{r_ann.json()['ticket_id']}"
        assert (await client.delete(ann_ticket, headers=auth[cat])).status_code == 403
        assert (await client.delete(ann_ticket)).status_code == 401
        cat_ticket = f"/v1/match-requests/{matched['ticket_id']}"
        assert (await client.delete(cat_ticket, headers=auth[cat])).status_code == 409
        for _ in range(2):  # cancelling twice answers the same
            gone = await client.delete(ann_ticket, headers=auth[ann])
            assert gone.status_code == 200 and gone.json()["status"] == "cancelled"

        unknown = await request(ann, skill="basket-weaving")
        assert unknown.status_code == 422 and "unknown skill" in unknown.json()["detail"]
        assert (await request(ann, specialty="knitting")).status_code == 422
        no_token = await client.post("/v1/match-requests", json={"skill": ML})
        assert no_token.status_code == 401
        assert no_token.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/v1/match-requests/nope")).status_code == 404

        def mine(records: list[object]) -> list[object]:
            return [
                e.data
                for e in map(decode, (r.value for r in records))  # type: ignore[attr-defined]
                if getattr(e.data, "match_id", None) == session_id
                or getattr(e.data, "ticket_id", None) == r_ann.json()["ticket_id"]
            ]

        records = await read_until(
            tansu,
            Topic.MATCHING.value,
            lambda rs: (
                any(isinstance(p, MatchCancelled) for p in mine(list(rs)))
                and any(isinstance(p, MatchFound) for p in mine(list(rs)))
            ),
        )
        found = [r for r in records if json.loads(r.value)["data"].get("match_id") == session_id]
        assert len(found) == 1 and found[0].key == ML.encode()
        event = decode(found[0].value).data
        assert isinstance(event, MatchFound)
        assert {t.learner_id for t in event.tickets} == {bob, cat}
        assert event.level_gap == 1.0 and event.format == "build" and event.skill == ML
        cancels = [p for p in mine(list(records)) if isinstance(p, MatchCancelled)]
        assert len(cancels) == 1 and cancels[0].reason == "cancelled by learner"

        assert (await client.get("/readyz")).status_code == 200
