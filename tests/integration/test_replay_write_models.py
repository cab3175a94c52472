"""``lemma replay`` of the services whose commands write their own store (sessions, passport):
their documents come back from the log alone, equal to what the commands wrote, while the
commands keep working; personal data (display names, the waitlist), which is never in the log,
is kept once outside the versions and survives a rebuild and the drop of the old version."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as lemma
from services.matching.app import bootstrap as matching_app
from services.passport.app import bootstrap as passport_app
from services.passport.domain import PROFILES, WAITLIST
from services.sessions.app import bootstrap as sessions_app
from shared.auth import mint_token
from shared.projection.versions import VERSIONS, Versions
from shared.settings import Settings
from shared.store.sqlite import SqliteStore
from tests.integration.test_replay import cli_env
from tests.integration.test_sessions_service import SCORES, match
from tests.support.apps import ops_headers, serving
from tests.support.kafka import Namespace, eventually

SKILL = "machine-learning"
AS_OF = "2027-01-01T00:00:00+00:00"  # passports read at one time: Freshness does not move


async def versions(db: Path, projection: str) -> Versions:
    store = SqliteStore(str(db))
    try:
        return Versions.from_doc(projection, await store.get(VERSIONS, projection))
    finally:
        await store.close()


def auth(settings: Settings, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, who)}"}


async def replay(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, lemma, ["replay", *args])


async def test_sessions_are_rebuilt_from_the_log_as_the_commands_left_them(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    run = uuid.uuid4().hex[:6]
    pairs = [(f"m-{run}-{i}", f"a{i}-{run}", f"b{i}-{run}") for i in range(8)]
    ids = [sid for sid, _, _ in pairs]
    cli_env(monkeypatch, ns, tmp_path)
    await ns.publish([event for sid, a, b in pairs for event in match(sid, a, b)])
    async with serving(sessions_app(settings)) as client:
        client.headers.update(ops_headers(settings))  # reads as an operator; commands as the learner

        async def post(sid: str, action: str, who: str, body: object = None) -> httpx.Response:
            return await client.post(f"/v1/sessions/{sid}/{action}", json=body, headers=auth(settings, who))

        async def everything() -> dict[str, Any]:
            answers = {sid: await client.get(f"/v1/sessions/{sid}") for sid in ids}
            assert all(a.status_code == 200 for a in answers.values()), answers
            return {sid: a.json() for sid, a in answers.items()}

        await eventually(lambda: all_scheduled(client, ids), timeout=30)
        for i, (sid, a, b) in enumerate(pairs):  # every state a session can be in
            if i < 5:
                assert (await post(sid, "start", a)).status_code == 200
            if i < 4:
                assert (await post(sid, "complete", b)).status_code == 200  # 2 and 3: a's say pending
            if i < 2:
                assert (await post(sid, "confirm", a)).status_code == 200
                assert (await post(sid, "ratings", a, {"ratee_id": b, "scores": SCORES})).status_code == 201
                assert (await post(sid, "ratings", b, {"ratee_id": a, "scores": SCORES})).status_code == 201
            if i == 3:
                assert (await post(sid, "dispute", a, {"reason": "ended-early"})).status_code == 200
            if i in (4, 5):
                assert (
                    await post(sid, "abandon", a, {"reason": "partner-absent", "no_show": b})
                ).status_code == 200
            if i == 5:
                assert (await post(sid, "contest", b, {"reason": "was-present"})).status_code == 200
        before = await everything()
        await eventually(lambda: folded_own(tmp_path / "data" / "sessions.db", "sessions"), timeout=30)

        checked = await replay("sessions", "--verify")
        assert checked.exit_code == 0 and "no difference" in checked.output, checked.output
        rebuilt = await replay("sessions")
        assert rebuilt.exit_code == 0 and "version 2 is live" in rebuilt.output, rebuilt.output
        assert await everything() == before  # the log alone gave back every state and rating

        # the commands go on against the rebuilt version: its documents are the ones they read
        sid, a, b = pairs[2]
        assert (await post(sid, "ratings", a, {"ratee_id": b, "scores": SCORES})).status_code == 201
        assert (
            await post(pairs[0][0], "ratings", pairs[0][1], {"ratee_id": pairs[0][2], "scores": SCORES})
        ).status_code == 409
        assert (await post(pairs[6][0], "complete", pairs[6][1])).status_code == 409
    assert (await versions(tmp_path / "data" / "sessions.db", "sessions")).live == 2


async def all_scheduled(client: httpx.AsyncClient, ids: list[str]) -> bool:
    answers = [await client.get(f"/v1/sessions/{sid}") for sid in ids]
    return all(a.status_code == 200 for a in answers)


async def folded_own(db: Path, consumer: str) -> bool:
    """Whether the service folded its own events as far as the log holds them (no outbox left)."""
    store = SqliteStore(str(db))
    try:
        return not await store.pending_outbox(1) and any(
            "sessions" in t or "passport" in t for t, _ in await store.offsets(consumer)
        )
    finally:
        await store.close()


async def test_passports_are_rebuilt_from_the_log_and_personal_data_stays_once(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "passport.db"
    people = [(f"id-{i}", f"handle-{i}", f"Person Number {i}") for i in range(5)]
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(passport_app(settings)) as client:
        for who, handle, name in people:
            body = {"handle": handle, "display_name": name}
            assert (
                await client.post("/v1/learners", json=body, headers=auth(settings, who))
            ).status_code == 201
            claim = f"/v1/learners/{who}/skills/machine-learning"
            assert (
                await client.put(claim, json={"self_level": "beginner"}, headers=auth(settings, who))
            ).status_code == 200
        first, second = people[0][0], people[1][0]
        claim = f"/v1/learners/{first}/skills/machine-learning"
        assert (
            await client.put(claim, json={"self_level": "expert"}, headers=auth(settings, first))
        ).status_code == 200
        gone = f"/v1/learners/{second}/skills/machine-learning"
        assert (await client.delete(gone, headers=auth(settings, second))).status_code == 200
        assert (await client.post("/v1/waitlist", json={"email": "wait@example.org"})).status_code == 202

        async def passports() -> dict[str, Any]:
            answers = {
                h: await client.get(f"/v1/passports/{h}", params={"freshness_at": AS_OF})
                for _, h, _ in people
            }
            assert all(a.status_code == 200 for a in answers.values()), answers
            return {h: a.json() for h, a in answers.items()}

        async def settled() -> bool:
            seen = await passports()
            return seen[people[1][1]]["skills"] == [] and [
                s["self_level"] for s in seen[people[0][1]]["skills"]
            ] == ["expert"]

        await eventually(settled, timeout=30)
        before = await passports()
        assert before[people[3][1]]["display_name"] == "Person Number 3"

        checked = await replay("passport", "--verify")
        assert checked.exit_code == 0 and "no difference" in checked.output, checked.output
        rebuilt = await replay("passport")
        assert rebuilt.exit_code == 0 and "version 2 is live" in rebuilt.output, rebuilt.output
        assert await passports() == before

        dropped = await asyncio.to_thread(CliRunner().invoke, lemma, ["projections", "drop", "passport", "1"])
        assert dropped.exit_code == 0, dropped.output
        assert await passports() == before  # the names were never in version 1's collections
        # the commands read the rebuilt write model: a taken handle, a second registration
        taken = {"handle": people[0][1], "display_name": "Someone Else"}
        assert (
            await client.post("/v1/learners", json=taken, headers=auth(settings, "newcomer"))
        ).status_code == 409
        again = {"handle": "fresh-handle", "display_name": "Again"}
        assert (
            await client.post("/v1/learners", json=again, headers=auth(settings, first))
        ).status_code == 409
        same = await client.put(claim, json={"self_level": "expert"}, headers=auth(settings, first))
        assert same.status_code == 200
        missing = await client.delete(gone, headers=auth(settings, second))
        assert missing.status_code == 404  # unclaimed before the rebuild: still unclaimed

    store = SqliteStore(str(db))
    try:
        assert await store.count(PROFILES) == len(people) and await store.count(WAITLIST) == 1
    finally:
        await store.close()


async def test_the_matching_queue_is_rebuilt_beside_the_matcher_and_it_goes_on_pairing(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(matching_app(settings)) as client:

        async def ask(who: str) -> str:
            answer = await client.post(
                "/v1/match-requests", json={"skill": SKILL}, headers=auth(settings, who)
            )
            assert answer.status_code in (200, 202), answer.text
            return str(answer.json()["ticket_id"])

        async def ticket(who: str, ticket_id: str) -> dict[str, Any]:
            answer = await client.get(f"/v1/match-requests/{ticket_id}", headers=auth(settings, who))
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        async def matched(who: str, ticket_id: str) -> bool:
            return bool((await ticket(who, ticket_id))["status"] == "matched")

        before = {who: await ask(who) for who in ("ann", "bob", "cat")}  # cat waits alone
        await eventually(lambda: matched("bob", before["bob"]), timeout=30)
        seen = {who: await ticket(who, t) for who, t in before.items()}
        assert seen["cat"]["status"] == "waiting"

        rebuilt = await replay("matching")
        assert rebuilt.exit_code == 0 and "version 2 is live" in rebuilt.output, rebuilt.output
        assert {who: await ticket(who, t) for who, t in before.items()} == seen
        dee = await ask("dee")  # the matcher decides from the rebuilt queue: cat gets a partner
        await eventually(lambda: matched("dee", dee), timeout=30)
        assert await matched("cat", before["cat"])
    assert (await versions(tmp_path / "data" / "matching.db", "matching")).live == 2


STEPS = {"scheduled": 0, "started": 1, "completed": 2, "abandoned": 2}


def step_of(doc: dict[str, Any]) -> int:
    """How far a session is: its status, and a step more once its completion is confirmed."""
    confirmed = (doc.get("confirmation") or {}).get("state") == "confirmed"
    return STEPS[doc["status"]] + confirmed


async def test_commands_during_a_sessions_hand_over_are_never_lost_nor_seen_undone(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions are started, completed, confirmed and rated while the rebuild runs and the service takes
    it over and switches: every answered command is in the rebuilt version, and no reader sees
    a session step back. (The switch's wait for the service's own events, which closes the
    few milliseconds where this could go wrong, is tested on its own in ``test_handover``.)"""
    ns = private_kafka
    # the reader reads every session every few milliseconds for as long as the commands run: far
    # past any request limit, which is not what this test is about
    settings = ns.settings(state_dir=str(tmp_path), rate_limit_per_token="", rate_limit_per_ip="")
    run = uuid.uuid4().hex[:6]
    pairs = [(f"h-{run}-{i}", f"c{i}-{run}", f"d{i}-{run}") for i in range(30)]
    cli_env(monkeypatch, ns, tmp_path)
    await ns.publish([event for sid, a, b in pairs for event in match(sid, a, b)])
    async with serving(sessions_app(settings)) as client:
        client.headers.update(ops_headers(settings))  # reads as an operator; commands as the learner
        await eventually(lambda: all_scheduled(client, [sid for sid, _, _ in pairs]), timeout=30)
        seen: dict[str, tuple[int, int]] = {}  # session -> (step, ratings) at its furthest
        problems: list[str] = []
        done: dict[str, tuple[int, int]] = {}
        steps = {"start": 1, "complete": 2, "confirm": 3, "ratings": 3}

        async def drive() -> None:
            for sid, a, b in pairs:
                for action, who, body in (
                    ("start", a, None),
                    ("complete", b, None),
                    ("confirm", a, None),
                    ("ratings", a, {"ratee_id": b, "scores": SCORES}),
                ):
                    answer = await client.post(
                        f"/v1/sessions/{sid}/{action}", json=body, headers=auth(settings, who)
                    )
                    if answer.status_code not in (200, 201):
                        problems.append(f"{sid} {action}: {answer.status_code} {answer.text}")
                        return
                    done[sid] = (steps[action], 1 if action == "ratings" else 0)
                    await asyncio.sleep(0.02)

        async def read() -> None:
            while True:
                for sid, _, _ in pairs:
                    answer = await client.get(f"/v1/sessions/{sid}")
                    if answer.status_code != 200:
                        problems.append(f"{sid}: {answer.status_code}")
                        continue
                    doc = answer.json()
                    now = (step_of(doc), len(doc["ratings"]))
                    if now < seen.get(sid, (0, 0)):
                        problems.append(f"{sid}: {seen[sid]} then {now}")
                    seen[sid] = max(now, seen.get(sid, (0, 0)))
                await asyncio.sleep(0.01)

        reading = asyncio.create_task(read())
        driving = asyncio.create_task(drive())
        rebuilt = await replay("sessions")
        await driving
        await asyncio.sleep(0.6)
        reading.cancel()
        assert rebuilt.exit_code == 0 and "version 2 is live" in rebuilt.output, rebuilt.output
        assert problems == []
        final = {sid: (await client.get(f"/v1/sessions/{sid}")).json() for sid, _, _ in pairs}
    assert len(done) == len(pairs)
    for sid, (step, ratings) in done.items():
        assert (step_of(final[sid]), len(final[sid]["ratings"])) == (step, ratings), sid
