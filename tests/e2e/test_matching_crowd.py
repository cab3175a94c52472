"""Twenty learners of mixed levels ask for a partner at once, through the gateway.

All are paired within 10 s of asking, nobody is in two sessions, every pair is mutual, and the
pairs are closer in level than a random pairing of the same learners.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import httpx

from deploy.local.stack import StackConfig
from tests.e2e.test_learner_journey import headers

SKILL = "data-engineering"
LEVELS = {"beginner": 1.0, "intermediate": 2.0, "advanced": 3.0, "expert": 4.0}
CROWD = ["beginner"] * 6 + ["intermediate"] * 4 + ["advanced"] * 6 + ["expert"] * 4


def mean_gap(pairs: list[tuple[float, float]]) -> float:
    return sum(abs(a - b) for a, b in pairs) / len(pairs)


async def test_a_crowd_is_paired_closely_within_seconds(stack: StackConfig) -> None:
    run = uuid.uuid4().hex[:6]
    learners = {f"crowd-{run}-{n:02d}": level for n, level in enumerate(CROWD)}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        for learner, level in learners.items():
            auth = headers(stack, learner)
            r = await http.post(
                "/v1/learners", json={"handle": learner, "display_name": learner}, headers=auth
            )
            assert r.status_code == 201, r.text
            r = await http.put(
                f"/v1/learners/{learner}/skills/{SKILL}", json={"self_level": level}, headers=auth
            )
            assert r.status_code == 200, r.text

        await asyncio.sleep(2)  # the claims travel passport -> log -> matching's levels

        async def ask(learner: str) -> dict[str, object]:
            r = await http.post("/v1/match-requests", json={"skill": SKILL}, headers=headers(stack, learner))
            assert r.status_code in (200, 202), r.text
            return dict(r.json())

        started = time.monotonic()
        tickets = await asyncio.gather(*(ask(learner) for learner in learners))

        async def outcome(ticket: dict[str, object]) -> dict[str, object]:
            mine = headers(stack, str(ticket["learner_id"]))
            r = await http.get(f"/v1/match-requests/{ticket['ticket_id']}", params={"wait": 10}, headers=mine)
            return dict(r.json())

        outcomes = await asyncio.gather(*(outcome(t) for t in tickets))
        elapsed = time.monotonic() - started
        assert all(o["status"] == "matched" for o in outcomes), [o["status"] for o in outcomes]
        assert elapsed < 10 + 1, elapsed  # +1: the answers travel back through the gateway

        partner = {str(o["learner_id"]): str(o["partner_id"]) for o in outcomes}
        session = {str(o["learner_id"]): str(o["session_id"]) for o in outcomes}
        assert all(partner[partner[x]] == x and session[partner[x]] == session[x] for x in partner)
        assert len(set(session.values())) == len(learners) // 2  # one session per pair, nobody in two
        for learner, session_id in sorted(session.items()):
            as_participant = headers(stack, learner)
            r = await http.get(f"/v1/sessions/{session_id}", headers=as_participant)
            for _ in range(50):
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.2)
                r = await http.get(f"/v1/sessions/{session_id}", headers=as_participant)
            assert r.status_code == 200, r.text
            assert {session[p] for p in r.json()["participants"]} == {session_id}

        level_of = {x: LEVELS[learners[x]] for x in learners}
        ours = mean_gap([(level_of[x], level_of[partner[x]]) for x in sorted(partner) if x < partner[x]])
        rng = random.Random(1)
        names = sorted(learners)
        shuffled = []
        for _ in range(200):
            rng.shuffle(names)
            shuffled.append(
                mean_gap([(level_of[a], level_of[b]) for a, b in zip(names[::2], names[1::2], strict=True)])
            )
        assert ours < sum(shuffled) / len(shuffled), (ours, sum(shuffled) / len(shuffled))
