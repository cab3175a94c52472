"""Replicas of a service on one store and one consumer group, on the real broker.

Each replica is a whole app (its own store connection, consumers, relay), as separate processes
would be; commands go to either. Two participants confirming a session at the same moment on two
replicas give one completion and one confirmation; rating at the same moment, both land; two
learners taking one handle on two replicas get one 201 and one 409; every event goes out once,
though both replicas relay; and either replica answers a read the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from services.passport.app import bootstrap as passport_app
from services.sessions.app import bootstrap as sessions_app
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.events import decode
from shared.events.registry import Topic
from shared.settings import Settings
from tests.integration.test_sessions_service import SCORES, match
from tests.support.apps import ops_headers, serving
from tests.support.kafka import Namespace, eventually


def auth(settings: Settings, learner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, learner)}"}


@contextlib.asynccontextmanager
async def replicas(app, settings: list[Settings]) -> AsyncIterator[list[httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serving(app(s))) for s in settings]


async def test_two_sessions_replicas_take_ratings_at_once_and_relay_each_event_once(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    cfg = [ns.settings(state_dir=str(tmp_path), instance=str(n)) for n in (1, 2)]
    run = uuid.uuid4().hex[:8]
    sid, ann, bob = f"m-{run}", f"ann-{run}", f"bob-{run}"
    await ns.publish(match(sid, ann, bob))
    async with replicas(sessions_app, cfg) as (one, two):
        for client in (one, two):
            client.headers.update(ops_headers(cfg[0]))  # reads as an operator

        async def scheduled(client: httpx.AsyncClient) -> bool:
            return (await client.get(f"/v1/sessions/{sid}")).status_code == 200

        await eventually(lambda: scheduled(one), timeout=30)
        assert (await one.post(f"/v1/sessions/{sid}/start", headers=auth(cfg[0], ann))).status_code == 200
        # both confirm it at the same moment, each on another replica: one completes, one confirms
        confirmed = await asyncio.gather(
            two.post(f"/v1/sessions/{sid}/complete", headers=auth(cfg[1], bob)),
            one.post(f"/v1/sessions/{sid}/confirm", headers=auth(cfg[0], ann)),
        )
        assert [r.status_code for r in confirmed] == [200, 200], [r.text for r in confirmed]
        # both participants rate at the same moment, each on another replica
        rated = await asyncio.gather(
            one.post(
                f"/v1/sessions/{sid}/ratings",
                json={"ratee_id": bob, "scores": SCORES},
                headers=auth(cfg[0], ann),
            ),
            two.post(
                f"/v1/sessions/{sid}/ratings",
                json={"ratee_id": ann, "scores": SCORES},
                headers=auth(cfg[1], bob),
            ),
        )
        assert [r.status_code for r in rated] == [201, 201], [r.text for r in rated]
        views = [(await c.get(f"/v1/sessions/{sid}")).json() for c in (one, two)]
        assert views[0] == views[1] and len(views[0]["ratings"]) == 2 and views[0]["status"] == "completed"
        assert views[0]["confirmation"]["state"] == "confirmed"

        def told(records: list) -> bool:  # type: ignore[type-arg]
            return sum(1 for r in records if b"RatingSubmitted" in r.value) >= 2

        records = await ns.read_until(Topic.SESSIONS, told, timeout=20)
        await asyncio.sleep(1.0)  # a second copy would come from the other relay by now
        records = await ns.read_until(Topic.SESSIONS, lambda rs: len(rs) >= len(records), timeout=5)
        ids = Counter(decode(r.value).id for r in records)
        assert all(n == 1 for n in ids.values()), ids.most_common(3)
        types = Counter(decode(r.value).type.split(".")[-2] for r in records)
        assert types["RatingSubmitted"] == 2 and types["SessionStarted"] == 1
        assert types["SessionCompleted"] == 1 and types["SessionConfirmed"] == 1


async def test_one_handle_goes_to_one_learner_across_replicas(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    cfg = [ns.settings(state_dir=str(tmp_path), instance=str(n)) for n in (1, 2)]
    run = uuid.uuid4().hex[:8]
    handle, ann, bob = f"h{run}", f"ann-{run}", f"bob-{run}"
    async with replicas(passport_app, cfg) as (one, two):
        for _ in range(3):  # taken at the same moment on two replicas, again and again
            handle = f"h{uuid.uuid4().hex[:8]}"
            answers = await asyncio.gather(
                one.post(
                    "/v1/learners",
                    json={"handle": handle, "display_name": "Ann"},
                    headers=auth(cfg[0], f"{ann}-{handle}"),
                ),
                two.post(
                    "/v1/learners",
                    json={"handle": handle, "display_name": "Bob"},
                    headers=auth(cfg[1], f"{bob}-{handle}"),
                ),
            )
            assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
            winner = next(a.json()["learner_id"] for a in answers if a.status_code == 201)
            passports = [await c.get(f"/v1/passports/{handle}") for c in (one, two)]
            assert [p.json()["learner_id"] for p in passports] == [winner, winner]
        # one learner's claims, sent to both replicas at once, all land
        learner = f"cy-{run}"
        created = await one.post(
            "/v1/learners", json={"handle": f"c{run}", "display_name": "Cy"}, headers=auth(cfg[0], learner)
        )
        assert created.status_code == 201
        skills = [skill.id for skill in get_catalog().skills]
        claims = await asyncio.gather(
            *(
                (one if n % 2 else two).put(
                    f"/v1/learners/{learner}/skills/{skill}",
                    json={"self_level": "beginner"},
                    headers=auth(cfg[0], learner),
                )
                for n, skill in enumerate(skills)
            )
        )
        assert [c.status_code for c in claims] == [200] * len(skills), [c.text for c in claims]
        for client in (one, two):

            async def all_claimed(client: httpx.AsyncClient = client) -> bool:
                page = (await client.get(f"/v1/passports/{learner}")).json()
                return {s["skill"] for s in page["skills"] if s.get("self_level")} == set(skills)

            await eventually(all_claimed, timeout=20)
