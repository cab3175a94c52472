"""The rating path: a rating accepted (201) until the ratee's passport shows the SCI it made.

Ratings of completed sessions are sent open-loop at a constant rate (due times fixed
beforehand), each by its rater through the gateway. When one is accepted, the ratee's passport
(``GET /v1/passports/{ratee}``, through the gateway) is polled until it **shows** the rating:

- the rating is the ratee's ``k``-th accepted rating in the skill (each comes from another
  session, so ``k`` distinct sessions with evidence);
- *evidence shown*: the passport's skill entry has ``sessions >= k`` (the passport folded the
  EvidenceRecorded the evidence service made of the rating);
- *SCI shown* (the figure): also ``practice >= round(25 (1 - e^(-k/6)), 2)``, the Practice
  part of an SCI computed by sci over ``k`` sessions (Practice grows with every session, so
  only an SciUpdated that folded this rating can carry it; the passport folded that update).

The rating order keeps the ratings of one ratee and skill a whole round apart (several
seconds at 200/s), so one is seen before the next is sent; a rating sent while the ratee's
previous one in the skill was not yet shown is counted as ``overlapping`` (for it, ``k`` can
be reached by the later rating first).

Polls: each ratee with a rating not yet shown is polled every ``POLL_S`` from ``POLL_S / 2``
after the 201 (one poll serves all of that ratee's pending ratings), at most ``POLL_BUDGET``
polls in flight. A rating's time is from its 201 to the answer of the first poll showing it
(an upper bound); the poll before it, which did not show it, was sent ``resolution`` earlier
(the lower bound: the true time lies between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.load_gen import Tally
from bench.load_http import HttpError, Pool
from services.sci.domain import practice_points

POLL_S = 0.05
POLL_BUDGET = 48  # polls in flight at most
DRAIN_S = 60.0  # how long pending ratings are polled after the last was sent
POST_TIMEOUT_S = 30.0  # a rating unanswered this long counts as sent without an answer


@dataclass(frozen=True)
class PlannedRating:
    session_id: str
    rater: str
    ratee: str
    skill: str
    scores: dict[str, int]


@dataclass
class _Pending:
    skill: str
    k: int
    accepted_at: float
    evidence_at: float | None = None


@dataclass
class RatingResult:
    rate: float
    sent: int = 0
    post: Tally = field(default_factory=Tally)  # rating POSTs, latency from the due time
    polls: Tally = field(default_factory=Tally)
    lag_ms: list[float] = field(default_factory=list)
    accepted: list[tuple[str, str, str, str]] = field(default_factory=list)  # (session, rater, ratee, skill)
    unanswered: list[tuple[str, str, str, str]] = field(default_factory=list)  # sent, no answer seen
    sci_ms: list[float] = field(default_factory=list)  # 201 -> SCI shown
    evidence_ms: list[float] = field(default_factory=list)  # 201 -> evidence shown
    sci_lower_ms: list[float] = field(default_factory=list)  # 201 -> the last poll that did not show it
    resolution_ms: list[float] = field(default_factory=list)  # hit answer - previous poll's send
    never_shown: int = 0
    overlapping: int = 0
    seconds: float = 0.0
    unexpected: Counter[str] = field(default_factory=Counter)


def shows(entry: dict[str, Any] | None, k: int) -> tuple[bool, bool]:
    """(evidence shown, SCI shown) of the ``k``-th rated session in a passport's skill entry."""
    if entry is None:
        return False, False
    evidence = int(entry["sessions"]) >= k
    return evidence, evidence and float(entry["practice"]) >= round(practice_points(k), 2) - 1e-9


