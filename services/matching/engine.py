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
acceptable. Each (specialty, format) bucket is binned by level (``index.LevelBins``), so a
decision looks at the levels its window reaches, not at every ticket; a heap of the times at
which each ticket's window next widens (or it expires) lets a sweep touch only those tickets.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Protocol

from services.matching.index import LevelBins, width_for

EPSILON = 1e-9
EARLIEST = datetime.min.replace(tzinfo=UTC)


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

    @cached_property
    def _afters(self) -> tuple[float, ...]:
        return tuple(e.after_s for e in self.expansions)

    def step(self, waited_s: float) -> int:
        """Which expansion applies after ``waited_s`` seconds (0-based)."""
        return bisect.bisect_right(self._afters, waited_s) - 1

    def window(self, waited_s: float) -> float:
        return self.expansions[max(0, self.step(waited_s))].max_gap

    def next_widening_s(self, waited_s: float) -> float | None:
        """The waiting time at which the window next widens; None once it is widest."""
        index = bisect.bisect_right(self._afters, waited_s)
        return self._afters[index] if index < len(self._afters) else None


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


class Partners(Protocol):
    """Who a learner met in the skill lately (the recent-partner rule reads it)."""

    def recent(self, learner_id: str) -> Collection[str]: ...


@dataclass
class RecentPartners:
    """The last ``keep`` partners of each learner, recorded as pairs are made."""

    keep: int
    _recent: dict[str, deque[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, keep: int, known: Mapping[str, Sequence[str]] | None = None) -> RecentPartners:
        memory = cls(keep)
        for learner, partners in (known or {}).items():
            memory._recent[learner] = deque(partners[-keep:] if keep > 0 else (), maxlen=keep)
        return memory

    def met(self, learner_a: str, learner_b: str) -> None:
        if self.keep <= 0:
            return
        for one, other in ((learner_a, learner_b), (learner_b, learner_a)):
            self._recent.setdefault(one, deque(maxlen=self.keep)).append(other)

    def recent(self, learner_id: str) -> tuple[str, ...]:
        return tuple(self._recent.get(learner_id, ()))


Bucket = tuple[str | None, str | None]  # (specialty, format)


class SkillQueue:
    """The waiting tickets of one skill and the partners each learner met there recently.

    ``partners``: a memory kept by the caller (the matcher's, from the log); without it the
    queue keeps its own and records each pair it makes (``recent`` seeds it)."""

    def __init__(
        self,
        rules: Rules | None = None,
        recent: Mapping[str, Sequence[str]] | None = None,
        *,
        partners: Partners | None = None,
    ) -> None:
        self.rules = rules or Rules()
        self.tickets: dict[str, Ticket] = {}
        self._own = RecentPartners.of(self.rules.recent_partners, recent) if partners is None else None
        self.partners: Partners = self._own if self._own is not None else partners  # type: ignore[assignment]
        self._buckets: dict[Bucket, LevelBins] = {}
        self._classes: dict[Bucket, list[list[LevelBins]]] = {}  # per preference: _by_preference
        self._steps: dict[str, int] = {}  # the window step each ticket was last examined at
        # (when the ticket's window next widens or it expires, seq, ticket id): one live entry
        # a ticket; entries of tickets gone are dropped when they come up
        self._changes: list[tuple[datetime, int, str]] = []
        self._scheduled: dict[str, datetime] = {}  # each ticket's live entry
        self._seq = itertools.count()
        self._due: set[str] = set()  # tickets whose change time has come, not yet swept

    def __len__(self) -> int:
        return len(self.tickets)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self.tickets

    # -- the queue --------------------------------------------------------------------------------

    def add(self, ticket: Ticket, now: datetime, *, examined: bool = True) -> None:
        """Queue a ticket; ``examined=False``: the next sweep examines it whatever its window
        (a ticket loaded or put back, that no decision has looked at with this queue)."""
        if ticket.ticket_id in self.tickets:
            return
        self.tickets[ticket.ticket_id] = ticket
        self._bucket(ticket).add(ticket.level, ticket.order)
        if examined:
            self._steps[ticket.ticket_id] = self.rules.step(self._waited(ticket, now))
            self._schedule(ticket, now)
        else:
            self._due.add(ticket.ticket_id)

    def remove(self, ticket_id: str) -> Ticket | None:
        ticket = self.tickets.pop(ticket_id, None)
        if ticket is not None:
            self._buckets[(ticket.specialty, ticket.format)].remove(ticket.level, ticket.order)
            self._steps.pop(ticket_id, None)
            self._scheduled.pop(ticket_id, None)
            self._due.discard(ticket_id)
        return ticket

    def relevel(self, ticket_id: str, level: float) -> None:
        """The learner's level changed (a claim or a score): the ticket waits at the new one."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None or ticket.level == level:
            return
        bucket = self._buckets[(ticket.specialty, ticket.format)]
        bucket.remove(ticket.level, ticket.order)
        self.tickets[ticket_id] = replace(ticket, level=level)
        bucket.add(level, ticket.order)

    def waiting(self) -> Iterator[Ticket]:
        """Every waiting ticket, the longest waiting first."""
        for _, ticket_id in sorted(t.order for t in self.tickets.values()):
            yield self.tickets[ticket_id]

    def met(self, learner_a: str, learner_b: str) -> None:
        """Record that two learners were paired (both directions), when the queue keeps the memory."""
        if self._own is not None:
            self._own.met(learner_a, learner_b)

    def recent(self, learner_id: str) -> tuple[str, ...]:
        return tuple(self.partners.recent(learner_id))

    # -- decisions --------------------------------------------------------------------------------

    def arrive(self, ticket: Ticket, now: datetime) -> Pair | None:
        """Decide a new ticket: pair it with its best acceptable candidate, or queue it."""
        partner = self.best_partner(ticket, now)
        if partner is None:
            self.add(ticket, now)
            return None
        return self._pair(ticket, partner)

    def next_change(self) -> datetime | None:
        """When the queue next needs a sweep (a window widens, a ticket expires, or a ticket
        awaits its first look: ``EARLIEST``); None when nothing will change without arrivals."""
        if self._due:
            return EARLIEST
        changes = self._changes
        while changes and self._scheduled.get(changes[0][2]) != changes[0][0]:
            heapq.heappop(changes)  # an entry no longer live
        return changes[0][0] if changes else None

    def widened(self, now: datetime) -> list[Ticket]:
        """The tickets the next sweep re-examines (their window widened) and does not expire."""
        self._collect(now)
        due = [self.tickets[t] for t in self._due]
        return [
            t
            for t in due
            if self._queued(t, now) < self.rules.ttl_s
            and self.rules.step(self._waited(t, now)) > self._steps.get(t.ticket_id, -1)
        ]

    def sweep(self, now: datetime, *, full: bool = False) -> tuple[list[Pair], list[Ticket]]:
        """Expire tickets past their time to live, then pair every ticket whose window widened
        since it was last examined (``full``: every ticket), the longest waiting first."""
        self._collect(now)
        candidates = list(self.tickets) if full else list(self._due)
        self._due.clear()
        expired: list[Ticket] = []
        examine: list[Ticket] = []
        for ticket_id in candidates:
            ticket = self.tickets[ticket_id]
            if self._queued(ticket, now) >= self.rules.ttl_s:
                expired.append(ticket)
                continue
            step = self.rules.step(self._waited(ticket, now))
            if full or step > self._steps.get(ticket_id, -1):
                self._steps[ticket_id] = step
                examine.append(ticket)
            self._schedule(ticket, now)
        expired.sort(key=lambda t: t.order)
        for ticket in expired:
            self.remove(ticket.ticket_id)
        pairs: list[Pair] = []
        for ticket in sorted(examine, key=lambda t: t.order):
            if ticket.ticket_id not in self.tickets:
                continue  # paired earlier in this sweep
            current = self.tickets[ticket.ticket_id]  # its level may have been updated
            partner = self.best_partner(current, now)
            if partner is not None:
                pairs.append(self._pair(current, partner))
        return pairs, expired

    def best_partner(self, ticket: Ticket, now: datetime) -> Ticket | None:
        """The best acceptable waiting candidate for ``ticket`` (which may itself be waiting)."""
        own_window = self.rules.window(self._waited(ticket, now))
        shunned = set(self.partners.recent(ticket.learner_id))
        for buckets in self._by_preference(ticket):
            best: tuple[tuple[datetime, float, str], Ticket] | None = None
            for bucket in buckets:
                if not bucket:
                    continue
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

    def _bucket(self, ticket: Ticket) -> LevelBins:
        key = (ticket.specialty, ticket.format)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = LevelBins(width_for(self.rules.expansions[0].max_gap))
            self._classes.clear()
        return bucket

    def _schedule(self, ticket: Ticket, now: datetime) -> None:
        """Note when the ticket next needs a look: its window widens, or it expires."""
        expires = (ticket.queued_at or ticket.requested_at) + timedelta(seconds=self.rules.ttl_s)
        widens_s = self.rules.next_widening_s(self._waited(ticket, now))
        at = expires if widens_s is None else min(expires, ticket.requested_at + timedelta(seconds=widens_s))
        self._scheduled[ticket.ticket_id] = at
        heapq.heappush(self._changes, (at, next(self._seq), ticket.ticket_id))
        if len(self._changes) > 4 * len(self.tickets) + 1024:  # mostly entries no longer live
            self._changes = [e for e in self._changes if self._scheduled.get(e[2]) == e[0]]
            heapq.heapify(self._changes)

    def _collect(self, now: datetime) -> None:
        changes = self._changes
        while changes and changes[0][0] <= now:
            at, _, ticket_id = heapq.heappop(changes)
            if self._scheduled.get(ticket_id) == at:
                del self._scheduled[ticket_id]
                self._due.add(ticket_id)

    def _by_preference(self, ticket: Ticket) -> Iterable[list[LevelBins]]:
        """The buckets in four classes: same specialty and format, same specialty, same format,
        other (kept per preference until a new bucket appears)."""
        key = (ticket.specialty, ticket.format)
        classes = self._classes.get(key)
        if classes is None:
            classes = self._classes[key] = [[], [], [], []]
            for (specialty, fmt), bucket in self._buckets.items():
                classes[2 * (specialty != ticket.specialty) + (fmt != ticket.format)].append(bucket)
        return classes

    def _first_acceptable(
        self, bucket: LevelBins, ticket: Ticket, own_window: float, shunned: set[str], now: datetime
    ) -> Ticket | None:
        """The longest-waiting acceptable candidate in one bucket. Only the bins the widest window
        that applies can reach are looked at; in each, the tickets waiting longer than the
        newcomer with a wider window than its own are tried in waiting order (acceptable by their
        window), and those within its own window are found by level (acceptable by its window)."""
        oldest = bucket.oldest()
        if oldest is None:
            return None
        rules, level = self.rules, ticket.level
        reach = max(own_window, rules.window(max(0.0, (now - oldest[0]).total_seconds()))) + EPSILON

        def allowed(candidate: Ticket) -> bool:
            if candidate.ticket_id == ticket.ticket_id or candidate.learner_id == ticket.learner_id:
                return False
            return candidate.learner_id not in shunned and ticket.learner_id not in self.partners.recent(
                candidate.learner_id
            )

        best: tuple[datetime, str] | None = None
        for key, entries in bucket.within(level - reach, level + reach):
            if best is not None and entries[0] >= best:
                continue  # its longest waiting is newer than the best found
            low, high = bucket.bounds(key)
            nearest = max(0.0, low - level, level - high)  # the smallest gap this bin can hold
            for order in entries:  # by their own, wider windows
                if best is not None and order >= best:
                    break
                window = rules.window(max(0.0, (now - order[0]).total_seconds()))
                if window <= own_window or window + EPSILON < nearest:
                    break  # the newer tickets of this bin have narrower windows still
                candidate = self.tickets[order[1]]
                if abs(candidate.level - level) <= window + EPSILON and allowed(candidate):
                    best = order
                    break
            if own_window + EPSILON < nearest:
                continue
            lowest, highest = level - own_window - EPSILON, level + own_window + EPSILON
            # by the newcomer's window: a bin inside it in waiting order, one across its edge by level
            inside = lowest <= low and high <= highest
            for order in entries if inside else bucket.between(key, lowest, highest):
                if best is not None and order >= best:
                    if inside:
                        break
                    continue
                if allowed(self.tickets[order[1]]):
                    best = order
                    if inside:
                        break
        return self.tickets[best[1]] if best is not None else None

    def _pair(self, ticket: Ticket, partner: Ticket) -> Pair:
        self.remove(ticket.ticket_id)
        self.remove(partner.ticket_id)
        self.met(ticket.learner_id, partner.learner_id)
        older, newer = sorted((ticket, partner), key=lambda t: t.order)
        return Pair(older=older, newer=newer)
