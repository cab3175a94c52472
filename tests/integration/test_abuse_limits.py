"""Abuse that the limits answer: a token hammering one route, and a client opening many
long-polls. Each is refused with 429 and Retry-After, counted in the ops metrics, and does not
hold back anyone else."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from services.matching.app import MatchingRules, bootstrap
from shared.auth import mint_token
from tests.support.apps import serving
from tests.support.kafka import Namespace

ML = "machine-learning"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_client_opening_many_long_polls_gets_a_few_and_429_for_the_rest(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    cfg = private_kafka.settings(state_dir=str(tmp_path), max_waits_per_caller=4)
    greedy, patient = (f"{n}-{uuid.uuid4().hex[:6]}" for n in ("greedy", "patient"))
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (greedy, patient)}
    app = bootstrap(cfg, rules=MatchingRules(expansions="0:0.01"))
    async with serving(app) as client:
        tickets = {}
        for who, skill in ((greedy, ML), (patient, "data-engineering")):  # two queues: nobody pairs
            r = await client.post("/v1/match-requests", json={"skill": skill}, headers=auth[who])
            assert r.status_code == 202, r.text
            tickets[who] = f"/v1/match-requests/{r.json()['ticket_id']}"
        before = metric("lemma_long_polls_refused_total", service="matching")
        polls = [client.get(tickets[greedy], params={"wait": 3}, headers=auth[greedy]) for _ in range(40)]
        answers = await asyncio.gather(*polls)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 4 + [429] * 36, statuses
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["Retry-After"] and refused.json()["status"] == 429
        assert metric("lemma_long_polls_refused_total", service="matching") - before == 36
        # another learner's long-poll is not held back, and the slots come back once answered
        assert (
            await client.get(tickets[patient], params={"wait": 1}, headers=auth[patient])
        ).status_code == 200
        assert (
            await client.get(tickets[greedy], params={"wait": 1}, headers=auth[greedy])
        ).status_code == 200


async def test_a_token_hammering_one_route_is_limited_and_counted(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    cfg = private_kafka.settings(state_dir=str(tmp_path), rate_limit_per_token="20/minute")
    hammer, other = (f"{n}-{uuid.uuid4().hex[:6]}" for n in ("hammer", "other"))
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (hammer, other)}
    async with serving(bootstrap(cfg)) as client:
        r = await client.post("/v1/match-requests", json={"skill": ML}, headers=auth[hammer])
        ticket = f"/v1/match-requests/{r.json()['ticket_id']}"
        before = metric("lemma_rate_limited_total", service="matching", scope="token")
        statuses = [(await client.get(ticket, headers=auth[hammer])).status_code for _ in range(30)]
        assert statuses == [200] * 19 + [429] * 11, statuses  # the request above was the first of 20
        assert metric("lemma_rate_limited_total", service="matching", scope="token") - before == 11
        last = await client.get(ticket, headers=auth[hammer])
        assert last.status_code == 429 and 1 <= int(last.headers["Retry-After"]) <= 60
        mine = await client.post("/v1/match-requests", json={"skill": ML}, headers=auth[other])
        assert mine.status_code == 202, mine.text
