"""The load bench's population, made through the gateway as clients would (closed loop).

Learners register and claim every catalog skill at one self-level (so the matching engine may
pair any two of them at once). Then, in rounds, every learner asks for a partner in every
skill, follows their ticket until the engine matches it (a ticket still waiting at the end of
the round is cancelled), and each session the engine made is looked up until the sessions
service has it. The sessions of the first ``rated_rounds`` rounds are started, completed by one
participant and confirmed by the other (so their ratings count as they come), not rated: the
rating-path phase rates them. The last round's sessions are left as the engine made them
(scheduled): the mixed phase starts, completes, confirms and rates them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.load_gen import Tally
from bench.load_http import Answer, HttpError, Pool
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.settings import Settings

T = TypeVar("T")

LEVEL = "intermediate"
MATCH_WAIT_S = 20.0  # how long a round follows its tickets before cancelling those still waiting
BUSY_RETRY_S = 30.0  # how long a request refused with 409 (last session not ended yet) is retried
APPEAR_TIMEOUT_S = 30.0  # how long a matched session is looked up until the sessions service has it
STALL_S = 3.0  # a round whose tickets stopped being matched this long cancels those left


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    skill: str
    a: str  # the participants as the sessions service lists them
    b: str
    round: int


@dataclass
class Population:
    learners: list[str]
    skills: list[str]
    rated_rounds: list[list[SessionInfo]] = field(default_factory=list)  # completed, not rated
    open_sessions: list[SessionInfo] = field(default_factory=list)  # scheduled, not started
    tickets: list[tuple[str, str]] = field(default_factory=list)  # (ticket, its learner)
    claims: dict[str, set[str]] = field(default_factory=dict)  # skill -> learners claiming it
    cancelled: int = 0  # tickets left waiting at the end of a round
    seconds: dict[str, float] = field(default_factory=dict)


def one_address_for_every_learner() -> None:
    """The stack this process starts next counts no per-address limit: every simulated learner
    calls from this one address, where real learners come from many. Each still has their own
    token, whose limit holds."""
    os.environ["LEMMA_RATE_LIMIT_PER_IP"] = ""


class Api:
    """The gateway with a bearer token per learner; every answer tallied by kind."""

    def __init__(self, url: str, secret: str, *, limit: int = 256, timeout: float = 30.0) -> None:
        self.pool = Pool.of(url, limit=limit, timeout=timeout)
        self.settings = Settings(jwt_secret=secret)
        self.tokens: dict[str, str] = {}
        self.tallies: dict[str, Tally] = {}

    def token(self, learner: str) -> str:
        if learner not in self.tokens:
            self.tokens[learner] = f"Bearer {mint_token(self.settings, learner)}"
        return self.tokens[learner]

    async def call(
        self, kind: str, method: str, path: str, *, actor: str | None = None, body: Any = None
    ) -> Answer | None:
        """The answer (any status), or None when there was none (counted by exception name)."""
        headers = {"Authorization": self.token(actor)} if actor else None
        tally = self.tallies.setdefault(kind, Tally())
        started = time.monotonic()
        try:
            answer = await self.pool.request(method, path, json_body=body, headers=headers)
        except (HttpError, OSError, TimeoutError) as exc:
            tally.failures[type(exc).__name__] += 1
            return None
        tally.latencies_ms.append((time.monotonic() - started) * 1000)
        tally.statuses[answer.status] += 1
        return answer

    def close(self) -> None:
        self.pool.close()


async def bounded(limit: int, jobs: list[Awaitable[T]]) -> list[T]:
    """Await ``jobs`` with at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


def learner_ids(run_id: str, count: int) -> list[str]:
    return [f"{run_id}-{i:04d}" for i in range(count)]


