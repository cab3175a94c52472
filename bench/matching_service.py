"""The matching service's own decision path, run in process on a simulated clock.

``Replica`` is one matching replica as the service builds it: a ``ServiceContext`` on a real
store (SQLite, in memory or in a file) and the service's ``Matcher``, owning every partition of
``lemma.matching.v1``. It is fed records exactly as the engine group's consumer feeds it
(``Matcher.on_records``), swept as the service's loop sweeps it (``Matcher.sweep``), and what it
commits to the outbox is read back and fed to it as the log (its own MatchFound and MatchExpired,
in offset order), as the relay and the consumer would. Only the broker is missing.

``ServiceMatcher`` puts a replica behind the simulator's ``Matcher`` protocol
(``sim.arrivals.simulate``): each arrival publishes a MatchRequested and hands its record to the
replica; the wall time of every ``on_records`` and ``sweep`` call is kept (the event's encoding,
the producer's work, is not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from services.matching.engine import Pair, Rules, Ticket
from services.matching.matcher import Matcher
from services.matching.ownership import partition_of
from shared.events.envelope import CloudEvent, decode, new_event
from shared.events.payloads import MatchExpired, MatchFound, MatchRequested
from shared.events.registry import Topic
from shared.service import ServiceContext
from shared.settings import Settings
from shared.store import Store, open_store

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """A consumer record, as aiokafka gives it to the engine group's handler."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Replica:
    """One matching replica's matcher on a real store, owning every partition."""

    store_url: str
    rules: Rules
    skills: Sequence[str]
    partitions: int
    now: datetime
    matcher: Matcher = field(init=False)
    ctx: ServiceContext = field(init=False)
    log: list[CloudEvent] = field(default_factory=list)  # every event, in the order written
    offsets: dict[int, int] = field(default_factory=dict)  # the last offset written per partition

    def __post_init__(self) -> None:
        settings = Settings(environment="test")
        self.ctx = ServiceContext.build("matching", settings, store=open_store(self.store_url))
        self.matcher = Matcher(
            self.ctx, self.rules, self.skills, sweep_interval_s=1.0, clock=lambda: self.now
        )
        self.matcher.ownership.count = self.partitions
        self.topic = settings.topic(Topic.MATCHING)

    @property
    def store(self) -> Store:
        return self.ctx.raw_store

    async def take_all(self) -> float:
        """Take every partition as the service does when the engine group assigns it: read its
        waiting tickets from the store and load the book. Returns the seconds it took."""
        started = time.perf_counter()
        for partition in range(self.partitions):
            self.matcher.ownership.partitions.add(partition)
            taken = await self.matcher.take(partition)
            taken.load()
            self.offsets[partition] = taken.position
        return time.perf_counter() - started

    def record(self, event: CloudEvent) -> Record:
        """``event`` written to its skill's partition (the next offset there)."""
        skill = str(getattr(event.data, "skill", ""))
        partition = partition_of(skill, self.partitions)
        offset = self.offsets.get(partition, -1) + 1
        self.offsets[partition] = offset
        self.log.append(event)
        return Record(self.topic, partition, offset, skill.encode(), event.model_dump_json().encode())

    async def decide(self, records: Sequence[Record]) -> tuple[float, list[CloudEvent]]:
        """Hand records to the matcher; returns the seconds it took and what it published."""
        started = time.perf_counter()
        await self.matcher.on_records(records)
        return time.perf_counter() - started, await self.published()

    async def sweep(self) -> tuple[float, list[CloudEvent]]:
        started = time.perf_counter()
        await self.matcher.sweep()
        return time.perf_counter() - started, await self.published()

    async def published(self) -> list[CloudEvent]:
        """What the matcher committed to the outbox since (acked, as the relay would)."""
        pending = await self.store.pending_outbox(10_000)
        if not pending:
            return []
        await self.store.ack_outbox([r.seq for r in pending])
        return [decode(r.value) for r in pending if r.topic.endswith(Topic.MATCHING.value)]

    async def echo(self, events: Sequence[CloudEvent]) -> float:
        """The matcher's own events back from the log; returns the seconds folding them took."""
        if not events:
            return 0.0
        seconds, more = await self.decide([self.record(e) for e in events])
        return seconds + await self.echo(more)

    async def close(self) -> None:
        await self.ctx.raw_store.close()


@dataclass
class Timings:
    """Wall seconds spent in the service's code, per call."""

    arrivals: list[float] = field(default_factory=list)  # on_records of one MatchRequested
    batches: list[tuple[float, int]] = field(default_factory=list)  # (seconds, requests) a call
    echoes: float = 0.0  # on_records of the matcher's own events coming back
    sweeps: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # tickets waiting at each timed sweep

    @property
    def requests(self) -> int:
        return len(self.arrivals) + sum(n for _, n in self.batches)

    @property
    def seconds(self) -> float:
        """Everything: arrivals, the echoes of the decisions, the sweeps."""
        return sum(self.arrivals) + sum(t for t, _ in self.batches) + self.echoes + sum(self.sweeps)


