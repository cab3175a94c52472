"""A client of the stack's public API, for tests that set the scene before a browser looks.

The steps are those of ``tests/e2e/test_learner_journey.py`` (register, claim, match, run a
session that both participants confirm, rate), one call each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from deploy.local.stack import StackConfig
from shared.auth import mint_token
from shared.settings import Settings

SCORES = {
    "model-selection": 4,
    "feature-engineering": 4,
    "evaluation-metrics": 5,
    "generalization": 3,
    "deployment": 4,
}


async def poll(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float = 15.0, what: str = ""
) -> Any:
    """Await ``fetch()`` until ``ok`` holds for its answer; else AssertionError with the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fetch()
        if ok(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what or 'condition'} not reached within {timeout}s; last answer: {last}")


@dataclass
class LemmaApi:
    config: StackConfig
    http: httpx.AsyncClient

    @classmethod
    def open(cls, config: StackConfig) -> LemmaApi:
        return cls(config, httpx.AsyncClient(base_url=config.gateway_url, timeout=30))

    async def close(self) -> None:
        await self.http.aclose()

    def auth(self, learner_id: str) -> dict[str, str]:
        secret = (self.config.state_dir / "jwt-secret").read_text().strip()
        return {"Authorization": f"Bearer {mint_token(Settings(jwt_secret=secret), learner_id)}"}

    async def register(self, learner_id: str, handle: str, display_name: str) -> None:
        r = await self.http.post(
            "/v1/learners",
            json={"handle": handle, "display_name": display_name},
            headers=self.auth(learner_id),
        )
        assert r.status_code == 201, r.text

    async def claim(self, learner_id: str, skill: str, level: str) -> None:
        r = await self.http.put(
            f"/v1/learners/{learner_id}/skills/{skill}",
            json={"self_level": level},
            headers=self.auth(learner_id),
        )
        assert r.status_code == 200, r.text

    async def get(self, path: str, as_: str | None = None, **params: Any) -> Any:
        """GET ``path``, anonymously or as learner ``as_`` (tickets, sessions and a learner's own
        evidence are only shown to those concerned)."""
        r = await self.http.get(path, params=params, headers=self.auth(as_) if as_ else None)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    async def ask(self, learner_id: str, skill: str) -> str:
        """A match request's ticket id; retried while matching still holds the learner busy
        (a session's end reaches matching through the log, about a second after it)."""

        def send() -> Awaitable[httpx.Response]:
            return self.http.post("/v1/match-requests", json={"skill": skill}, headers=self.auth(learner_id))

        r = await poll(send, lambda r: r.status_code != 409, what=f"{learner_id} no longer busy")
        assert r.status_code in (200, 202), r.text
        return str(r.json()["ticket_id"])

    async def pair(self, first: str, second: str, skill: str, wait: int = 15) -> str:
        """Both learners ask for a partner; the session id matching gave them (they must be paired
        with each other: the caller makes sure nobody else waits in the skill). Learners further
        apart in level than 0.25 wait 10 s, until the window widens."""
        tickets = [await self.ask(first, skill), await self.ask(second, skill)]
        sessions = set()
        for learner, ticket in zip((first, second), tickets, strict=True):
            found = await self.get(f"/v1/match-requests/{ticket}", as_=learner, wait=wait)
            assert found["status"] == "matched", found
            sessions.add(found["session_id"])
        assert len(sessions) == 1, f"{first} and {second} were not paired together: {sessions}"
        return str(sessions.pop())

    async def complete(self, session_id: str, by: str, partner: str) -> None:
        """``by`` starts and completes the session, ``partner`` confirms it: it counts at once."""
        s = f"/v1/sessions/{session_id}"
        await poll(
            lambda: self.http.get(s, headers=self.auth(by)),
            lambda r: r.status_code == 200,
            what=f"session {session_id}",
        )
        for step, who in (("start", by), ("complete", by), ("confirm", partner)):
            r = await self.http.post(f"{s}/{step}", headers=self.auth(who))
            assert r.status_code == 200, f"{step}: {r.text}"

    async def rate(self, session_id: str, rater: str, ratee: str, scores: dict[str, int] = SCORES) -> None:
        r = await self.http.post(
            f"/v1/sessions/{session_id}/ratings",
            json={"ratee_id": ratee, "scores": scores},
            headers=self.auth(rater),
        )
        assert r.status_code == 201, r.text

    async def evidence(self, learner_id: str, skill: str) -> list[dict[str, Any]]:
        """The learner's evidence items in the skill, newest first (the first page)."""
        page = await self.get("/v1/evidence", as_=learner_id, learner_id=learner_id, skill=skill)
        return list(page["items"])

    async def passport_skill(self, who: str, skill: str) -> dict[str, Any] | None:
        entries = (await self.get(f"/v1/passports/{who}"))["skills"]
        return next((e for e in entries if e["skill"] == skill), None)
