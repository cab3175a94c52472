"""Drive a planned population through the public HTTP API of a running stack (demos, load).

Learners register and claim their skills, then every session runs as a client would run it:
both learners ask for a match, the session appears (the sessions service folds MatchFound),
one starts it, the other completes it, both rate; or the present learner reports a no-show.

Matching pairs a request with a waiting ticket of the same skill, so each skill has one
matcher that pairs its sessions one at a time; once paired, a session's other calls run in
the background, with at most ``concurrency`` sessions in flight. A non-2xx answer is
counted by route and status, never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.auth import mint_token
from shared.settings import Settings
from sim.plan import SESSION, HttpPlan, LearnerPlan, SessionPlan, Step

Tick = Callable[[], None]


def _nothing() -> None:
    return None


@dataclass
class DriveResult:
    learners: int = 0  # registered
    claims: int = 0
    sessions: int = 0  # matched
    completed: int = 0
    no_shows: int = 0
    ratings: int = 0
    unmatched: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # "POST /v1/... 409" -> count
    elapsed_s: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class Driver:
    def __init__(
        self,
        http: httpx.AsyncClient,
        secret: str,
        *,
        concurrency: int = 24,
        session_timeout: float = 20.0,
        tick: Tick = _nothing,
    ) -> None:
        self.http = http
        self.settings = Settings(jwt_secret=secret)
        self.slots = asyncio.Semaphore(concurrency)
        self.session_timeout = session_timeout
        self.tick = tick
        self.result = DriveResult()
        self._headers: dict[str, dict[str, str]] = {}

    def headers(self, learner_id: str) -> dict[str, str]:
        if learner_id not in self._headers:
            token = mint_token(self.settings, learner_id)
            self._headers[learner_id] = {"Authorization": f"Bearer {token}"}
        return self._headers[learner_id]

    async def call(self, step: Step, session_id: str = "") -> dict[str, Any] | None:
        """The JSON answer of a 2xx, else None (the failure is counted by route and status)."""
        path = step.path.replace("{session}", session_id)
        try:
            r = await self.http.request(step.method, path, json=step.json, headers=self.headers(step.actor))
        except httpx.HTTPError as exc:
            self.result.errors[f"{step.label} {type(exc).__name__}"] += 1
            return None
        if not r.is_success:
            self.result.errors[f"{step.label} {r.status_code}"] += 1
            return None
        body = r.json()
        return body if isinstance(body, dict) else {}

    # --- learners ----------------------------------------------------------------------------

    async def learner(self, plan: LearnerPlan) -> None:
        async with self.slots:
            body = {"handle": plan.handle, "display_name": plan.display_name}
            if await self.call(Step(plan.learner_id, "POST", "/v1/learners", body)) is not None:
                self.result.learners += 1
                for skill, level in plan.claims.items():
                    path = f"/v1/learners/{plan.learner_id}/skills/{skill}"
                    route = "/v1/learners/{id}/skills/{skill}"
                    claim = Step(plan.learner_id, "PUT", path, {"self_level": level}, route)
                    if await self.call(claim) is not None:
                        self.result.claims += 1
        self.tick()

    # --- sessions ----------------------------------------------------------------------------

    async def skill(self, sessions: list[SessionPlan]) -> None:
        """Pair the sessions of one skill one after the other; finish each in the background."""
        running: list[asyncio.Task[None]] = []
        for plan in sessions:
            await self.slots.acquire()
            try:
                session_id = await self.match(plan)
            except BaseException:
                self.slots.release()
                raise
            if session_id is None:
                self.result.unmatched += 1
                self.slots.release()
                self.tick()
                continue
            self.result.sessions += 1
            running.append(asyncio.create_task(self.finish(plan, session_id)))
        await asyncio.gather(*running)

    async def match(self, plan: SessionPlan) -> str | None:
        """The session id once the two learners are paired with each other, else None."""
        first, second = plan.match_steps()
        mine = await self.call(first)
        if mine is None:
            return None
        theirs = await self.call(second)
        if theirs is None:
            await self.cancel(plan.first, mine)
            return None
        if theirs.get("status") == "matched" and theirs.get("partner_id") == plan.first:
            return str(theirs["session_id"])
        # paired with somebody else's stale ticket: leave no ticket of ours waiting
        await self.cancel(plan.first, mine)
        await self.cancel(plan.second, theirs)
        return None

    async def cancel(self, actor: str, ticket: dict[str, Any]) -> None:
        if ticket.get("status") == "waiting":
            path = f"/v1/match-requests/{ticket['ticket_id']}"
            await self.call(Step(actor, "DELETE", path, route="/v1/match-requests/{ticket}"))

    async def appeared(self, session_id: str) -> bool:
        """Wait until the sessions service has folded the match into a session."""
        deadline = time.monotonic() + self.session_timeout
        pause = 0.3  # the fold is a broker hop away: polling sooner only loads the stack
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)
            try:
                r = await self.http.get(SESSION.replace("{session}", session_id))
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 200:
                return True
        self.result.errors["GET /v1/sessions/{session} timeout"] += 1
        return False

    async def finish(self, plan: SessionPlan, session_id: str) -> None:
        try:
            await self._finish(plan, session_id)
        finally:
            self.slots.release()
            self.tick()

    async def _finish(self, plan: SessionPlan, session_id: str) -> None:
        if not await self.appeared(session_id):
            return
        for step in plan.session_steps():
            if await self.call(step, session_id) is None:
                return
            if step.path.endswith("/ratings"):
                self.result.ratings += 1
        if plan.no_show is not None:
            self.result.no_shows += 1
        else:
            self.result.completed += 1


async def drive(
    plan: HttpPlan,
    gateway_url: str,
    secret: str,
    *,
    concurrency: int = 24,
    tick: Tick = _nothing,
) -> DriveResult:
    """Register the plan's learners, then run its sessions; ``tick`` is called per learner and session."""
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30.0, limits=limits) as http:
        driver = Driver(http, secret, concurrency=concurrency, tick=tick)
        await asyncio.gather(*(driver.learner(p) for p in plan.learners))
        by_skill: dict[str, list[SessionPlan]] = {}
        for session in plan.sessions:
            by_skill.setdefault(session.skill, []).append(session)
        await asyncio.gather(*(driver.skill(s) for s in by_skill.values()))
    driver.result.elapsed_s = time.perf_counter() - started
    return driver.result