class ServiceMatcher:
    """The simulator's ``Matcher`` over a ``Replica`` (each call runs the replica's coroutines).

    ``batch_s`` 0: each request is its own record batch, decided before ``arrive`` returns.
    Otherwise requests are handed over in batches of what arrived within ``batch_s`` of
    simulated time (as a busy consumer's poll returns them), and every decision is reported
    at the next sweep (waits then count to the sweep: for speed, not for quality)."""

    def __init__(self, replica: Replica, *, timed_from: datetime | None = None, batch_s: float = 0.0) -> None:
        self.replica = replica
        self.timings = Timings()
        self.timed_from = timed_from  # before it: warming up, not timed
        self.batch_s = batch_s
        self._loop = asyncio.new_event_loop()
        self._tickets: dict[str, Ticket] = {}
        self._later: tuple[list[Pair], list[Ticket]] = ([], [])
        self._buffer: list[Record] = []
        self._buffer_from: datetime | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def start(self) -> float:
        return self.run(self.replica.take_all())

    def close(self) -> None:
        self.run(self.replica.close())
        self._loop.close()

    def _timed(self, now: datetime) -> bool:
        return self.timed_from is None or now >= self.timed_from

    def arrive(self, skill: str, ticket: Ticket, now: datetime) -> Pair | None:
        self.replica.now = now
        self._tickets[ticket.ticket_id] = ticket
        requested = MatchRequested(
            ticket_id=ticket.ticket_id,
            learner_id=ticket.learner_id,
            skill=skill,
            specialty=ticket.specialty,
            format=ticket.format,
            level=ticket.level,
            requested_at=ticket.requested_at,
        )
        record = self.replica.record(new_event(requested, source="bench", time=now))
        if self.batch_s > 0:
            if self._buffer_from is not None and (now - self._buffer_from).total_seconds() >= self.batch_s:
                self._flush()
            if self._buffer_from is None:
                self._buffer_from = now
            self._buffer.append(record)
            return None
        seconds, published = self.run(self.replica.decide([record]))
        echoed = self.run(self.replica.echo(published))
        if self._timed(now):
            self.timings.arrivals.append(seconds)
            self.timings.echoes += echoed
        pairs, expired = self._outcomes(published)
        mine = next((p for p in pairs if ticket.ticket_id in (p.older.ticket_id, p.newer.ticket_id)), None)
        others = [p for p in pairs if p is not mine]
        self._later = (self._later[0] + others, self._later[1] + expired)
        return mine

    def _flush(self) -> None:
        """Hand the buffered requests over as one batch, at the time the last one arrived."""
        if not self._buffer:
            return
        records, self._buffer, self._buffer_from = self._buffer, [], None
        seconds, published = self.run(self.replica.decide(records))
        echoed = self.run(self.replica.echo(published))
        if self._timed(self.replica.now):
            self.timings.batches.append((seconds, len(records)))
            self.timings.echoes += echoed
        pairs, expired = self._outcomes(published)
        self._later = (self._later[0] + pairs, self._later[1] + expired)

    def sweep(self, now: datetime) -> tuple[list[Pair], list[Ticket]]:
        self._flush()
        self.replica.now = now
        seconds, published = self.run(self.replica.sweep())
        echoed = self.run(self.replica.echo(published))
        if self._timed(now):
            self.timings.sweeps.append(seconds)
            self.timings.echoes += echoed
            self.timings.waiting.append(self.waiting())
        pairs, expired = self._outcomes(published)
        later, self._later = self._later, ([], [])
        return later[0] + pairs, later[1] + expired

    def waiting(self) -> int:
        book = self.replica.matcher.book
        return sum(book.depth(skill) for skill in book.skills)

    def _outcomes(self, events: Sequence[CloudEvent]) -> tuple[list[Pair], list[Ticket]]:
        """The simulator's view of published decisions (its own tickets, at the matched levels)."""
        pairs: list[Pair] = []
        expired: list[Ticket] = []
        for event in events:
            data = event.data
            if isinstance(data, MatchFound):
                older, newer = (self._tickets.pop(t.ticket_id) for t in data.tickets)
                pairs.append(
                    Pair(older=_at(older, data.tickets[0].level), newer=_at(newer, data.tickets[1].level))
                )
            elif isinstance(data, MatchExpired):
                expired.append(self._tickets.pop(data.ticket_id))
        return pairs, expired


def _at(ticket: Ticket, level: float) -> Ticket:
    if ticket.level == level:
        return ticket
    return Ticket(
        ticket.ticket_id,
        ticket.learner_id,
        level,
        ticket.requested_at,
        ticket.specialty,
        ticket.format,
        ticket.queued_at,
    )