async def register(api: Api, learners: list[str], skills: list[str], pop: Population) -> None:
    async def one(learner: str) -> None:
        body = {"handle": learner, "display_name": f"Load {learner}"}
        answer = await api.call("POST /v1/learners", "POST", "/v1/learners", actor=learner, body=body)
        if answer is None or answer.status != 201:
            return
        for skill in skills:
            path = f"/v1/learners/{learner}/skills/{skill}"
            route = "PUT /v1/learners/{id}/skills/{skill}"
            claimed = await api.call(route, "PUT", path, actor=learner, body={"self_level": LEVEL})
            if claimed is not None and claimed.status == 200:
                pop.claims.setdefault(skill, set()).add(learner)

    await bounded(32, [one(learner) for learner in learners])


async def _ask(api: Api, learner: str, skill: str) -> str | None:
    """A ticket id; retried while matching still holds the learner busy (409)."""
    give_up = time.monotonic() + BUSY_RETRY_S
    while True:
        answer = await api.call(
            "POST /v1/match-requests", "POST", "/v1/match-requests", actor=learner, body={"skill": skill}
        )
        if answer is None:
            return None
        if answer.status in (200, 202):
            return str(answer.json()["ticket_id"])
        if answer.status != 409 or time.monotonic() > give_up:
            return None
        await asyncio.sleep(0.3)


@dataclass
class _Round:
    """The tickets of a round still waiting, by skill, and when one last stopped waiting."""

    waiting: dict[str, set[str]] = field(default_factory=dict)
    changed_at: float = field(default_factory=time.monotonic)

    def left(self, skill: str, ticket: str) -> None:
        self.waiting.get(skill, set()).discard(ticket)
        self.changed_at = time.monotonic()

    def hopeless(self, skill: str) -> bool:
        """No partner left for a waiting ticket: it is alone in its skill, or nothing was
        matched for a while (the rest are each other's recent partners)."""
        return len(self.waiting.get(skill, ())) <= 1 or time.monotonic() - self.changed_at > STALL_S


async def _follow(api: Api, st: _Round, ticket: str, learner: str, skill: str, deadline: float) -> str | None:
    """The session id once the ticket is matched; a ticket still waiting at ``deadline`` or
    without a possible partner is cancelled (None), unless the engine matched it first."""
    try:
        return await _follow_ticket(api, st, ticket, learner, skill, deadline)
    finally:
        st.left(skill, ticket)


async def _follow_ticket(
    api: Api, st: _Round, ticket: str, learner: str, skill: str, deadline: float
) -> str | None:
    path = f"/v1/match-requests/{ticket}"
    route = "GET /v1/match-requests/{id}?wait"
    while True:
        answer = await api.call(route, "GET", f"{path}?wait=1", actor=learner)
        view: dict[str, Any] = answer.json() if answer is not None and answer.status == 200 else {}
        status = view.get("status")
        if status == "matched":
            return str(view["session_id"])
        if status in ("cancelled", "expired"):
            return None
        if time.monotonic() >= deadline or st.hopeless(skill):
            break
        if answer is None or answer.status != 200:
            await asyncio.sleep(0.5)
    cancel = await api.call("DELETE /v1/match-requests/{id}", "DELETE", path, actor=learner)
    if cancel is None:
        return None
    for _ in range(20):  # 202: the cancel is not settled yet; 409: the engine matched it first
        answer = await api.call(route, "GET", f"{path}?wait=2", actor=learner)
        view = answer.json() if answer is not None and answer.status == 200 else {}
        if view.get("status") == "matched":
            return str(view["session_id"])
        if view.get("status") in ("cancelled", "expired"):
            return None
    return None


async def _appear(api: Api, session_id: str, reader: str, skill: str, round_no: int) -> SessionInfo | None:
    """The session once it is scheduled, read as ``reader`` (one of its participants)."""
    give_up = time.monotonic() + APPEAR_TIMEOUT_S
    pause = 0.05
    while time.monotonic() < give_up:
        path = f"/v1/sessions/{session_id}"
        answer = await api.call("GET /v1/sessions/{id}", "GET", path, actor=reader)
        if answer is not None and answer.status == 200:
            view = answer.json()
            a, b = (str(x) for x in view["participants"])
            return SessionInfo(session_id, skill, a, b, round_no)
        await asyncio.sleep(pause)
        pause = min(0.5, pause * 1.5)
    return None


