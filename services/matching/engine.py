"""The pairing engine (pure, in memory): one skill's waiting queue and the pairing rule.

The rule (``docs/matching.md`` has the picture):

- a pair is acceptable when the level gap is within the **window of the longer-waiting
  ticket**; a ticket's window widens with its waiting time in steps (``Expansion``s, in the
  manner of GameLift FlexMatch expansions), so nobody waits for ever for a perfect partner;
- never the same learner, and never two learners who were partners in the skill within their
  last ``recent_partners`` sessions there;
- among acceptable candidates: the same specialty first, then the same format, then the longest
  waiting (then the smaller gap, then the smaller ticket id, so every decision is determined);
- a ticket that has waited ``ttl_s`` expires.

A new ticket is decided on arrival (``arrive``): paired at once with its best acceptable
candidate, or queued. ``sweep`` runs periodically without arrivals: it expires old tickets and
re-examines every ticket whose window widened since it was last examined (only a wider window
can make a pair acceptable that was not), so a lone ticket is paired as soon as a partner is
acceptable. Buckets per (specialty, format) in waiting order keep a decision to a short scan.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

EPSILON = 1e-9


@dataclass(frozen=True)
class Expansion:
    """From ``after_s`` seconds of waiting on, a ticket accepts a level gap up to ``max_gap``."""

    after_s: float
    max_gap: float


DEFAULT_EXPANSIONS: tuple[Expansion, ...] = (
    Expansion(0.0, 0.25),
    Expansion(10.0, 0.5),
    Expansion(30.0, 1.0),
    Expansion(60.0, 2.0),
    Expansion(120.0, 3.0),
)


@dataclass(frozen=True)
class Rules:
    expansions: tuple[Expansion, ...] = DEFAULT_EXPANSIONS
    recent_partners: int = 3
    ttl_s: float = 900.0

    def __post_init__(self) -> None:
        if not self.expansions or self.expansions[0].after_s != 0:
            raise ValueError("the first expansion must start at 0 s")
        afters = [e.after_s for e in self.expansions]
        gaps = [e.max_gap for e in self.expansions]
        if afters != sorted(set(afters)) or gaps != sorted(gaps):
            raise ValueError("expansions must start later and allow wider gaps, in order")

    def step(self, waited_s: float) -> int:
        """Which expansion applies after ``waited_s`` seconds (0-based)."""
        return bisect.bisect_right([e.after_s for e in self.expansions], waited_s) - 1

    def window(self, waited_s: float) -> float:
        return self.expansions[max(0, self.step(waited_s))].max_gap


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    learner_id: str
    level: float
    requested_at: datetime
    specialty: str | None = None
    format: str | None = None
    #: When it entered the queue (its time to live runs from here); a requeued ticket keeps its
    #: original ``requested_at`` (its place and window) but starts a new time to live.
    queued_at: datetime | None = None

    @property
    def order(self) -> tuple[datetime, str]:
        """Waiting order: the longest waiting first (a requeued ticket keeps its original time)."""
        return (self.requested_at, self.ticket_id)


@dataclass(frozen=True)
class Pair:
    older: Ticket  # the one that waited longer
    newer: Ticket

    @property
    def gap(self) -> float:
        return abs(self.older.level - self.newer.level)


@dataclass
class _Bucket:
    """Tickets of one (specialty, format), in waiting order."""

    order: list[tuple[datetime, str]] = field(default_factory=list)

    def add(self, ticket: Ticket) -> None:
        bisect.insort(self.order, ticket.order)

    def remove(self, ticket: Ticket) -> None:
        index = bisect.bisect_left(self.order, ticket.order)
        if index < len(self.order) and self.order[index] == ticket.order:
            del self.order[index]


class SkillQueue:
    """The waiting tickets of one skill and the partners each learner met there recently."""

    def __init__(self, rules: Rules | None = None, recent: Mapping[str, Sequence[str]] | None = None) -> None:
        self.rules = rules or Rules()
        self.tickets: dict[str, Ticket] = {}
        self._buckets: dict[tuple[str | None, str | None], _Bucket] = {}
        self._steps: dict[str, int] = {}  # the window step each ticket was last examined at
        self._recent: dict[str, deque[str]] = {
            learner: deque(partners[-self.rules.recent_partners :], maxlen=self.rules.recent_partners)
            for learner, partners in (recent or {}).items()
        }

    def __len__(self) -> int:
        return len(self.tickets)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self.tickets

    # -- the queue --------------------------------------------------------------------------------

    def add(self, ticket: Ticket, now: datetime) -> None:
        if ticket.ticket_id in self.tickets:
            return
        self.tickets[ticket.ticket_id] = ticket
        self._buckets.setdefault((ticket.specialty, ticket.format), _Bucket()).add(ticket)
        self._steps[ticket.ticket_id] = self.rules.step(self._waited(ticket, now))

    def remove(self, ticket_id: str) -> Ticket | None:
        ticket = self.tickets.pop(ticket_id, None)
        if ticket is not None:
            self._buckets[(ticket.specialty, ticket.format)].remove(ticket)
            self._steps.pop(ticket_id, None)
        return ticket

    def waiting(self) -> Iterator[Ticket]:
        """Every waiting ticket, the longest waiting first."""
        for _, ticket_id in sorted(t.order for t in self.tickets.values()):
            yield self.tickets[ticket_id]

    def met(self, learner_a: str, learner_b: str) -> None:
        """Record that two learners were paired (both directions)."""
        if self.rules.recent_partners <= 0:
            return
        for one, other in ((learner_a, learner_b), (learner_b, learner_a)):
            self._recent.setdefault(one, deque(maxlen=self.rules.recent_partners)).append(other)

    def recent(self, learner_id: str) -> tuple[str, ...]:
        return tuple(self._recent.get(learner_id, ()))

    # -- decisions --------------------------------------------------------------------------------

    def arrive(self, ticket: Ticket, now: datetime) -> Pair | None:
        """Decide a new ticket: pair it with its best acceptable candidate, or queue it."""
        partner = self.best_partner(ticket, now)
        if partner is None:
            self.add(ticket, now)
            return None
        return self._pair(ticket, partner)

    def sweep(self, now: datetime, *, full: bool = False) -> tuple[list[Pair], list[Ticket]]:
        """Expire tickets past their time to live, then pair every ticket whose window widened
        since it was last examined (``full``: every ticket), the longest waiting first."""
        expired = [t for t in self.waiting() if self._queued(t, now) >= self.rules.ttl_s]
        for ticket in expired:
            self.remove(ticket.ticket_id)
        pairs: list[Pair] = []
        for ticket in list(self.waiting()):
            if ticket.ticket_id not in self.tickets:
                continue  # paired earlier in this sweep
            step = self.rules.step(self._waited(ticket, now))
            if not full and step <= self._steps.get(ticket.ticket_id, -1):
                continue
            self._steps[ticket.ticket_id] = step
            partner = self.best_partner(ticket, now)
            if partner is not None:
                pairs.append(self._pair(ticket, partner))
        return pairs, expired

    def best_partner(self, ticket: Ticket, now: datetime) -> Ticket | None:
        """The best acceptable waiting candidate for ``ticket`` (which may itself be waiting)."""
        own_window = self.rules.window(self._waited(ticket, now))
        shunned = set(self.recent(ticket.learner_id))
        for buckets in self._by_preference(ticket):
            best: tuple[tuple[datetime, float, str], Ticket] | None = None
            for bucket in buckets:
                found = self._first_acceptable(bucket, ticket, own_window, shunned, now)
                if found is not None:
                    key = (found.requested_at, abs(found.level - ticket.level), found.ticket_id)
                    if best is None or key < best[0]:
                        best = (key, found)
            if best is not None:
                return best[1]
        return None

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _waited(ticket: Ticket, now: datetime) -> float:
        return max(0.0, (now - ticket.requested_at).total_seconds())

    @staticmethod
    def _queued(ticket: Ticket, now: datetime) -> float:
        return max(0.0, (now - (ticket.queued_at or ticket.requested_at)).total_seconds())

    def _by_preference(self, ticket: Ticket) -> Iterable[list[_Bucket]]:
        """The buckets in four classes: same specialty and format, same specialty, same format, other."""
        classes: list[list[_Bucket]] = [[], [], [], []]
        for (specialty, fmt), bucket in self._buckets.items():
            if bucket.order:
                classes[2 * (specialty != ticket.specialty) + (fmt != ticket.format)].append(bucket)
        return classes

    def _first_acceptable(
        self, bucket: _Bucket, ticket: Ticket, own_window: float, shunned: set[str], now: datetime
    ) -> Ticket | None:
        """The longest-waiting acceptable candidate in one bucket."""
        for _, candidate_id in bucket.order:
            candidate = self.tickets[candidate_id]
            if candidate_id == ticket.ticket_id or candidate.learner_id == ticket.learner_id:
                continue
            if candidate.learner_id in shunned or ticket.learner_id in self.recent(candidate.learner_id):
                continue
            window = max(own_window, self.rules.window(self._waited(candidate, now)))
            if abs(candidate.level - ticket.level) <= window + EPSILON:
                return candidate
        return None

    def _pair(self, ticket: Ticket, partner: Ticket) -> Pair:
        self.remove(ticket.ticket_id)
        self.remove(partner.ticket_id)
        self.met(ticket.learner_id, partner.learner_id)
        older, newer = sorted((ticket, partner), key=lambda t: t.order)
        return Pair(older=older, newer=newer)
