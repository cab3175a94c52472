"""Drive a planned population through the public HTTP API of a running stack (demos, load).

Learners register and claim their skills. Then the population runs in rounds (the rounds of a
skill one after the other, the skills side by side), as clients of the real matching engine:

1. every learner of the round asks for a partner, all at once (POST /v1/match-requests);
2. each follows their ticket with ``GET /v1/match-requests/{id}?wait=`` (a long-poll) until the
   engine matches it or their patience (``match_wait_s`` from their request) is up;
3. each session the engine made runs with the partner it chose (``sim.http_sessions``): the
   plan draws, for that pair and round, whether one of them does not show up (the other
   abandons it naming them as the no-show, and the matching service puts them back in the
   queue: that requeue ticket is followed like the others, with the learner's deadline) or the
   scores each gives the other (one completes it, the other confirms it, and they rate each
   other);
4. a ticket still waiting at its deadline is cancelled (DELETE), so none is left behind; one
   the engine matched before the cancel took effect gets its session run too.

A round stops waiting before the deadlines once nothing is under way and no two waiting
tickets could be paired by then under the matching rules (``could_pair``): their outcome is
known, and a lone beginner among experts would otherwise hold every round for its full
patience. A learner's next request in a skill waits (409, retried briefly) until matching has
folded the end of their last session there. A non-2xx answer is counted by route and status,
never raised (``sim.http_api``); the round's bookkeeping is ``sim.http_round``, the report
``sim.http_results``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any

from services.matching.engine import Rules
from services.matching.projection import requeue_ticket_id
from sim.http_api import Api, Clients
from sim.http_results import DriveResult, RoundStats, SessionRun
from sim.http_round import Round, Tick, could_pair
from sim.http_sessions import Sessions
from sim.plan import MATCH, HttpPlan, LearnerPlan, Request, RoundPlan

__all__ = ["MATCH_WAIT_S", "DriveResult", "RoundStats", "SessionRun", "Tick", "could_pair", "drive"]


TICKET = f"{MATCH}/{{ticket}}"
MAX_WAIT_S = 60  # the longest ?wait= the matching service accepts
BUSY_RETRY_S = 10.0  # how long a request refused with 409 (last session not ended yet) is retried
SETTLE_S = 10.0  # how long a cancelled ticket or a requeue is followed until the log settles it
MATCH_WAIT_S = 15.0  # a round's patience: learners still waiting then cancel
DEFAULT_RULES = Rules()  # the matching service's default rules (LEMMA_MATCHING_* unset)
# how long the driver looks for a requeue ticket: matching folds the no-show from the sessions
# topic, more than 10 s late when the machine is busy; one found later is the learner's open
# ticket in their next round (a request answers with it), or refused if they asked first
REQUEUE_TIMEOUT_S = 30.0
DRAIN_PASSES = 5  # cancel, run what was matched meanwhile, cancel its requeues, ...: a bound


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
        tick: Tick = lambda: None,
    ) -> None:
        """``rules``: the stack's pairing rules, to end a round's wait once no pair is possible
        (None: always wait out ``match_wait_s``)."""
        self.http = http
        self.plan = plan
        self.result = DriveResult()
        self.api = Api(http, secret, self.result)
        self.sessions = Sessions(self.api, plan, timeout=session_timeout)
        self.send = self.api.send
        self.slots = asyncio.Semaphore(concurrency)  # registrations and sessions in flight
        self.posts = asyncio.Semaphore(2 * concurrency)  # match requests and cancels in flight
        self.match_wait_s = match_wait_s
        self.tick = tick
        self.seen: set[str] = set()  # sessions run or being run
        self.rules = rules
        self.partners: dict[tuple[str, str], deque[str]] = {}  # (skill, learner) -> latest partners

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
        st = Round(plan, patience=self.match_wait_s, started=now, tick=self.tick, rules=self.rules)
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

    async def ask(self, st: Round, q: Request) -> None:
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
        st: Round,
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
        self, st: Round, learner: str, ticket_id: str, ticket: dict[str, Any] | None, deadline: float
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

    async def drain(self, st: Round) -> None:
        """Cancel every ticket still waiting; one matched meanwhile has its session run (whose
        no-show, if any, requeues a ticket that is cancelled in turn)."""
        for _ in range(DRAIN_PASSES):
            if not st.left:
                return
            left, st.left = st.left, {}
            await asyncio.gather(*(self.cancel(st, ticket_id, who) for ticket_id, who in left.items()))
            await st.join()
        self.result.errors[f"DELETE {TICKET} still waiting"] += len(st.left)

    async def cancel(self, st: Round, ticket_id: str, learner: str) -> None:
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

    async def session(self, st: Round, ticket: dict[str, Any]) -> None:
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

    async def _session(self, st: Round, session_id: str, participant: str) -> SessionRun:
        round_no = st.plan.number
        view = await self.sessions.appeared(session_id, participant)
        if view is None:
            return SessionRun(session_id, st.plan.skill, round_no, (), "failed")
        a, b = (str(x) for x in view["participants"])
        self.meet(str(view["skill"]), a, b)
        async with self.slots:
            run = await self.sessions.run(view, round_no)
        if run.outcome == "completed":
            self.result.completed += 1
            self.result.ratings += run.ratings
        elif run.outcome == "no-show":
            self.result.no_shows += 1
            # matching puts the learner who came back in the queue, under an id derived from the match
            present = b if run.no_show == a else a
            st.requeued += 1
            self.result.requeued += 1
            requeue = requeue_ticket_id(session_id, present)
            st.waiting[requeue] = None  # before the session stops counting as under way
            deadline = st.deadline(present, requeued=True)
            st.spawn(self.follow(st, present, requeue, None, time.monotonic(), deadline))
        return run


async def drive(
    plan: HttpPlan,
    gateway_url: str,
    secret: str,
    *,
    concurrency: int = 24,
    match_wait_s: float = MATCH_WAIT_S,
    rules: Rules | None = DEFAULT_RULES,
    tick: Tick = lambda: None,
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
