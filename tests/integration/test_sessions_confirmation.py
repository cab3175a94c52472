"""No unilateral harm on a real broker and SQLite: the sessions service's confirm, dispute and
contest routes with their refusals; the deadline sweep confirming a silent partner's session and
upholding an uncontested no-show once the window has passed; the evidence service recording a
session's ratings only once it is confirmed; and the sweep firing after a restart, once, with two
replicas racing for it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.evidence.app import bootstrap as evidence_app
from services.sessions.app import bootstrap as sessions_app
from shared.auth import mint_token
from shared.events import decode
from shared.events.envelope import CloudEvent
from shared.events.registry import Topic
from shared.settings import Settings
from tests.integration.test_sessions_service import SCORES, match
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

WINDOW_S = 4.0
#: These tests poll their sessions: no request limits (``tests/integration/test_abuse_limits.py`` has those)
NO_LIMITS = {"rate_limit_per_token": "", "rate_limit_per_ip": ""}


class Learners:
    def __init__(self, settings: Settings, run: str) -> None:
        self.settings = settings
        self.ann, self.bob, self.cat = f"ann-{run}", f"bob-{run}", f"cat-{run}"

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, who)}"}


async def events_of(ns: Namespace, session_id: str, done: int) -> list[CloudEvent]:
    """The session's events on the log, once there are ``done`` of them."""

    def mine(records: list[Any]) -> list[CloudEvent]:
        return [decode(r.value) for r in records if r.key == session_id.encode()]

    records = await ns.read_until(Topic.SESSIONS, lambda rs: len(mine(rs)) >= done, timeout=20)
    return mine(records)


def kinds(events: list[CloudEvent]) -> list[str]:
    return [e.type.split(".")[2] for e in events]


