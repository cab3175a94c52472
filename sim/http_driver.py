"""Drive a planned population through the public HTTP API of a running stack (demos, load).

Learners register and claim their skills. Then the population runs in rounds (the rounds of a
skill one after the other, the skills side by side), as clients of the real matching engine:

1. every learner of the round asks for a partner, all at once (POST /v1/match-requests);
2. each follows their ticket with ``GET /v1/match-requests/{id}?wait=`` (a long-poll) until the
   engine matches it or their patience (``match_wait_s`` from their request) is up;
3. each session the engine made runs with the partner it chose: the plan draws, for that pair
   and round, whether one of them does not show up (the other abandons it naming them as the
   no-show, and the matching service puts them back in the queue: that requeue ticket is
   followed like the others, with the learner's deadline) or the scores each gives the other
   (they start, complete and rate each other);
4. a ticket still waiting at its deadline is cancelled (DELETE), so none is left behind; one
   the engine matched before the cancel took effect gets its session run too.

A round stops waiting before the deadlines once nothing is under way and no two waiting
tickets could be paired by then under the matching rules (``could_pair``): their outcome is
known, and a lone beginner among experts would otherwise hold every round for its full
patience. A learner's next request in a skill waits (409, retried briefly) until matching has
folded the end of their last session there. A non-2xx answer is counted by route and status,
never raised.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.matching.engine import EPSILON, Rules
from services.matching.projection import requeue_ticket_id
from shared.auth import mint_token
from shared.settings import Settings
from sim.plan import MATCH, SESSION, HttpPlan, LearnerPlan, Request, RoundPlan

Tick = Callable[[], None]

TICKET = f"{MATCH}/{{ticket}}"
MAX_WAIT_S = 60  # the longest ?wait= the matching service accepts
BUSY_RETRY_S = 10.0  # how long a request refused with 409 (last session not ended yet) is retried
SETTLE_S = 10.0  # how long a cancelled ticket or a requeue is followed until the log settles it
MATCH_WAIT_S = 15.0  # a round's patience: learners still waiting then cancel
DEFAULT_RULES = Rules()  # the matching service's default rules (LEMMA_MATCHING_* unset)
REQUEUE_GRACE_S = 3.0  # the least a requeued learner waits for a partner
# how long the driver looks for a requeue ticket: matching folds the no-show from the sessions
# topic, more than 10 s late when the machine is busy; one found later is the learner's open
# ticket in their next round (a request answers with it), or refused if they asked first
REQUEUE_TIMEOUT_S = 30.0
DRAIN_PASSES = 5  # cancel, run what was matched meanwhile, cancel its requeues, ...: a bound


def _nothing() -> None:
    return None


class Clients:
    """A few HTTP clients; each request goes to the one its key picks.

    httpx's connection pool scans every connection of the pool on each request and response,
    so with hundreds of long-polls held open in one pool the driver spends more CPU on that
    scan than on anything else (the stack runs on the same cores); shards of a few dozen
    connections keep it cheap.
    """

    def __init__(self, base_url: str, shards: int = 16) -> None:
        ssl = httpx.create_ssl_context()  # one for all: building one per client costs
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        self.clients = [
            httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits, verify=ssl)
            for _ in range(shards)
        ]

    def pick(self, key: str) -> httpx.AsyncClient:
        return self.clients[zlib.crc32(key.encode()) % len(self.clients)]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


@dataclass(frozen=True)
class SessionRun:
    """A session the engine made and the driver ran."""

    session_id: str
    skill: str
    round: int
    participants: tuple[str, ...]
    outcome: str  # completed | no-show | failed | outside (a partner the simulation does not know)
    no_show: str | None = None
    ratings: int = 0


@dataclass
class RoundStats:
    skill: str
    round: int
    requests: int  # tickets the round's learners opened
    requeued: int  # tickets matching reopened after a no-show
    matched: int  # tickets the engine matched
    unmatched: int  # tickets cancelled at the end of the round
    seconds: float
    wait_p50_s: float  # from a request (or a requeue) to the driver seeing it matched
    wait_max_s: float


@dataclass
class DriveResult:
    learners: int = 0  # registered
    claims: int = 0
    sessions: int = 0  # matched by the engine and run
    completed: int = 0
    no_shows: int = 0
    ratings: int = 0
    unmatched: int = 0  # tickets still waiting at the end of their round (cancelled)
    errors: Counter[str] = field(default_factory=Counter)  # "POST /v1/... 409" -> count
    retried: Counter[str] = field(default_factory=Counter)  # calls tried again after a 502
    elapsed_s: float = 0.0
    rounds: int = 0
    requeued: int = 0
    waits_s: list[float] = field(default_factory=list)  # per matched ticket: request to matched seen
    round_stats: list[RoundStats] = field(default_factory=list)
    runs: list[SessionRun] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def completed_in(self, skill: str) -> int:
        return sum(1 for r in self.runs if r.skill == skill and r.outcome == "completed")

    def rated_in(self, skill: str) -> set[str]:
        """The learners who received a rating in ``skill``."""
        return {
            who
            for r in self.runs
            if r.skill == skill and r.outcome == "completed" and r.ratings == 2
            for who in r.participants
        }


@dataclass
class _Round:
    """One round's bookkeeping: its tasks, the tickets left waiting, its counts."""

    plan: RoundPlan
    patience: float  # how long a learner waits for a partner from their request (s)
    started: float
    tick: Tick
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)  # ticket id -> learner, waiting at its deadline
    # tickets followed that still wait, as last seen (None: a requeue not seen yet)
    waiting: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    busy: int = 0  # requests not answered and sessions running: they may yet bring a partner
    # set once no two waiting tickets can be paired before their deadlines (see ``check``)
    hopeless: asyncio.Event = field(default_factory=asyncio.Event)
    rules: Rules | None = None
    ends_at: datetime | None = None  # the latest deadline, on the wall clock (as tickets' times are)
    deadlines: dict[str, float] = field(default_factory=dict)  # learner -> their ticket's deadline
    recent: Callable[[str, str], bool] = lambda a, b: False
    requests: int = 0
    requeued: int = 0
    matched: int = 0
    unmatched: int = 0
    ticked: int = 0
    waits: list[float] = field(default_factory=list)

    def deadline(self, learner: str, requeued: bool = False) -> float:
        """A ticket's deadline (monotonic): ``patience`` from the learner's request; a ticket
        matching reopened after a no-show keeps the learner's deadline (as it keeps their place
        in the queue), with a few seconds at least. ``ends_at`` follows the latest."""
        now = time.monotonic()
        if requeued:
            deadline = max(self.deadlines.get(learner, now), now + REQUEUE_GRACE_S)
        else:
            deadline = now + self.patience
        self.deadlines[learner] = deadline
        ends_at = datetime.now(UTC) + timedelta(seconds=deadline - now)
        self.ends_at = ends_at if self.ends_at is None else max(self.ends_at, ends_at)
        return deadline

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(work))

    async def join(self) -> None:
        """Wait for every task, including those spawned meanwhile."""
        while self.tasks:
            batch, self.tasks = self.tasks, []
            await asyncio.gather(*batch)

    def check(self) -> None:
        """End the wait early once its outcome is known: nothing under way (no request
        unanswered, no session running that may requeue a learner) and no two tickets still
        waiting that the matching rules could pair before the last deadline. The learners of the
        round are the only ones asking in its skill (true of a fresh demo store; another
        client's ticket could still be a partner, which only makes that learner miss it)."""
        if self.busy or self.hopeless.is_set():
            return
        tickets = list(self.waiting.values())
        if len(tickets) <= 1 or (
            self.rules is not None
            and self.ends_at is not None
            and None not in tickets
            and not could_pair([t for t in tickets if t is not None], self.rules, self.ends_at, self.recent)
        ):
            self.hopeless.set()

    def advance(self, to_the_end: bool = False) -> None:
        """Tick the progress once per session (at most the planned number), or up to it."""
        while self.ticked < self.plan.planned:
            self.ticked += 1
            self.tick()
            if not to_the_end:
                return


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def could_pair(
    tickets: list[dict[str, Any]],
    rules: Rules,
    until: datetime,
    recent: Callable[[str, str], bool] = lambda a, b: False,
    margin_s: float = 2.0,
) -> bool:
    """Whether the matching rules could pair two of these waiting tickets (their views: level,
    requested_at, learner_id) by ``until``: a level gap within the wider of their windows as
    they will be then (plus ``margin_s`` for the matcher's sweep and clocks), and not recent
    partners by ``recent``. Specialty and format only order candidates, so they do not count."""

    def window(ticket: dict[str, Any]) -> float:
        waited = (until - _stamp(str(ticket["requested_at"]))).total_seconds() + margin_s
        return rules.window(max(0.0, waited))

    ordered = sorted(tickets, key=lambda t: float(t["level"]))
    widest = max((window(t) for t in ordered), default=0.0)
    for i, one in enumerate(ordered):
        for other in ordered[i + 1 :]:
            gap = float(other["level"]) - float(one["level"])
            if gap > widest + EPSILON:
                break
            if one["learner_id"] == other["learner_id"] or recent(one["learner_id"], other["learner_id"]):
                continue
            if gap <= max(window(one), window(other)) + EPSILON:
                return True
    return False