async def _complete(api: Api, info: SessionInfo) -> bool:
    base = f"/v1/sessions/{info.session_id}"
    started = await api.call("POST /v1/sessions/{id}/start", "POST", f"{base}/start", actor=info.a)
    if started is None or started.status != 200:
        return False
    done = await api.call("POST /v1/sessions/{id}/complete", "POST", f"{base}/complete", actor=info.b)
    if done is None or done.status != 200:
        return False
    confirmed = await api.call("POST /v1/sessions/{id}/confirm", "POST", f"{base}/confirm", actor=info.a)
    return confirmed is not None and confirmed.status == 200


async def play_round(api: Api, pop: Population, round_no: int, *, complete: bool) -> list[SessionInfo]:
    """Every learner asks in every skill; the sessions the engine made (completed if ``complete``)."""
    asks = [(learner, skill) for skill in pop.skills for learner in sorted(pop.claims.get(skill, ()))]
    tickets = await bounded(64, [_ask(api, learner, skill) for learner, skill in asks])
    asked = [(learner, skill, t) for (learner, skill), t in zip(asks, tickets, strict=True) if t is not None]
    pop.tickets.extend((t, learner) for learner, _, t in asked)
    st = _Round()
    for _, skill, t in asked:
        st.waiting.setdefault(skill, set()).add(t)
    deadline = time.monotonic() + MATCH_WAIT_S
    found = await bounded(
        len(asked) or 1, [_follow(api, st, t, learner, skill, deadline) for learner, skill, t in asked]
    )
    pop.cancelled += sum(1 for s in found if s is None)
    skill_of: dict[str, tuple[str, str]] = {}  # session -> (a participant, skill)
    for (learner, skill, _), session in zip(asked, found, strict=True):
        if session is not None:
            skill_of[session] = (learner, skill)
    infos = await bounded(64, [_appear(api, s, who, k, round_no) for s, (who, k) in skill_of.items()])
    sessions = [i for i in infos if i is not None]
    if complete:
        ok = await bounded(64, [_complete(api, info) for info in sessions])
        sessions = [info for info, done in zip(sessions, ok, strict=True) if done]
    return sessions


async def build_population(
    url: str, secret: str, *, run_id: str, learners: int, rated_rounds: int, say: Any = print
) -> tuple[Population, Api]:
    """Register ``learners``, run ``rated_rounds`` completed rounds and one left open."""
    api = Api(url, secret)
    skills = [s.id for s in get_catalog().skills]
    pop = Population(learners=learner_ids(run_id, learners), skills=skills)
    started = time.monotonic()
    await register(api, pop.learners, skills, pop)
    pop.seconds["register"] = round(time.monotonic() - started, 1)
    say(f"  registered {len(pop.learners)} learners, claims {sum(len(c) for c in pop.claims.values())}")
    for round_no in range(1, rated_rounds + 2):
        begun = time.monotonic()
        last = round_no == rated_rounds + 1
        sessions = await play_round(api, pop, round_no, complete=not last)
        if last:
            pop.open_sessions = sessions
        else:
            pop.rated_rounds.append(sessions)
        what = "left scheduled" if last else "completed"
        say(f"  round {round_no}: {len(sessions)} sessions {what} in {time.monotonic() - begun:.1f}s")
    pop.seconds["total"] = round(time.monotonic() - started, 1)
    return pop, api


def statuses(api: Api) -> Counter[int]:
    out: Counter[int] = Counter()
    for tally in api.tallies.values():
        out.update(tally.statuses)
    return out
