"""The traffic of the faults run: learners going round the whole loop through the gateway (ask
for a partner, be matched, start and complete the session, rate the partner), as clients that
retry. Both participants complete it: the second completion is the partner's confirmation, so
the session counts (and its ratings reach the evidence) without waiting out the window.

A client retries what got no answer, a 502/503/504 or a connection error, for up to
``RETRY_S``; every answer is kept, so the run can say afterwards which 5xx there were and when.
A rating whose first try got no answer is "unanswered" unless a later try got the 201: the
check then allows it in the trail at most once. A later 409 ("already rated") proves it landed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.load_http import Answer
from bench.load_setup import Api
from shared.catalog import get_catalog

#: How long a client goes on trying one request through faults before giving up on it.
RETRY_S = 45.0
#: What a client retries: the gateway found no replica (503), one died mid-answer (502), or slow.
RETRYABLE = frozenset({502, 503, 504})
#: How long a client waits for a match before it asks again.
MATCH_WAIT_S = 40.0

Rating = tuple[str, str, str, str]  # (session, rater, ratee, skill)


@dataclass
class Outcomes:
    """What the clients did and were told."""

    accepted: list[Rating] = field(default_factory=list)
    unanswered: list[Rating] = field(default_factory=list)
    tickets: dict[str, str] = field(default_factory=dict)  # ticket -> learner
    matched: dict[str, str] = field(default_factory=dict)  # ticket -> session
    sessions: set[str] = field(default_factory=set)
    server_errors: list[tuple[float, str, int]] = field(default_factory=list)  # (at, kind, status)
    no_answer: list[tuple[float, str]] = field(default_factory=list)  # (at, kind)
    gave_up: list[str] = field(default_factory=list)
    loops: int = 0


class Traffic:
    def __init__(self, api: Api, pairs: list[tuple[str, str]], skill: str, pause_s: float = 0.0) -> None:
        """``pause_s``: how long a learner waits between two loops (a client's think time)."""
        self.api = api
        self.pause_s = pause_s
        self.pairs = pairs
        self.skill = skill
        self.out = Outcomes()
        rubric = next(s for s in get_catalog().skills if s.id == skill).rubric
        self.scores = {r.id: 4 for r in rubric}
        self.started = time.monotonic()

    async def send(
        self, kind: str, method: str, path: str, actor: str | None = None, body: Any = None
    ) -> Answer | None:
        """The first answer that is not retryable, or None when ``RETRY_S`` passed without one."""
        answer, _ = await self.attempt(kind, method, path, actor, body)
        return answer

    async def attempt(
        self, kind: str, method: str, path: str, actor: str | None = None, body: Any = None
    ) -> tuple[Answer | None, int]:
        """``send``, and how many tries it took."""
        deadline = time.monotonic() + RETRY_S
        tries = 0
        while True:
            answer = await self.api.call(kind, method, path, actor=actor, body=body)
            tries += 1
            at = round(time.monotonic() - self.started, 2)
            if answer is None:
                self.out.no_answer.append((at, kind))
            elif answer.status >= 500:
                self.out.server_errors.append((at, kind, answer.status))
            if answer is not None and answer.status not in RETRYABLE:
                return answer, tries
            if time.monotonic() > deadline:
                self.out.gave_up.append(kind)
                return None, tries
            await asyncio.sleep(0.25)

    async def setup(self) -> None:
        """Register every learner and claim the skill (before any fault)."""

        async def one(learner: str) -> None:
            r = await self.send(
                "register", "POST", "/v1/learners", learner, {"handle": learner, "display_name": learner}
            )
            if r is None or r.status not in (201, 409):
                raise RuntimeError(f"could not register {learner}: {r and r.status}")
            r = await self.send(
                "claim",
                "PUT",
                f"/v1/learners/{learner}/skills/{self.skill}",
                learner,
                {"self_level": "intermediate"},
            )
            if r is None or r.status != 200:
                raise RuntimeError(f"could not claim for {learner}: {r and r.status}")

        await asyncio.gather(*(one(learner) for pair in self.pairs for learner in pair))

    async def run(self, stop: asyncio.Event) -> Outcomes:
        """Every learner goes round its loop until ``stop`` is set (a loop under way finishes)."""
        await asyncio.gather(*(self._learner(who, stop) for pair in self.pairs for who in pair))
        return self.out

    async def _learner(self, learner: str, stop: asyncio.Event) -> None:
        """Ask for a partner, wait for the match, start and complete the session (both are
        idempotent, so both participants may; the partner's completion confirms it), rate the
        partner; again."""
        while not stop.is_set():
            ticket = await self._ticket(learner)
            session = await self._matched(ticket, learner) if ticket else None
            if session is None:
                await asyncio.sleep(0.5)
                continue
            if await self._session(session, learner):
                self.out.loops += 1
            await asyncio.sleep(self.pause_s)

    async def _ticket(self, learner: str) -> str | None:
        r = await self.send("match-request", "POST", "/v1/match-requests", learner, {"skill": self.skill})
        if r is None or r.status not in (200, 202):
            return None  # 409: the last session is not seen ended yet; the loop asks again
        ticket = str(r.json()["ticket_id"])
        self.out.tickets[ticket] = learner
        return ticket

    async def _matched(self, ticket: str, learner: str) -> str | None:
        deadline = time.monotonic() + MATCH_WAIT_S
        while time.monotonic() < deadline:
            r = await self.send("ticket", "GET", f"/v1/match-requests/{ticket}?wait=5", learner)
            view = r.json() if r is not None and r.status == 200 else {}
            if view.get("status") == "matched":
                session = str(view["session_id"])
                self.out.matched[ticket] = session
                return session
            if view.get("status") in ("expired", "cancelled"):
                return None
        return None

    async def _session(self, session: str, learner: str) -> bool:
        deadline = time.monotonic() + RETRY_S
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = await self.send("session", "GET", f"/v1/sessions/{session}", learner)
            if r is not None and r.status == 200:
                view = r.json()
                break
            await asyncio.sleep(0.2)
        if not view:
            return False
        self.out.sessions.add(session)
        partner = next(str(p) for p in view["participants"] if p != learner)
        # 409 to a start: the partner has started and completed it already (then this completion
        # is the confirmation that makes it count)
        r = await self.send("start", "POST", f"/v1/sessions/{session}/start", learner)
        if r is None or r.status not in (200, 409):
            return False
        r = await self.send("complete", "POST", f"/v1/sessions/{session}/complete", learner)
        if r is None or r.status != 200:
            return False
        await self._rate(session, learner, partner)
        return True

    async def _rate(self, session: str, rater: str, ratee: str) -> None:
        rating = (session, rater, ratee, self.skill)
        body = {"ratee_id": ratee, "scores": self.scores}
        r, tries = await self.attempt("rating", "POST", f"/v1/sessions/{session}/ratings", rater, body)
        if r is None:
            self.out.unanswered.append(rating)  # may have landed: allowed in the trail at most once
        elif r.status == 201 or (r.status == 409 and tries > 1):
            # only this client rates as ``rater`` here: "already rated" is an earlier try landing
            self.out.accepted.append(rating)
        else:
            self.out.gave_up.append(f"rating {r.status}")
