"""One skill of the matcher's book (pure): the log's ticket states and what may be offered.

``SkillBook`` keeps, for one skill, every ticket's state in the log's rule, the waiting ones
(pending, queued, promised) and the held ones (``book.py`` says what each means), the skill's
``SkillQueue`` and its ``PartnerMemory``. ``Activity`` is shared by every skill of a book: which
of them have something to do, so that a step touches those only.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from services.matching.engine import Rules, SkillQueue, Ticket
from services.matching.partners import PartnerMemory
from shared.ticket_log import MATCHED, WAITING

#: Closed tickets whose state a skill remembers (a later copy of their request is a copy); an
#: older one's copy is checked against the store, which keeps every ticket.
CLOSED_KEPT: Final = 100_000


@dataclass(frozen=True)
class Promise:
    match_id: str | None  # None: an expiry
    at: datetime


def refused(doc: Mapping[str, Any]) -> bool:
    """A request the log refused (its learner already waited in the skill)."""
    return bool(doc.get("refused")) or str(doc.get("reason") or "").startswith("the learner already waits")


def closed_by(doc: Mapping[str, Any]) -> tuple[str, str | None]:
    """What closed a ticket the store has closed: (status, match id of a match)."""
    status = str(doc["status"])
    return (status, doc.get("match_id") if status == MATCHED else None)


@dataclass
class Activity:
    """Which skills have something to do, so that a step touches those only (a replica may own
    thousands of skills; an arrival concerns one)."""

    pending: dict[str, None] = field(default_factory=dict)  # skills with pending tickets, in order
    promising: set[str] = field(default_factory=set)  # skills with promises
    holding: set[str] = field(default_factory=set)  # skills with held tickets
    wakes: list[tuple[datetime, int, str]] = field(default_factory=list)  # (when, seq, skill) heap
    wake_at: dict[str, datetime] = field(default_factory=dict)  # each skill's earliest wake
    seq: int = 0

    def wake(self, skill: str, at: datetime | None) -> None:
        """The skill's queue next needs a sweep at ``at`` (None: not without arrivals)."""
        if at is None:
            return
        known = self.wake_at.get(skill)
        if known is None or at < known:
            self.wake_at[skill] = at
            self.seq += 1
            heapq.heappush(self.wakes, (at, self.seq, skill))

    def awake(self, now: datetime) -> list[str]:
        """The skills whose wake has come, each once, their wakes consumed."""
        found: dict[str, None] = {}
        while self.wakes and self.wakes[0][0] <= now:
            at, _, skill = heapq.heappop(self.wakes)
            if self.wake_at.get(skill) == at:
                del self.wake_at[skill]
                found[skill] = None
        return list(found)

    def forget(self, skill: str) -> None:
        self.pending.pop(skill, None)
        self.promising.discard(skill)
        self.holding.discard(skill)
        self.wake_at.pop(skill, None)


@dataclass
class SkillBook:
    """One skill: the log's ticket states and the queue of what may be offered."""

    skill: str
    rules: Rules
    activity: Activity
    partners: PartnerMemory = field(init=False)
    queue: SkillQueue = field(init=False)
    status: dict[str, str] = field(default_factory=dict)  # every ticket known: the log's state
    waiting: dict[str, Ticket] = field(default_factory=dict)  # those the log has waiting
    open: dict[str, str] = field(default_factory=dict)  # learner -> their waiting ticket
    pending: dict[str, tuple[Ticket, bool]] = field(default_factory=dict)  # (ticket, arrived)
    promised: dict[str, Promise] = field(default_factory=dict)
    held: dict[str, tuple[tuple[str, str | None], Ticket]] = field(default_factory=dict)  # (closing, ticket)
    closed: deque[str] = field(default_factory=deque)  # closing order, to forget the oldest

    def __post_init__(self) -> None:
        self.partners = PartnerMemory(self.rules.recent_partners)
        self.queue = SkillQueue(self.rules, partners=self.partners)

    def open_ticket(self, ticket: Ticket, *, arrived: bool) -> None:
        self.status[ticket.ticket_id] = WAITING
        self.waiting[ticket.ticket_id] = ticket
        self.open[ticket.learner_id] = ticket.ticket_id
        self.put_pending(ticket, arrived=arrived)

    def put_pending(self, ticket: Ticket, *, arrived: bool) -> None:
        self.pending[ticket.ticket_id] = (ticket, arrived)
        self.activity.pending[self.skill] = None

    def promise(self, ticket_id: str, promise: Promise) -> None:
        self.promised[ticket_id] = promise
        self.activity.promising.add(self.skill)

    def hold(self, ticket: Ticket, closing: tuple[str, str | None]) -> None:
        self.status[ticket.ticket_id] = WAITING  # in the log's rule; not in ``waiting``: never offered
        self.held[ticket.ticket_id] = (closing, ticket)
        self.activity.holding.add(self.skill)

    def close(self, ticket_id: str, status: str) -> None:
        self.status[ticket_id] = status
        ticket = self.waiting.pop(ticket_id, None)
        self.queue.remove(ticket_id)
        self.pending.pop(ticket_id, None)
        self.promised.pop(ticket_id, None)
        self.held.pop(ticket_id, None)
        if ticket is not None and self.open.get(ticket.learner_id) == ticket_id:
            del self.open[ticket.learner_id]
        self.remember_closed(ticket_id)

    def remember_closed(self, ticket_id: str) -> None:
        self.closed.append(ticket_id)
        while len(self.closed) > CLOSED_KEPT:
            self.status.pop(self.closed.popleft(), None)

    def release(self, ticket_id: str) -> None:
        """A promise ends without its event taking effect: the ticket is offered again (after
        its level is read again)."""
        self.promised.pop(ticket_id, None)
        ticket = self.waiting.get(ticket_id)
        if ticket is not None and self.status.get(ticket_id) == WAITING and ticket_id not in self.held:
            self.put_pending(ticket, arrived=False)

    def waiting_until(self, ticket_id: str, closing: tuple[str, str | None]) -> bool:
        """Whether the log has the ticket waiting just before an event that would close it so."""
        if self.status.get(ticket_id) != WAITING:
            return False
        held = self.held.get(ticket_id)
        return held is None or held[0] == closing
