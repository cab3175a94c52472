"""One round of a drive: its bookkeeping, and when its wait may end before the deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.matching.engine import EPSILON, Rules
from sim.plan import RoundPlan

Tick = Callable[[], None]

REQUEUE_GRACE_S = 3.0  # the least a requeued learner waits for a partner


@dataclass
class Round:
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