class Driver:
    def __init__(
        self,
        http: Clients,
        secret: str,
        plan: HttpPlan,
        *,
        concurrency: int = 24,
        match_wait_s: float = MATCH_WAIT_S,
        rules: Rules | None = DEFAULT_RULES,
        session_timeout: float = 20.0,
        tick: Tick = _nothing,
    ) -> None:
        """``rules``: the stack's pairing rules, to end a round's wait once no pair is possible
        (None: always wait out ``match_wait_s``)."""
        self.http = http
        self.plan = plan
        self.settings = Settings(jwt_secret=secret)
        self.slots = asyncio.Semaphore(concurrency)  # registrations and sessions in flight
        self.posts = asyncio.Semaphore(2 * concurrency)  # match requests and cancels in flight
        self.match_wait_s = match_wait_s
        self.session_timeout = session_timeout
        self.tick = tick
        self.result = DriveResult()
        self.seen: set[str] = set()  # sessions run or being run
        self.rules = rules
        self.partners: dict[tuple[str, str], deque[str]] = {}  # (skill, learner) -> latest partners
        self._headers: dict[str, dict[str, str]] = {}

    def headers(self, learner_id: str) -> dict[str, str]:
        if learner_id not in self._headers:
            token = mint_token(self.settings, learner_id)
            self._headers[learner_id] = {"Authorization": f"Bearer {token}"}
        return self._headers[learner_id]

    async def send(
        self,
        actor: str | None,
        method: str,
        path: str,
        route: str,
        *,
        json: dict[str, Any] | None = None,
        wait: int = 0,
        expect: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """The answer when 2xx or in ``expect``, else None (the failure is counted by route and status).

        A 502 from the gateway is tried once more: the gateway answers it when it wrote to a
        connection the service had just closed as idle, so the service never saw the call.
        """
        headers = self.headers(actor) if actor else None
        params = {"wait": wait} if wait else None
        timeout = httpx.Timeout(30.0 + 2 * wait)
        client = self.http.pick(actor or path)
        for attempt in (1, 2):
            try:
                r = await client.request(
                    method, path, json=json, params=params, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                self.result.errors[f"{method} {route} {type(exc).__name__}"] += 1
                return None
            if r.status_code != 502 or attempt == 2:
                break
            self.result.retried[f"{method} {route} 502"] += 1
        if r.is_success or r.status_code in expect:
            return r
        self.result.errors[f"{method} {route} {r.status_code}"] += 1
        return None

    # --- learners ----------------------------------------------------------------------------

    async def learner(self, plan: LearnerPlan) -> None:
        async with self.slots:
            body = {"handle": plan.handle, "display_name": plan.display_name}
            if await self.send(plan.learner_id, "POST", "/v1/learners", "/v1/learners", json=body):
                self.result.learners += 1
                for skill, level in plan.claims.items():
                    path = f"/v1/learners/{plan.learner_id}/skills/{skill}"
                    route = "/v1/learners/{id}/skills/{skill}"
                    if await self.send(plan.learner_id, "PUT", path, route, json={"self_level": level}):
                        self.result.claims += 1
        self.tick()

    # --- rounds ------------------------------------------------------------------------------

    async def skill(self, rounds: list[RoundPlan]) -> None:
        for plan in rounds:
            await self.round(plan)

    async def round(self, plan: RoundPlan) -> None:
        now = time.monotonic()
        st = _Round(plan, patience=self.match_wait_s, started=now, tick=self.tick, rules=self.rules)
        st.recent = lambda a, b: self.met(plan.skill, a, b)
        for q in plan.requests:
            st.spawn(self.ask(st, q))
        await st.join()
        await self.drain(st)
        st.advance(to_the_end=True)
        self.result.rounds += 1
        self.result.unmatched += st.unmatched
        self.result.round_stats.append(
            RoundStats(
                skill=plan.skill,
                round=plan.number,
                requests=st.requests,
                requeued=st.requeued,
                matched=st.matched,
                unmatched=st.unmatched,
                seconds=round(time.monotonic() - st.started, 2),
                wait_p50_s=sorted(st.waits)[len(st.waits) // 2] if st.waits else 0.0,
                wait_max_s=max(st.waits, default=0.0),
            )
        )
        self.result.waits_s.extend(st.waits)

    def met(self, skill: str, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` were partners in ``skill`` lately (as far as this driver saw)."""
        return b in self.partners.get((skill, a), ()) or a in self.partners.get((skill, b), ())

    def meet(self, skill: str, a: str, b: str) -> None:
        keep = self.rules.recent_partners if self.rules is not None else 0
        for one, other in ((a, b), (b, a)):
            self.partners.setdefault((skill, one), deque(maxlen=keep)).append(other)

    async def ask(self, st: _Round, q: Request) -> None:
        """One learner's turn in a round: open a ticket, then follow it."""
        st.busy += 1
        try:
            ticket, since = await self.request(q)
            if ticket is not None:
                st.requests += 1
                st.waiting[str(ticket["ticket_id"])] = ticket
        finally:
            st.busy -= 1
        if ticket is not None:
            deadline = st.deadline(q.learner_id)
            await self.follow(st, q.learner_id, str(ticket["ticket_id"]), ticket, since, deadline)
        st.check()

    async def request(self, q: Request) -> tuple[dict[str, Any] | None, float]:
        """Open a ticket (or get the open one), and when the request that did was sent; retried
        while matching has not seen the end of the learner's last session in the skill (409)."""
        pause, give_up = 0.2, time.monotonic() + BUSY_RETRY_S
        while True:
            async with self.posts:
                sent = time.monotonic()
                r = await self.send(q.learner_id, "POST", MATCH, MATCH, json=q.body, expect=(409,))
            if r is None:
                return None, sent
            if r.status_code != 409:
                body: dict[str, Any] = r.json()
                return body, sent
            if time.monotonic() > give_up:
                self.result.errors[f"POST {MATCH} 409"] += 1
                return None, sent
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)

    async def follow(
        self,
        st: _Round,
        learner: str,
        ticket_id: str,
        ticket: dict[str, Any] | None,
        since: float,
        deadline: float,
    ) -> None:
        """Long-poll a ticket until it is matched (then run its session) or the round's patience
        is up or no partner is left for it (then it is left for ``drain``). ``ticket`` is None for a requeue
        not seen yet. The ticket is in ``st.waiting`` until it leaves the queue."""
        try:
            ticket = await self._follow(st, learner, ticket_id, ticket, deadline)
        finally:
            if ticket is not None and ticket["status"] == "matched":
                st.busy += 1  # its session is under way before the ticket stops counting as waiting
            st.waiting.pop(ticket_id, None)
        if ticket is None:
            return
        if ticket["status"] == "matched":
            try:
                st.matched += 1
                st.waits.append(round(time.monotonic() - since, 3))
                await self.session(st, ticket)
            finally:
                st.busy -= 1
                st.check()
        elif ticket["status"] == "waiting":
            st.left[ticket_id] = learner  # cancelled by ``drain``
        st.check()

    async def _follow(
        self, st: _Round, learner: str, ticket_id: str, ticket: dict[str, Any] | None, deadline: float
    ) -> dict[str, Any] | None:
        """The ticket once it is not waiting, or waits past the deadline or hopelessly (None: unknown)."""
        give_up = time.monotonic() + REQUEUE_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if ticket is not None and (ticket["status"] != "waiting" or left <= 0 or st.hopeless.is_set()):
                return ticket
            if ticket is None and time.monotonic() > give_up:
                self.result.errors[f"GET {TICKET} requeue never appeared"] += 1
                return None
            # a ticket not seen yet: a short wait (the long-poll would hold on once it exists)
            wait = min(MAX_WAIT_S, max(1, math.ceil(left))) if ticket is not None else 1
            path = f"{MATCH}/{ticket_id}"
            poll = asyncio.ensure_future(self.send(learner, "GET", path, TICKET, wait=wait, expect=(404,)))
            hopeless = asyncio.ensure_future(st.hopeless.wait())
            await asyncio.wait({poll, hopeless}, return_when=asyncio.FIRST_COMPLETED)
            hopeless.cancel()
            if not poll.done():
                if ticket is not None:
                    poll.cancel()
                    await asyncio.gather(poll, return_exceptions=True)
                    return ticket
                await poll  # a requeue is found first (a DELETE needs its id to exist)
            r = poll.result()
            if r is None:
                return ticket  # the failure is counted; a waiting ticket is still cancelled
            if r.status_code == 200:
                ticket = r.json()
                if ticket is not None and ticket["status"] == "waiting":
                    st.waiting[ticket_id] = ticket
                    st.check()  # a requeue's level is known now
            elif ticket is not None:
                self.result.errors[f"GET {TICKET} 404"] += 1
                return None

    async def drain(self, st: _Round) -> None:
        """Cancel every ticket still waiting; one matched meanwhile has its session run (whose
        no-show, if any, requeues a ticket that is cancelled in turn)."""
        for _ in range(DRAIN_PASSES):
            if not st.left:
                return
            left, st.left = st.left, {}
            await asyncio.gather(*(self.cancel(st, ticket_id, who) for ticket_id, who in left.items()))
            await st.join()
        self.result.errors[f"DELETE {TICKET} still waiting"] += len(st.left)

    async def cancel(self, st: _Round, ticket_id: str, learner: str) -> None:
        async with self.posts:
            r = await self.send(learner, "DELETE", f"{MATCH}/{ticket_id}", TICKET, expect=(409,))
        if r is None:
            return
        ticket: dict[str, Any] = r.json()
        if r.status_code != 200:  # 202: not settled yet; 409: the engine got there first
            settled = await self.settled(ticket_id, learner)
            if settled is None:
                st.left[ticket_id] = learner  # try again
                return
            ticket = settled
        if ticket.get("status") == "matched":
            st.matched += 1
            st.busy += 1
            try:
                await self.session(st, ticket)
            finally:
                st.busy -= 1
        else:
            st.unmatched += 1

    async def settled(self, ticket_id: str, learner: str) -> dict[str, Any] | None:
        """The ticket once it has left the queue (None if it still waits after ``SETTLE_S``)."""
        give_up = time.monotonic() + SETTLE_S
        while time.monotonic() < give_up:
            r = await self.send(learner, "GET", f"{MATCH}/{ticket_id}", TICKET, wait=2)
            if r is None:
                return None
            ticket: dict[str, Any] = r.json()
            if ticket["status"] != "waiting":
                return ticket
        return None

    # --- sessions ----------------------------------------------------------------------------

    async def session(self, st: _Round, ticket: dict[str, Any]) -> None:
        """Run the session of a matched ticket, once (both tickets of a match lead here)."""
        session_id = str(ticket["session_id"])
        if session_id in self.seen:
            return
        self.seen.add(session_id)
        self.result.sessions += 1
        try:
            self.result.runs.append(await self._session(st, session_id, str(ticket["learner_id"])))
        finally:
            st.advance()

    async def appeared(self, session_id: str, participant: str) -> dict[str, Any] | None:
        """The session once the sessions service has folded the match into one (read as one of
        its participants: nobody else may)."""
        deadline = time.monotonic() + self.session_timeout
        pause = 0.3  # the fold is a broker hop away: polling sooner only loads the stack
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)
            try:
                r = await self.http.pick(session_id).get(
                    SESSION.replace("{session}", session_id), headers=self.headers(participant)
                )
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                body: dict[str, Any] = r.json()
                return body
        self.result.errors["GET /v1/sessions/{session} timeout"] += 1
        return None

    async def act(self, actor: str, session_id: str, what: str, json: dict[str, Any] | None = None) -> bool:
        path = f"{SESSION.replace('{session}', session_id)}/{what}"
        return await self.send(actor, "POST", path, f"{SESSION}/{what}", json=json) is not None

    async def _session(self, st: _Round, session_id: str, participant: str) -> SessionRun:
        round_no = st.plan.number
        view = await self.appeared(session_id, participant)
        if view is None:
            return SessionRun(session_id, st.plan.skill, round_no, (), "failed")
        async with self.slots:
            return await self._run(st, view)

    async def _run(self, st: _Round, view: dict[str, Any]) -> SessionRun:
        """The calls of a session that has appeared: a no-show, or start, complete and rate."""
        session_id, round_no = str(view["session_id"]), st.plan.number
        a, b = (str(x) for x in view["participants"])
        skill = str(view["skill"])
        self.meet(skill, a, b)
        run = SessionRun(session_id, skill, round_no, (a, b), "failed")
        ours = [x for x in (a, b) if self.plan.knows(x)]
        if len(ours) < 2:  # paired with a learner outside the simulation: ours leaves
            self.result.errors["session with a learner outside the simulation"] += 1
            for who in ours:
                await self.act(who, session_id, "abandon", {"reason": "partner is not simulated"})
            return SessionRun(session_id, skill, round_no, (a, b), "outside")
        absent = self.plan.no_show(a, b, skill=skill, round_no=round_no)
        if absent is not None:
            present = b if absent == a else a
            if not await self.act(present, session_id, "abandon", {"reason": "no-show", "no_show": absent}):
                return run
            self.result.no_shows += 1
            # matching puts the learner who came back in the queue, under an id derived from the match
            st.requeued += 1
            self.result.requeued += 1
            requeue = requeue_ticket_id(session_id, present)
            st.waiting[requeue] = None  # before the session stops counting as under way
            deadline = st.deadline(present, requeued=True)
            st.spawn(self.follow(st, present, requeue, None, time.monotonic(), deadline))
            return SessionRun(session_id, skill, round_no, (a, b), "no-show", no_show=absent)
        if not await self.act(a, session_id, "start") or not await self.act(b, session_id, "complete"):
            return run
        self.result.completed += 1
        ratings = 0
        for rater, ratee in ((a, b), (b, a)):
            scores = self.plan.scores(
                rater, ratee, skill=skill, specialty=view["specialty"], round_no=round_no
            )
            if await self.act(rater, session_id, "ratings", {"ratee_id": ratee, "scores": scores}):
                ratings += 1
        self.result.ratings += ratings
        return SessionRun(session_id, skill, round_no, (a, b), "completed", ratings=ratings)


async def drive(
    plan: HttpPlan,
    gateway_url: str,
    secret: str,
    *,
    concurrency: int = 24,
    match_wait_s: float = MATCH_WAIT_S,
    rules: Rules | None = DEFAULT_RULES,
    tick: Tick = _nothing,
) -> DriveResult:
    """Register the plan's learners, then run its rounds; ``tick`` is called per learner and per
    planned session (a round ticks the sessions it did not run when it ends)."""
    started = time.perf_counter()
    # long-polls hold a connection each (up to every learner of a round): no pool limit; the
    # driver's semaphores bound everything else
    http = Clients(gateway_url)
    try:
        driver = Driver(
            http, secret, plan, concurrency=concurrency, match_wait_s=match_wait_s, rules=rules, tick=tick
        )
        await asyncio.gather(*(driver.learner(p) for p in plan.learners))
        by_skill: dict[str, list[RoundPlan]] = {}
        for round_plan in plan.rounds():
            by_skill.setdefault(round_plan.skill, []).append(round_plan)
        await asyncio.gather(*(driver.skill(rounds) for rounds in by_skill.values()))
    finally:
        await http.aclose()
    driver.result.elapsed_s = time.perf_counter() - started
    return driver.result