async def test_confirm_dispute_contest_and_the_sweep(private_kafka: Namespace, tmp_path: Path) -> None:
    ns = private_kafka
    cfg = ns.settings(state_dir=str(tmp_path), session_confirm_window_s=WINDOW_S, **NO_LIMITS)
    run = uuid.uuid4().hex[:8]
    who = Learners(cfg, run)
    ann, bob, cat = who.ann, who.bob, who.cat
    disputed, silent, contested, upheld, both = (f"m-{run}-{n}" for n in range(5))
    for sid in (disputed, silent, contested, upheld, both):
        await ns.publish(match(sid, ann, bob))
    async with serving(sessions_app(cfg)) as sessions, serving(evidence_app(cfg)) as evidence:

        async def post(sid: str, action: str, actor: str | None, body: object = None) -> httpx.Response:
            headers = who.auth(actor) if actor else {}
            return await sessions.post(f"/v1/sessions/{sid}/{action}", json=body, headers=headers)

        async def view(sid: str) -> dict[str, Any]:
            return await session_on(sessions, sid, who.auth(ann))

        async def trail(learner: str) -> list[str]:
            r = await evidence.get("/v1/evidence", params={"learner_id": learner}, headers=who.auth(learner))
            return sorted(str(i["session_id"]) for i in r.json()["items"])

        for sid in (disputed, silent, contested, upheld, both):
            await eventually(lambda sid=sid: view(sid), timeout=30)  # type: ignore[misc]

        # a disputed completion: only the partner, only in time, and it never counts
        assert (await post(disputed, "start", ann)).status_code == 200
        assert (await post(disputed, "dispute", ann, {"reason": "did-not-happen"})).status_code == 409
        r = await post(disputed, "complete", bob)
        assert r.status_code == 200 and r.json()["confirmation"]["state"] == "pending"
        assert r.json()["confirmation"]["by"] == [bob] and r.json()["confirmation"]["deadline"]
        assert (await post(disputed, "ratings", bob, {"ratee_id": ann, "scores": SCORES})).status_code == 201
        assert (await post(disputed, "dispute", None, {"reason": "other"})).status_code == 401
        assert (await post(disputed, "dispute", cat, {"reason": "other"})).status_code == 403
        bad = await post(disputed, "dispute", ann, {"reason": "he was rude, his name is Bob"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert (await post(disputed, "dispute", ann, {"reason": "other", "note": "x"})).status_code == 422
        assert (await post(disputed, "dispute", bob, {"reason": "other"})).status_code == 409
        r = await post(disputed, "dispute", ann, {"reason": "ended-early"})
        assert r.status_code == 200 and r.json()["confirmation"]["state"] == "disputed"
        assert (
            r.json()["confirmation"]["disputed_by"] == ann
            and r.json()["confirmation"]["reason"] == "ended-early"
        )
        assert (await post(disputed, "dispute", ann, {"reason": "ended-early"})).status_code == 200  # a retry
        assert (await post(disputed, "confirm", ann)).status_code == 409
        assert (await post(disputed, "ratings", ann, {"ratee_id": bob, "scores": SCORES})).status_code == 409

        # confirmed by both at once: its ratings count as they come
        assert (await post(both, "start", ann)).status_code == 200
        assert (await post(both, "confirm", ann)).status_code == 200
        r = await post(both, "confirm", bob)
        assert r.status_code == 200 and r.json()["confirmation"]["state"] == "confirmed"
        assert (await post(both, "ratings", ann, {"ratee_id": bob, "scores": SCORES})).status_code == 201

        # completed by one, the partner silent: it counts once the window has passed
        assert (await post(silent, "start", ann)).status_code == 200
        assert (await post(silent, "complete", ann)).status_code == 200
        assert (await post(silent, "ratings", ann, {"ratee_id": bob, "scores": SCORES})).status_code == 201

        # no-show claims: the accused contests in time, or lets it stand
        assert (
            await post(contested, "abandon", ann, {"reason": "partner-absent", "no_show": bob})
        ).status_code == 200
        assert (
            await post(upheld, "abandon", ann, {"reason": "partner-absent", "no_show": bob})
        ).status_code == 200
        assert (await post(contested, "contest", ann)).status_code == 409  # the accuser
        assert (await post(contested, "contest", cat)).status_code == 403
        assert (await post(contested, "contest", bob, {"reason": "not a code"})).status_code == 422
        r = await post(contested, "contest", bob, {"reason": "was-present"})
        assert r.status_code == 200 and r.json()["no_show_claim"]["state"] == "contested"
        assert (await post(contested, "contest", bob)).status_code == 200  # a retry, without a body
        assert (await post(both, "contest", bob)).status_code == 409  # no claim there

        # the evidence service has the confirmed session's rating, nothing of the pending or disputed ones
        assert await eventually(lambda: trail(bob), timeout=20) == [both]
        assert await trail(ann) == []

        # past the window the sweep confirms the silent partner's session and upholds the claim
        async def settled() -> bool:
            silent_view, upheld_view = await view(silent), await view(upheld)
            return bool(
                silent_view["confirmation"]["state"] == "confirmed"
                and upheld_view["no_show_claim"]["state"] == "upheld"
            )

        await eventually(settled, timeout=WINDOW_S + 20)
        assert (await view(silent))["confirmation"]["by"] == [ann]  # bob said nothing
        assert (await view(contested))["no_show_claim"]["state"] == "contested"
        assert (await view(disputed))["confirmation"]["state"] == "disputed"
        assert (await post(upheld, "contest", bob)).status_code == 409  # too late
        assert (await post(silent, "dispute", bob, {"reason": "other"})).status_code == 409

        async def counted() -> list[str]:
            items = await trail(bob)
            return items if silent in items else []

        # the rating held while the session waited is recorded now, dated as it was given
        assert await eventually(counted, timeout=20) == sorted([both, silent])
        assert await trail(ann) == []

    start = ["SessionScheduled", "SessionStarted"]
    assert kinds(await events_of(ns, disputed, 5)) == [
        *start,
        "SessionCompleted",
        "RatingSubmitted",
        "SessionDisputed",
    ]
    assert kinds(await events_of(ns, both, 5)) == [
        *start,
        "SessionCompleted",
        "SessionConfirmed",
        "RatingSubmitted",
    ]
    silent_events = await events_of(ns, silent, 5)
    assert kinds(silent_events) == [*start, "SessionCompleted", "RatingSubmitted", "SessionConfirmed"]
    assert silent_events[-1].data.confirmed_by is None  # type: ignore[attr-defined]
    assert kinds(await events_of(ns, contested, 3)) == [
        "SessionScheduled",
        "SessionAbandoned",
        "NoShowContested",
    ]
    upheld_events = await events_of(ns, upheld, 3)
    assert kinds(upheld_events) == ["SessionScheduled", "SessionAbandoned", "NoShowUpheld"]
    assert upheld_events[-1].data.no_show == bob and upheld_events[-1].data.claimed_by == ann  # type: ignore[attr-defined]
    assert upheld_events[-1].time >= upheld_events[1].data.contest_by  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def replicas(settings: list[Settings]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serving(sessions_app(s))) for s in settings]


async def test_the_sweep_fires_after_a_restart_once_between_replicas(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    """Deadlines live in the store, not in a process: windows opened before the service stopped
    are closed by the replicas started after them, each by one event, though both sweep."""
    ns = private_kafka
    window = 8.0
    cfg = [
        ns.settings(state_dir=str(tmp_path), session_confirm_window_s=window, instance=str(n), **NO_LIMITS)
        for n in (1, 2)
    ]
    run = uuid.uuid4().hex[:8]
    who = Learners(cfg[0], run)
    completed = [f"m-{run}-{n}" for n in range(3)]
    claimed = f"m-{run}-claim"
    for sid in [*completed, claimed]:
        await ns.publish(match(sid, who.ann, who.bob))
    deadlines: list[datetime] = []
    async with serving(sessions_app(cfg[0])) as one:
        for sid in [*completed, claimed]:
            await eventually(lambda sid=sid: session_on(one, sid, who.auth(who.ann)), timeout=30)  # type: ignore[misc]
        for sid in completed:
            assert (await one.post(f"/v1/sessions/{sid}/start", headers=who.auth(who.ann))).status_code == 200
            r = await one.post(f"/v1/sessions/{sid}/complete", headers=who.auth(who.bob))
            deadlines.append(datetime.fromisoformat(r.json()["confirmation"]["deadline"]))
        body = {"reason": "partner-absent", "no_show": who.bob}
        r = await one.post(f"/v1/sessions/{claimed}/abandon", json=body, headers=who.auth(who.ann))
        deadlines.append(datetime.fromisoformat(r.json()["no_show_claim"]["deadline"]))
    # the service is down before any window closes: nothing was settled
    assert datetime.now(UTC) < min(deadlines)
    settled_kinds = {"SessionConfirmed", "NoShowUpheld"}
    logged = await events_of(ns, claimed, 2)
    assert not [e for sid in completed for e in await events_of(ns, sid, 3) if kinds([e])[0] in settled_kinds]
    assert not [e for e in logged if kinds([e])[0] in settled_kinds]
    await asyncio.sleep(max(0.0, (max(deadlines) - datetime.now(UTC)).total_seconds()) + 0.5)
    async with replicas(cfg) as (first, second):

        async def all_settled() -> bool:
            reader = who.auth(who.ann)
            views = [await session_on(c, sid, reader) for c in (first, second) for sid in completed]
            claims = [await session_on(c, claimed, reader) for c in (first, second)]
            confirmed = all(v and v["confirmation"]["state"] == "confirmed" for v in views)
            return confirmed and all(v and v["no_show_claim"]["state"] == "upheld" for v in claims)

        await eventually(all_settled, timeout=30)
        await asyncio.sleep(2.0)  # both replicas have swept again by now
    for sid in completed:
        events = await events_of(ns, sid, 4)
        assert Counter(kinds(events))["SessionConfirmed"] == 1, kinds(events)
        assert len({e.id for e in events}) == len(events)
    claim_events = await events_of(ns, claimed, 3)
    assert kinds(claim_events) == ["SessionScheduled", "SessionAbandoned", "NoShowUpheld"]


async def session_on(client: httpx.AsyncClient, session_id: str, reader: dict[str, str]) -> dict[str, Any]:
    """The session as ``reader`` (a participant's token) reads it; ``{}`` while it is not there."""
    r = await client.get(f"/v1/sessions/{session_id}", headers=reader)
    return dict(r.json()) if r.status_code == 200 else {}
