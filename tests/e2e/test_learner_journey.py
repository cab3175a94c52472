"""A learner's journey through the gateway, as a client sees it: register, claim, match,
run a session, rate, and see the score on the passport. Plus the refusals a real
platform makes, and a malformed record that must not stop the consumers."""

from __future__ import annotations

import functools
import json
import time
import uuid

import httpx

from deploy.local.stack import StackConfig
from shared.auth import mint_token
from shared.consistency import AFTER_HEADER, TOKEN_HEADER
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.kafka import publish_raw, read_until
from tests.support.lemma_api import SCORES, poll

SKILL = "machine-learning"


def headers(config: StackConfig, learner_id: str) -> dict[str, str]:
    secret = (config.state_dir / "jwt-secret").read_text().strip()
    return {"Authorization": f"Bearer {mint_token(Settings(jwt_secret=secret), learner_id)}"}


async def test_two_learners_from_registration_to_a_scored_passport(stack: StackConfig) -> None:
    run = uuid.uuid4().hex[:8]
    ann, bob, eve = (f"{name}-{run}" for name in ("ann", "bob", "eve"))
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        before = (await http.get(f"/v1/skills/{SKILL}")).json()

        for learner in (ann, bob, eve):
            r = await http.post(
                "/v1/learners",
                json={"handle": learner, "display_name": learner.title()},
                headers=headers(stack, learner),
            )
            assert r.status_code == 201, r.text
        claimed: dict[str, str] = {}
        for learner, level in ((ann, "intermediate"), (bob, "intermediate")):
            r = await http.put(
                f"/v1/learners/{learner}/skills/{SKILL}",
                json={"self_level": level},
                headers=headers(stack, learner),
            )
            assert r.status_code == 200, r.text
            claimed[learner] = r.headers[TOKEN_HEADER]

        # refusals at the front door
        assert (await http.post("/v1/match-requests", json={"skill": SKILL})).status_code == 401
        r = await http.put(
            f"/v1/learners/{ann}/skills/astrology", json={"self_level": "expert"}, headers=headers(stack, ann)
        )
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        r = await http.post("/v1/match-requests", json={"skill": "astrology"}, headers=headers(stack, ann))
        assert r.status_code == 422

        # the claim's token: matching takes the ticket once it has seen the claimed level
        # (without it, a ticket asked for at once may carry the default level)
        t_ann, t_bob = [
            (
                await http.post(
                    "/v1/match-requests",
                    json={"skill": SKILL},
                    headers={**headers(stack, learner), AFTER_HEADER: claimed[learner]},
                )
            ).json()
            for learner in (ann, bob)
        ]
        assert t_ann["level"] == t_bob["level"] == 2.0, (t_ann, t_bob)
        # the outcome, without polling: the request is held until the ticket's status changes
        ann_ticket = f"/v1/match-requests/{t_ann['ticket_id']}"
        matched = await http.get(ann_ticket, params={"wait": 10}, headers=headers(stack, ann))
        assert matched.json()["status"] == "matched", matched.text
        session_id = matched.json()["session_id"]
        bob_ticket = (
            await http.get(f"/v1/match-requests/{t_bob['ticket_id']}", headers=headers(stack, bob))
        ).json()
        assert bob_ticket["session_id"] == session_id
        # a ticket is its learner's: not another's, not anyone's
        assert (await http.get(ann_ticket, headers=headers(stack, eve))).status_code == 403
        assert (await http.get(ann_ticket)).status_code == 401

        # a malformed record on the sessions topic: dead-lettered, the consumers go on
        await publish_raw(
            stack.kafka_bootstrap, Topic.SESSIONS.value, session_id.encode(), b'{"not": "an event"}'
        )

        s = f"/v1/sessions/{session_id}"
        await poll(lambda: http.get(s, headers=headers(stack, ann)), lambda r: r.status_code == 200)
        assert (await http.get(s, headers=headers(stack, eve))).status_code == 403  # not a participant
        assert (await http.post(f"{s}/start", headers=headers(stack, eve))).status_code == 403
        assert (await http.post(f"{s}/start", headers=headers(stack, ann))).status_code == 200
        r = await http.post(
            f"{s}/ratings", json={"ratee_id": bob, "scores": SCORES}, headers=headers(stack, ann)
        )
        assert r.status_code == 409, "no rating before completion"
        assert (await http.post(f"{s}/complete", headers=headers(stack, bob))).status_code == 200
        # bob's word alone does not make it count: ann confirms it too
        r = await http.post(f"{s}/confirm", headers=headers(stack, ann))
        assert r.status_code == 200 and r.json()["confirmation"]["state"] == "confirmed", r.text
        r = await http.post(f"{s}/dispute", json={"reason": "other"}, headers=headers(stack, ann))
        assert r.status_code == 409, "a confirmed session cannot be disputed"

        r = await http.post(
            f"{s}/ratings", json={"ratee_id": bob, "scores": SCORES}, headers=headers(stack, eve)
        )
        assert r.status_code == 403, "a third learner may not rate"
        r = await http.post(
            f"{s}/ratings",
            json={"ratee_id": bob, "scores": {"model-selection": 4}},
            headers=headers(stack, ann),
        )
        assert r.status_code == 422, "every rubric dimension must be scored"
        for rater, ratee in ((ann, bob), (bob, ann)):
            r = await http.post(
                f"{s}/ratings", json={"ratee_id": ratee, "scores": SCORES}, headers=headers(stack, rater)
            )
            assert r.status_code == 201, r.text
        r = await http.post(
            f"{s}/ratings", json={"ratee_id": bob, "scores": SCORES}, headers=headers(stack, ann)
        )
        assert r.status_code == 409, "one rating per rater per session"
        rated_at = time.monotonic()

        for learner in (ann, bob):
            passport = await poll(
                functools.partial(http.get, f"/v1/passports/{learner}"),
                lambda r: (
                    r.status_code == 200
                    and any(sk["skill"] == SKILL and sk["sci"] > 0 for sk in r.json()["skills"])
                ),
            )
            entry = next(sk for sk in passport.json()["skills"] if sk["skill"] == SKILL)
            parts = entry["practice"] + entry["proof"] + entry["reliability"] + entry["freshness"]
            assert abs(parts - entry["sci"]) < 0.011, entry
            assert entry["tier"] >= 2 and entry["sessions"] == 1
            mine = {"learner_id": learner, "skill": SKILL}
            trail = (await http.get("/v1/evidence", params=mine, headers=headers(stack, learner))).json()
            assert len(trail["items"]) == 1 and trail["items"][0]["session_id"] == session_id
            public = (await http.get("/v1/evidence", params=mine)).json()["items"]
            assert public[0]["rater_id"] is None and public[0]["scores"] is None  # as the passport shows
        assert time.monotonic() - rated_at < 10

        after = await poll(
            lambda: http.get(f"/v1/skills/{SKILL}"),
            lambda r: (
                r.json()["sessions_completed"] == before["sessions_completed"] + 1
                and r.json()["learners_verifying"] == before["learners_verifying"] + 2
            ),
        )
        assert after.json()["avg_sci"] > 0

    dead = await read_until(
        stack.kafka_bootstrap,
        Topic.DLQ.value,
        lambda rs: any(json.loads(r.value)["data"]["key"] == session_id for r in rs),
    )
    letters = [json.loads(r.value)["data"] for r in dead if json.loads(r.value)["data"]["key"] == session_id]
    assert {"evidence"} <= {letter["consumer"] for letter in letters}
    assert all(letter["topic"] == Topic.SESSIONS.value for letter in letters)
