"""The calls of one session the engine made, as its two learners' clients make them.

A session appears (the sessions service has folded its match); then either one learner does not
show up (drawn by the plan for that pair and round), and the other abandons it naming them (the
absent learner does not contest the claim: it stands once its window has passed), or both run
it: one starts it, one completes it and the other confirms it (so it counts at once, without
waiting out the window), and each rates the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from sim.http_api import Api
from sim.http_results import SessionRun
from sim.plan import SESSION, HttpPlan


class Sessions:
    def __init__(self, api: Api, plan: HttpPlan, *, timeout: float = 20.0) -> None:
        self.api = api
        self.plan = plan
        self.timeout = timeout

    async def appeared(self, session_id: str, participant: str) -> dict[str, Any] | None:
        """The session once the sessions service has folded the match into one (read as one of
        its participants: nobody else may)."""
        deadline = time.monotonic() + self.timeout
        pause = 0.3  # the fold is a broker hop away: polling sooner only loads the stack
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)
            try:
                r = await self.api.http.pick(session_id).get(
                    SESSION.replace("{session}", session_id), headers=self.api.headers(participant)
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                body: dict[str, Any] = r.json()
                return body
        self.api.result.errors["GET /v1/sessions/{session} timeout"] += 1
        return None

    async def act(self, actor: str, session_id: str, what: str, json: dict[str, Any] | None = None) -> bool:
        path = f"{SESSION.replace('{session}', session_id)}/{what}"
        return await self.api.send(actor, "POST", path, f"{SESSION}/{what}", json=json) is not None

    async def run(self, view: dict[str, Any], round_no: int) -> SessionRun:
        """The calls of a session that has appeared: a no-show, or start, complete, confirm and rate."""
        session_id = str(view["session_id"])
        a, b = (str(x) for x in view["participants"])
        skill = str(view["skill"])
        failed = SessionRun(session_id, skill, round_no, (a, b), "failed")
        ours = [x for x in (a, b) if self.plan.knows(x)]
        if len(ours) < 2:  # paired with a learner outside the simulation: ours leaves
            self.api.result.errors["session with a learner outside the simulation"] += 1
            for who in ours:
                await self.act(who, session_id, "abandon", {"reason": "other"})
            return SessionRun(session_id, skill, round_no, (a, b), "outside")
        absent = self.plan.no_show(a, b, skill=skill, round_no=round_no)
        if absent is not None:
            present = b if absent == a else a
            if not await self.act(
                present, session_id, "abandon", {"reason": "partner-absent", "no_show": absent}
            ):
                return failed
            return SessionRun(session_id, skill, round_no, (a, b), "no-show", no_show=absent)
        for who, step in ((a, "start"), (b, "complete"), (a, "confirm")):
            if not await self.act(who, session_id, step):
                return failed
        ratings = 0
        for rater, ratee in ((a, b), (b, a)):
            scores = self.plan.scores(
                rater, ratee, skill=skill, specialty=view["specialty"], round_no=round_no
            )
            if await self.act(rater, session_id, "ratings", {"ratee_id": ratee, "scores": scores}):
                ratings += 1
        return SessionRun(session_id, skill, round_no, (a, b), "completed", ratings=ratings)