class RatingPath:
    def __init__(self, url: str, tokens: dict[str, str], rate: float) -> None:
        self.posts = Pool.of(url, limit=512, timeout=POST_TIMEOUT_S)
        self.reads = Pool.of(url, limit=POLL_BUDGET)
        self.tokens = tokens
        self.rate = rate
        self.result = RatingResult(rate)
        self.count: Counter[tuple[str, str]] = Counter()  # accepted per (ratee, skill)
        self.pending: dict[str, list[_Pending]] = {}  # ratee -> ratings not shown yet
        self.next_poll: dict[str, float] = {}
        self.last_sent: dict[str, float] = {}  # ratee -> send time of its last poll
        self.polling: set[str] = set()

    async def post(self, rating: PlannedRating, due: float) -> None:
        r = self.result
        sent = time.monotonic()
        r.lag_ms.append((sent - due) * 1000)
        body = {"ratee_id": rating.ratee, "scores": rating.scores}
        headers = {"Authorization": self.tokens[rating.rater]}
        try:
            answer = await self.posts.request(
                "POST", f"/v1/sessions/{rating.session_id}/ratings", json_body=body, headers=headers
            )
        except (HttpError, OSError, TimeoutError) as exc:
            r.post.failures[type(exc).__name__] += 1
            r.unanswered.append((rating.session_id, rating.rater, rating.ratee, rating.skill))
            return
        now = time.monotonic()
        r.post.latencies_ms.append((now - due) * 1000)
        r.post.statuses[answer.status] += 1
        if answer.status != 201:
            r.unexpected[f"POST rating {answer.status}"] += 1
            return
        r.accepted.append((rating.session_id, rating.rater, rating.ratee, rating.skill))
        key = (rating.ratee, rating.skill)
        self.count[key] += 1
        waiting = self.pending.setdefault(rating.ratee, [])
        if any(p.skill == rating.skill for p in waiting):
            r.overlapping += 1
        waiting.append(_Pending(rating.skill, self.count[key], now))
        self.next_poll.setdefault(rating.ratee, now + POLL_S / 2)

    async def poll(self, ratee: str) -> None:
        r = self.result
        sent = time.monotonic()
        previous = self.last_sent.get(ratee)
        self.last_sent[ratee] = sent
        try:
            answer = await self.reads.request("GET", f"/v1/passports/{ratee}")
        except (HttpError, OSError, TimeoutError) as exc:
            r.polls.failures[type(exc).__name__] += 1
            return
        finally:
            self.polling.discard(ratee)
        now = time.monotonic()
        r.polls.latencies_ms.append((now - sent) * 1000)
        r.polls.statuses[answer.status] += 1
        if answer.status != 200:
            self.next_poll[ratee] = now + POLL_S
            return
        entries = {e["skill"]: e for e in answer.json()["skills"]}
        left = []
        for p in self.pending.get(ratee, []):
            evidence, sci = shows(entries.get(p.skill), p.k)
            if evidence and p.evidence_at is None:
                p.evidence_at = now
                r.evidence_ms.append((now - p.accepted_at) * 1000)
            if sci:
                r.sci_ms.append((now - p.accepted_at) * 1000)
                missed = previous if previous is not None and previous >= p.accepted_at else p.accepted_at
                r.sci_lower_ms.append((missed - p.accepted_at) * 1000)
                r.resolution_ms.append((now - missed) * 1000)
            else:
                left.append(p)
        if left:
            self.pending[ratee] = left
            self.next_poll[ratee] = sent + POLL_S
        else:
            self.pending.pop(ratee, None)
            self.next_poll.pop(ratee, None)
            self.last_sent.pop(ratee, None)

    async def _poller(self, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while not (stop.is_set() and not self.pending):
            now = time.monotonic()
            due = sorted(
                (t, who) for who, t in self.next_poll.items() if t <= now and who not in self.polling
            )
            for _, who in due[: max(0, POLL_BUDGET - len(self.polling))]:
                self.polling.add(who)
                task = asyncio.create_task(self.poll(who))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, ratings: list[PlannedRating]) -> RatingResult:
        """Send ``ratings`` at ``rate`` per second and follow each to the passport."""
        stop = asyncio.Event()
        poller = asyncio.create_task(self._poller(stop))
        t0 = time.monotonic() + 0.5
        posts: set[asyncio.Task[None]] = set()
        for i, rating in enumerate(ratings):
            due = t0 + i / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(self.post(rating, due))
            posts.add(task)
            task.add_done_callback(posts.discard)
        self.result.sent = len(ratings)
        self.result.seconds = round(time.monotonic() - t0, 2)
        if posts:
            await asyncio.wait(set(posts), timeout=30)
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, DRAIN_S)
        self.result.never_shown = sum(len(v) for v in self.pending.values())
        self.posts.close()
        self.reads.close()
        return self.result


def summary(values_ms: list[float], missing: int = 0) -> dict[str, Any]:
    """p50/p90/p99/max; ``missing`` values count as never (infinite)."""
    from bench.load_gen import percentile

    values = values_ms + [math.inf] * missing

    def fig(v: float) -> float | None:
        return None if math.isinf(v) else round(v, 1)

    return {
        "count": len(values_ms),
        "p50_ms": fig(percentile(values, 50)),
        "p90_ms": fig(percentile(values, 90)),
        "p99_ms": fig(percentile(values, 99)),
        "max_ms": fig(max(values, default=0.0)),
    }
