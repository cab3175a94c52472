"""Two matching replicas on one store, on a real broker: every ticket matched exactly once, and
the skills of a replica that stops move to the other.

Both processes share one SQLite store (``LEMMA_STORE_URL``) and fold one projection
(``matching``) in one consumer group; the skills each decides for are the partitions of
``lemma.matching.v1`` it holds in the ``matching-engine`` group, and it decides from its own
in-memory book of them. Requests go to either process at random. Afterwards the log, folded with
the shared log rule, must show every ticket matched exactly once and no decision that lost a
race, and the one store must agree with it. Then one replica stops: the other takes its
partitions (loading their waiting tickets from the store) and pairs them with new arrivals.
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
from tests.support.processes import ops_token_for_processes, start_matching_process, stop_process

LEARNERS_PER_SKILL = 15  # odd: one ticket per skill is left waiting


def start_replica(
    instance: str, ns: Namespace, state: Path, store: Path
) -> tuple[subprocess.Popen[bytes], str]:
    return start_matching_process(
        instance,
        ns.bootstrap,
        state,
        LEMMA_KAFKA_PREFIX=ns.prefix,
        LEMMA_STORE_URL=f"sqlite:///{store}/{{service}}.db",
        LEMMA_MATCHING_EXPANSIONS="0:3.0",  # every pair acceptable: the race is the point
        LEMMA_MATCHING_SWEEP_INTERVAL_S="0.2",
        LEMMA_CONSUMER_SESSION_TIMEOUT_MS="6000",  # a stopped static member's partitions move soon
    )


def tickets_in(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT key, doc FROM docs WHERE collection='tickets'").fetchall()
    return {key: json.loads(doc)["status"] for key, doc in rows}


async def test_two_replicas_on_one_store_match_every_ticket_once_and_take_over_when_one_stops(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    broker = private_kafka
    cfg = Settings(environment="test")
    skills = [s.id for s in get_catalog().skills]
    store = tmp_path / "store"
    store.mkdir()
    procs = {name: start_replica(name, broker, tmp_path / name, store) for name in ("a", "b")}
    try:
        async with httpx.AsyncClient(timeout=30) as client:

            async def ownership(name: str) -> dict[str, list[str]] | None:
                _, base = procs[name]
                try:
                    if (await client.get(f"{base}/readyz")).status_code != 200:
                        return None
                    answer = await client.get(
                        f"{base}/v1/matching/ownership", headers=ops_token_for_processes()
                    )
                    return dict(answer.json())
                except httpx.TransportError:
                    return None

            async def split() -> list[dict[str, list[str]]] | None:
                owned = [await ownership(name) for name in ("a", "b")]
                if any(o is None for o in owned):
                    return None
                every = [s for o in owned for s in o["skills"]]  # type: ignore[index]
                return owned if sorted(every) == sorted(skills) else None  # type: ignore[return-value]

            owned = await eventually(split, timeout=90)
            assert owned is not None
            assert not set(owned[0]["skills"]) & set(owned[1]["skills"])  # each skill decided once
            assert owned[0]["partitions"] and owned[1]["partitions"]

            rng = random.Random(7)
            learners = [(f"p{n:03d}-{skill}", skill) for skill in skills for n in range(LEARNERS_PER_SKILL)]
            rng.shuffle(learners)

            async def request(learner: str, skill: str, names: tuple[str, ...] = ("a", "b")) -> str:
                _, base = procs[rng.choice(names)]
                r = await client.post(
                    f"{base}/v1/match-requests",
                    json={"skill": skill},
                    headers={"Authorization": f"Bearer {mint_token(cfg, learner)}"},
                )
                assert r.status_code in (200, 202), r.text
                return str(r.json()["ticket_id"])

            tickets = await asyncio.gather(*(request(learner, skill) for learner, skill in learners))
            assert len(set(tickets)) == len(learners)

            def statuses() -> dict[str, str]:
                return tickets_in(store / "matching.db")

            def settled() -> bool:  # all matched, one per skill left waiting
                found = statuses()
                states = [found.get(t) for t in tickets]
                return states.count("matched") == len(tickets) - len(skills) and states.count(
                    "waiting"
                ) == len(skills)

            await eventually(settled, timeout=90)

            # b stops: a takes b's partitions, loads their waiting tickets from the store, and pairs
            # each with a newcomer of its skill
            stop_process(procs["b"][0])

            async def a_owns_all() -> bool:
                mine = await ownership("a")
                return mine is not None and sorted(mine["skills"]) == sorted(skills)

            await eventually(a_owns_all, timeout=60)
            late = await asyncio.gather(*(request(f"late-{skill}", skill, ("a",)) for skill in skills))

            def all_matched() -> bool:
                found = statuses()
                return all(found.get(t) == "matched" for t in [*tickets, *late])

            await eventually(all_matched, timeout=60)

        every = [*tickets, *late]
        expected_pairs = len(every) // 2
        records = await broker.read_until(
            Topic.MATCHING,
            lambda rs: sum(decode(r.value).type.endswith("MatchFound.v1") for r in rs) >= expected_pairs,
        )
        by_partition: dict[int, list[object]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(decode(r.value))
        decisions = [e for e in map(decode, (r.value for r in records)) if isinstance(e.data, MatchFound)]
        # the log, folded with the shared rule, partition by partition (order across them is free)
        state: dict[tuple[str, str], dict[str, object]] = {}
        for part in by_partition.values():
            state, _ = fold_events(MatchingProjection(), part, state)  # type: ignore[arg-type]
        log_states = {
            key: doc["status"] for (collection, key), doc in state.items() if collection == "tickets"
        }
        assert sorted(log_states) == sorted(every) and set(log_states.values()) == {"matched"}
        assert len({key for (collection, key) in state if collection == "matches"}) == expected_pairs
        # no decision lost a race: each ticket was named by one MatchFound only
        assert len({e.data.match_id for e in decisions}) == expected_pairs  # type: ignore[attr-defined]
        named = [t.ticket_id for e in decisions for t in e.data.tickets]  # type: ignore[attr-defined]
        assert len(named) == len(set(named)) == len(every)
        await eventually(lambda: statuses() == log_states, timeout=30)  # the one store agrees
    finally:
        for proc, _ in procs.values():
            stop_process(proc)
