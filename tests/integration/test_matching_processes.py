"""Two matcher processes at once on a real broker never assign a ticket twice.

Each process has its own store and folds the whole log; the skills it decides for are the
partitions of ``lemma.matching.v1`` it holds in the ``matching-engine`` group. Requests go to
either process at random. Afterwards the log, folded with the shared log rule, must show every
ticket matched exactly once, no decision that lost a race, and both processes' stores must
agree on every ticket.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
from pathlib import Path

import httpx

from services.matching.projection import MatchingProjection
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.events import decode
from shared.events.payloads import MatchFound
from shared.events.registry import Topic
from shared.projection import fold_events
from shared.settings import Settings
from tests.support.kafka import Namespace, eventually
from tests.support.processes import start_matching_process, stop_process

LEARNERS_PER_SKILL = 16


def start_matcher(instance: str, ns: Namespace, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_matching_process(
        instance,
        ns.bootstrap,
        state,
        LEMMA_KAFKA_PREFIX=ns.prefix,
        LEMMA_MATCHING_EXPANSIONS="0:3.0",  # every pair acceptable: the race is the point
        LEMMA_MATCHING_SWEEP_INTERVAL_S="0.2",
    )


def tickets_in(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT key, doc FROM docs WHERE collection='tickets'").fetchall()
    return {key: json.loads(doc)["status"] for key, doc in rows}


async def test_two_matchers_never_assign_a_ticket_twice(private_kafka: Namespace, tmp_path: Path) -> None:
    broker = private_kafka
    cfg = Settings(environment="test")
    skills = [s.id for s in get_catalog().skills]
    procs = [start_matcher(name, broker, tmp_path / name) for name in ("a", "b")]
    try:
        async with httpx.AsyncClient(timeout=30) as client:

            async def both_ready() -> bool:
                for _, base in procs:
                    try:
                        if (await client.get(f"{base}/readyz")).status_code != 200:
                            return False
                    except httpx.TransportError:
                        return False
                return True

            await eventually(both_ready, timeout=60)
            rng = random.Random(7)
            learners = [(f"p{n:03d}-{skill}", skill) for skill in skills for n in range(LEARNERS_PER_SKILL)]
            rng.shuffle(learners)

            async def request(learner: str, skill: str) -> str:
                _, base = rng.choice(procs)
                r = await client.post(
                    f"{base}/v1/match-requests",
                    json={"skill": skill},
                    headers={"Authorization": f"Bearer {mint_token(cfg, learner)}"},
                )
                assert r.status_code in (200, 202), r.text
                return str(r.json()["ticket_id"])

            tickets = await asyncio.gather(*(request(learner, skill) for learner, skill in learners))
            assert len(set(tickets)) == len(learners)

            async def all_matched() -> bool:
                for ticket in tickets:
                    _, base = procs[hash(ticket) % 2]
                    r = await client.get(f"{base}/v1/match-requests/{ticket}")
                    if r.status_code != 200 or r.json()["status"] != "matched":
                        return False
                return True

            await eventually(all_matched, timeout=90)
            owned = [(await client.get(f"{base}/v1/matching/ownership")).json() for _, base in procs]
            # each skill was decided by exactly one of the two processes
            assert not set(owned[0]["skills"]) & set(owned[1]["skills"])
            assert sorted(owned[0]["skills"] + owned[1]["skills"]) == sorted(skills)
            assert owned[0]["partitions"] and owned[1]["partitions"]

        expected_pairs = len(learners) // 2
        records = await broker.read_until(
            Topic.MATCHING,
            lambda rs: sum(decode(r.value).type.endswith("MatchFound.v1") for r in rs) >= expected_pairs,
        )
        events = [decode(r.value) for r in records]
        by_partition: dict[int, list[object]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(decode(r.value))
        decisions = [e for e in events if isinstance(e.data, MatchFound)]
        # the log, folded with the shared rule, partition by partition (order across them is free)
        state: dict[tuple[str, str], dict[str, object]] = {}
        for part in by_partition.values():
            state, _ = fold_events(MatchingProjection(), part, state)  # type: ignore[arg-type]
        statuses = {key: doc["status"] for (collection, key), doc in state.items() if collection == "tickets"}
        assert sorted(statuses) == sorted(tickets) and set(statuses.values()) == {"matched"}
        effective = {key for (collection, key) in state if collection == "matches"}
        assert len(effective) == expected_pairs
        assert len({e.data.match_id for e in decisions}) == expected_pairs  # type: ignore[attr-defined]

        # both processes' stores agree with the log, ticket by ticket (each folds the other's
        # decisions a little later: under load a store may still be catching up)
        def stores_agree() -> bool:
            return all(
                tickets_in(tmp_path / name / "data" / "matching.db") == statuses for name in ("a", "b")
            )

        await eventually(stores_agree, timeout=30)
    finally:
        for proc, _ in procs:
            stop_process(proc)
