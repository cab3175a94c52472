"""The matching service on a real broker and SQLite: levels folded from claims and SCI updates,
tickets queued and paired through the log, MatchFound published on ``lemma.matching.v1``; a
replica joining on the same store takes skills with their waiting tickets."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.matching.app import MatchingRules, bootstrap
from services.matching.projection import requeue_ticket_id
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchFound,
    SciUpdated,
    SessionAbandoned,
    SkillClaimed,
)
from shared.events.registry import Topic
from shared.service import ServiceContext
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

ML = "machine-learning"


def settings(ns: Namespace, tmp_path: Path) -> Settings:
    return ns.settings(state_dir=str(tmp_path))


async def test_closest_levels_are_paired_and_the_match_is_published(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    cfg = settings(private_kafka, tmp_path)
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
        await private_kafka.publish(claims)

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
        cat_path = f"/v1/match-requests/{r_cat.json()['ticket_id']}"
        waited = await client.get(cat_path, params={"wait": 30}, headers=auth[cat])
        matched = waited.json()
        assert matched["status"] == "matched" and matched["partner_id"] == bob and matched["level"] == 3.0
        session_id = matched["session_id"]
        assert session_id

        bob_path = f"/v1/match-requests/{r_bob.json()['ticket_id']}"
        # a ticket is its learner's (and operators') to read, long-polls included
        assert (await client.get(bob_path)).status_code == 401
        assert (await client.get(bob_path, headers=auth[cat])).status_code == 403
        assert (await client.get(bob_path, params={"wait": 1}, headers=auth[ann])).status_code == 403
        ops = {"Authorization": f"Bearer {mint_token(cfg, 'operator', role='ops')}"}
        assert (await client.get(bob_path, headers=ops)).json()["learner_id"] == bob
        bobs = (await client.get(bob_path, headers=auth[bob])).json()
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
        assert (await client.get("/v1/match-requests/nope", headers=auth[ann])).status_code == 404

        def mine(records: list[object]) -> list[object]:
            return [
                e.data
                for e in map(decode, (r.value for r in records))  # type: ignore[attr-defined]
                if getattr(e.data, "match_id", None) == session_id
                or getattr(e.data, "ticket_id", None) == r_ann.json()["ticket_id"]
            ]

        records = await private_kafka.read_until(
            Topic.MATCHING,
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
        metrics = (await client.get("/metrics")).text
        for name in (
            "lemma_matching_queue_depth{",
            "lemma_matching_time_to_match_seconds_count",
            "lemma_matching_level_gap_count",
        ):
            assert name in metrics, name


def claim(learner: str, level: str, t0: datetime) -> CloudEvent:
    return new_event(SkillClaimed(learner_id=learner, skill=ML, self_level=level), source="test", time=t0)


async def test_waiting_tickets_survive_a_restart_and_a_rebuild(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    """Kill the matcher with tickets waiting: the same tickets wait after a restart on the same
    store, and after a rebuild into an empty one (the queue is a projection of the log)."""
    run = uuid.uuid4().hex[:8]
    learners = {
        f"{name}-{run}": level
        for name, level in (("lo", "beginner"), ("mid", "intermediate"), ("hi", "expert"))
    }
    t0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    cfg = settings(private_kafka, tmp_path / "first")
    tight = MatchingRules(expansions="0:0.1")  # nobody pairs: 1, 2 and 4 are too far apart
    await private_kafka.publish([claim(who, level, t0) for who, level in learners.items()])

    def auth_of(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(cfg, who)}"}

    app = bootstrap(cfg, rules=tight)
    async with serving(app) as client:

        async def levels_known() -> bool:
            docs = await app.state.ctx.store.get_many("levels", [f"{who}/{ML}" for who in learners])
            return len(docs) == len(learners)

        await eventually(levels_known)
        tickets = {}
        for who in learners:
            r = await client.post(
                "/v1/match-requests",
                json={"skill": ML},
                headers={"Authorization": f"Bearer {mint_token(cfg, who)}"},
            )
            assert r.status_code == 202 and r.json()["status"] == "waiting", r.text
            tickets[r.json()["ticket_id"]] = who

    async def waiting_of(store_app: object) -> set[str]:
        ctx = store_app.app.state.ctx if hasattr(store_app, "app") else store_app.state.ctx  # type: ignore[attr-defined]
        rows = await ctx.store.scan("waiting", f"{ML}/", limit=10_000)
        return {doc["ticket_id"] for _, doc in rows} & set(tickets)

    for label, cfg_next in (("restart", cfg), ("rebuild", settings(private_kafka, tmp_path / "empty"))):
        again = bootstrap(cfg_next, rules=tight)
        async with serving(again) as client:

            async def settled(app_: FastAPI = again) -> set[str] | None:
                found = await waiting_of(app_)
                return found if found == set(tickets) else None

            assert await eventually(settled, timeout=30) == set(tickets), label
            for ticket, owner in tickets.items():
                body = (await client.get(f"/v1/match-requests/{ticket}", headers=auth_of(owner))).json()
                assert body["status"] == "waiting", (label, body)


async def test_a_partner_who_showed_up_is_put_back_first_and_a_no_show_is_busy_until_it_ends(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    cfg = settings(private_kafka, tmp_path)
    run = uuid.uuid4().hex[:8]
    ann, bob, cy = (f"{n}-{run}" for n in ("ann", "bob", "cy"))
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (ann, bob, cy)}
    app = bootstrap(cfg, rules=MatchingRules(expansions="0:3.0", sweep_interval_s=0.2))
    async with serving(app) as client:
        first = (
            await client.post("/v1/match-requests", json={"skill": ML, "specialty": "nlp"}, headers=auth[ann])
        ).json()
        await client.post("/v1/match-requests", json={"skill": ML}, headers=auth[bob])
        first_path = f"/v1/match-requests/{first['ticket_id']}"
        matched = (await client.get(first_path, params={"wait": 30}, headers=auth[ann])).json()
        assert matched["status"] == "matched", matched
        session = matched["session_id"]
        partner = matched["partner_id"]
        assert partner == bob
        busy = await client.post("/v1/match-requests", json={"skill": ML}, headers=auth[ann])
        assert busy.status_code == 409 and "has not ended" in busy.json()["detail"]

        # bob does not show up: ann goes back in the queue with her original waiting time
        await private_kafka.publish(
            [
                new_event(
                    SessionAbandoned(
                        session_id=session, abandoned_by=ann, reason="partner-absent", no_show=bob
                    ),
                    source="sessions",
                )
            ],
        )
        requeued = requeue_ticket_id(session, ann)

        async def put_back() -> dict[str, Any] | None:
            r = await client.get(f"/v1/match-requests/{requeued}", headers=auth[ann])
            return r.json() if r.status_code == 200 else None

        back = await eventually(put_back, timeout=30)
        assert isinstance(back, dict) and back["status"] == "waiting"
        assert back["learner_id"] == ann and back["requeue_of"] == session
        assert back["requested_at"] == first["requested_at"] and back["specialty"] == "nlp"
        # the next learner is paired with her at once, ahead of anyone newer
        await client.post("/v1/match-requests", json={"skill": ML}, headers=auth[cy])
        done = (
            await client.get(f"/v1/match-requests/{requeued}", params={"wait": 30}, headers=auth[ann])
        ).json()
        assert done["status"] == "matched" and done["partner_id"] == cy, done


async def test_a_lone_ticket_expires_after_its_time_to_live(private_kafka: Namespace, tmp_path: Path) -> None:
    cfg = settings(private_kafka, tmp_path)
    who = f"lone-{uuid.uuid4().hex[:8]}"
    app = bootstrap(cfg, rules=MatchingRules(expansions="0:0.01", ttl_s=2, sweep_interval_s=0.2))
    mine = {"Authorization": f"Bearer {mint_token(cfg, who)}"}
    async with serving(app) as client:
        r = await client.post("/v1/match-requests", json={"skill": "data-engineering"}, headers=mine)
        ticket = r.json()["ticket_id"]
        gone = (await client.get(f"/v1/match-requests/{ticket}", params={"wait": 30}, headers=mine)).json()
        assert gone["status"] == "expired", gone

        def expiry_published(rs: list[Any]) -> bool:
            payloads = [decode(x.value).data for x in rs]
            return any(isinstance(p, MatchExpired) and p.ticket_id == ticket for p in payloads)

        assert await private_kafka.read_until(Topic.MATCHING, expiry_published)


async def test_a_replica_joining_takes_skills_with_their_waiting_tickets_from_the_one_store(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    """Replica 1 alone queues three far-apart learners in every skill. Replica 2 joins on the
    same store: the skills it is given are loaded from the store's waiting tickets, so a
    newcomer close to one of them is paired with that one, whoever decides, each ticket once."""
    run = uuid.uuid4().hex[:8]
    skills = [s.id for s in get_catalog().skills]
    levels = {"beginner": 1.0, "intermediate": 2.0, "expert": 4.0}
    cfg = [
        settings(private_kafka, tmp_path).model_copy(
            update={"instance": str(n), "consumer_session_timeout_ms": 6000}
        )
        for n in (1, 2)
    ]
    tight = MatchingRules(expansions="0:0.1", sweep_interval_s=0.2)  # 1, 2 and 4 never pair
    claims = [
        claim_in(f"{level}-{skill}-{run}", skill, level, datetime(2026, 11, 1, tzinfo=UTC))
        for skill in skills
        for level in [*levels, "intermediate-late"]
    ]
    await private_kafka.publish(claims)

    def who(level: str, skill: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(cfg[0], f'{level}-{skill}-{run}')}"}

    ops = {"Authorization": f"Bearer {mint_token(cfg[0], 'operator', role='ops')}"}

    first = bootstrap(cfg[0], rules=tight)
    async with serving(first) as one:

        async def levels_known() -> bool:
            keys = [f"{c.data.learner_id}/{c.data.skill}" for c in claims]  # type: ignore[attr-defined]
            return len(await first.state.ctx.store.get_many("levels", keys)) == len(claims)

        await eventually(levels_known, timeout=30)
        waiting = {}
        for skill in skills:
            for level in levels:
                r = await one.post("/v1/match-requests", json={"skill": skill}, headers=who(level, skill))
                assert r.status_code == 202 and r.json()["status"] == "waiting", r.text
                waiting[(skill, level)] = r.json()["ticket_id"]
        second = bootstrap(cfg[1], rules=tight)
        async with serving(second) as two:

            async def split() -> bool:
                owned = [
                    (await c.get("/v1/matching/ownership", headers=ops)).json()["skills"] for c in (one, two)
                ]
                return bool(owned[1]) and sorted(owned[0] + owned[1]) == sorted(skills)

            await eventually(split, timeout=60)
            late = {}
            for n, skill in enumerate(skills):
                client = (one, two)[n % 2]
                r = await client.post(
                    "/v1/match-requests", json={"skill": skill}, headers=who("intermediate-late", skill)
                )
                assert r.status_code in (200, 202), r.text
                late[skill] = r.json()["ticket_id"]
            for skill, ticket in late.items():
                path = f"/v1/match-requests/{ticket}"
                done = (await two.get(path, params={"wait": 30}, headers=ops)).json()
                assert done["status"] == "matched", done
                partner = (
                    await one.get(f"/v1/match-requests/{waiting[(skill, 'intermediate')]}", headers=ops)
                ).json()
                assert partner["status"] == "matched" and partner["session_id"] == done["session_id"]
                for level in ("beginner", "expert"):
                    alone = (
                        await one.get(f"/v1/match-requests/{waiting[(skill, level)]}", headers=ops)
                    ).json()
                    assert alone["status"] == "waiting", alone

    def found(records: list[Any]) -> list[MatchFound]:
        return [p for p in (decode(r.value).data for r in records) if isinstance(p, MatchFound)]

    mine = set(waiting.values()) | set(late.values())
    records = await private_kafka.read_until(
        Topic.MATCHING, lambda rs: sum(t.ticket_id in mine for p in found(list(rs)) for t in p.tickets) >= 6
    )
    named = [t.ticket_id for p in found(records) for t in p.tickets if t.ticket_id in mine]
    assert len(named) == len(set(named)) == 2 * len(skills)  # one decision each, none twice


def claim_in(learner: str, skill: str, level: str, t0: datetime) -> CloudEvent:
    self_level = level.removesuffix("-late")
    return new_event(
        SkillClaimed(learner_id=learner, skill=skill, self_level=self_level),
        source="test",
        time=t0,
    )
