"""The matcher: decides pairs and expiries for the skills this replica owns, and publishes them.

Ownership follows the partitions of ``lemma.matching.v1`` (keyed by skill) that the
``matching-engine`` group assigns this replica (``ownership.py``). Every replica shares the
service's one store, which the ``matching`` projection folds (each replica the partitions the
``matching`` group gives it). The matcher decides from its own **book** (``book.py``): the
owned skills' queues in memory, loaded from the store when a partition is gained and then
folded from the engine group's records of that partition, in offset order, once each. Per
batch of records it reads from the store only what the decisions need: the documents of
requests it has never seen (a late copy of an old request is a copy), and the levels and
partners of the arriving tickets' learners; it decides for each arrival at once and commits
the MatchFound events with their promises (``promised``) in one store write. A periodic sweep
(``LEMMA_MATCHING_SWEEP_INTERVAL_S``) re-reads the levels of the tickets whose window widened,
expires and pairs what the rule now allows.

The decisions take effect when the log holds them: if two replicas ever decide for one skill at
once (a rebalance), the first effective event wins (``shared.ticket_log``), and the book, being
a fold of the same log, follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.matching import domain
from services.matching.book import Book, Decision, Record
from services.matching.domain import LEVELS, PARTNERS, PROMISED, TICKETS, WAITING_INDEX
from services.matching.engine import Rules
from services.matching.ownership import Ownership, partition_of
from shared.events.envelope import decode, deterministic_id, new_event
from shared.events.registry import Topic
from shared.service import ServiceContext
from shared.store import Change, Store

log = logging.getLogger(__name__)

ENGINE_GROUP = "matching-engine"
PAGE = 1000
#: How many times a partition's waiting tickets are read before the store is taken to be too
#: busy to hold still (the taking is then tried again later).
STABLE_TRIES = 20


class QueueDepth(Collector):
    """``lemma_matching_queue_depth{skill}``: the tickets the log has waiting in each skill this
    process decides for, read from the books when scraped (nothing to keep up per decision)."""

    def __init__(self) -> None:
        self.books: weakref.WeakSet[Book] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "lemma_matching_queue_depth", "Tickets waiting, by skill", labels=["skill"]
        )
        depths: dict[str, int] = {}
        for book in list(self.books):
            for skill in list(book.skills):
                depths[skill] = depths.get(skill, 0) + book.depth(skill)
        for skill, depth in sorted(depths.items()):
            family.add_metric([skill], depth)
        yield family


QUEUE_DEPTH = QueueDepth()
REGISTRY.register(QUEUE_DEPTH)
TIME_TO_MATCH = Histogram(
    "lemma_matching_time_to_match_seconds",
    "How long the longer-waiting ticket of a pair waited",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900),
)
LEVEL_GAP = Histogram(
    "lemma_matching_level_gap",
    "Level gap of the pairs decided",
    buckets=(0, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3),
)
EXPIRATIONS = Counter("lemma_matching_expirations_total", "Tickets expired, by skill", ["skill"])
DECISION_SECONDS = Histogram(
    "lemma_matching_decision_seconds",
    "Time to fold a batch of the engine group's records and decide for its arrivals, store reads "
    "and the write included",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


class Unstable(RuntimeError):
    """The store's documents of a partition kept moving while they were read."""


@dataclass
class Taken:
    """A partition's waiting tickets as the store held them at ``position``."""

    book: Book
    partition: int
    skills: list[str]
    position: int
    tickets: list[dict[str, Any]]
    promised: dict[str, dict[str, Any]]
    clock: Callable[[], datetime]

    def load(self) -> None:
        self.book.load(self.partition, self.skills, self.position, self.tickets, self.promised, self.clock())


class Matcher:
    def __init__(
        self,
        ctx: ServiceContext,
        rules: Rules,
        skills: Sequence[str],
        *,
        sweep_interval_s: float,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``clock``: what ``now`` is (a benchmark runs the matcher on a simulated clock)."""
        self.ctx = ctx
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rules = rules
        self.skills = sorted(skills)
        self.book = Book(rules)
        self.topic = ctx.settings.topic(Topic.MATCHING)
        self.ownership = Ownership(self.topic, take=self.take, drop=self.drop)
        self.sweep_interval_s = sweep_interval_s
        self._lock = asyncio.Lock()  # one fold, decision or sweep of the book at a time
        QUEUE_DEPTH.books.add(self.book)
        self._task: asyncio.Task[None] | None = None

    def owned_skills(self) -> list[str]:
        return self.ownership.skills_of(self.skills)

    # -- the store the projection folds -------------------------------------------------------------

    def _folded(self) -> tuple[Store, str]:
        """The store version the projection folds, and the name its offsets are kept under."""
        runtime = self.ctx.runtimes[0] if self.ctx.runtimes else None
        if runtime is None:
            return self.ctx.store, "matching"
        return runtime.store, runtime.consumer

    async def take(self, partition: int) -> Taken:
        """Read a gained partition's book: its skills' waiting tickets and promises, at an offset
        the store stood at before and after they were read (so they are exactly the state the
        log gives there; the projection may be folding that partition in another replica)."""
        skills = self.ownership.skills_of(self.skills, {partition})
        store, consumer = self._folded()
        key = (self.topic, partition)
        for _ in range(STABLE_TRIES):
            before = (await store.offsets(consumer)).get(key, -1)
            tickets = await self._waiting(store, skills)
            after = (await store.offsets(consumer)).get(key, -1)
            if before == after:
                promised = await store.get_many(PROMISED, [str(t["ticket_id"]) for t in tickets])
                log.info(
                    "matching takes %s[%s] (%s): %d waiting, the log goes on after offset %d",
                    self.topic,
                    partition,
                    ", ".join(skills) or "no catalog skill",
                    len(tickets),
                    before,
                )
                return Taken(self.book, partition, skills, before, tickets, promised, self.clock)
            await asyncio.sleep(0.05)
        raise Unstable(f"the documents of {self.topic}[{partition}] kept moving while read")

    def drop(self, partition: int) -> None:
        self.book.drop(partition)

    async def _waiting(self, store: Store, skills: Sequence[str]) -> list[dict[str, Any]]:
        ids: list[str] = []
        for skill in skills:
            after: str | None = None
            while rows := await store.scan(
                WAITING_INDEX, domain.waiting_prefix(skill), after=after, limit=PAGE
            ):
                ids += [str(doc["ticket_id"]) for _, doc in rows]
                after = rows[-1][0]
        found = await store.get_many(TICKETS, ids) if ids else {}
        return [found[i] for i in ids if i in found]

    # -- the log ------------------------------------------------------------------------------------

    async def on_records(self, records: Sequence[Any]) -> int:
        """A batch of the engine group's records (``lemma.matching.v1``, the partitions held):
        fold it into the book and decide for its arrivals; returns the events published."""
        decoded: list[Record] = []
        for record in records:
            if record.topic != self.topic:
                continue
            try:
                decoded.append((record.partition, record.offset, decode(record.value or b"")))
            except ValueError:
                continue  # the projection dead-letters it; nothing of it is a decision's
        started = asyncio.get_running_loop().time()
        async with self._lock:
            fresh = self.book.fresh(decoded)
            if not fresh:
                return 0
            unknown = self.book.unknown_requests(fresh)
            try:
                stored = await self.ctx.store.get_many(TICKETS, unknown) if unknown else {}
            except Exception:
                # nothing folded: the records are read again from the first not folded
                for partition in {p for p, _, _ in fresh}:
                    self.ownership.rewind(partition, self.book.positions[partition] + 1)
                raise
            self.book.fold(fresh, stored)
            published = await self._decide()
        DECISION_SECONDS.observe(asyncio.get_running_loop().time() - started)
        return published

    # -- deciding -----------------------------------------------------------------------------------

    def _may_decide(self) -> bool:
        """Nothing is decided while a partition of this replica's projection is not positioned on
        its log (being checked, or refused: the store may not be the log's)."""
        return not self.ctx.held_partitions()

    async def _decide(self) -> int:
        """Admit the tickets folded since (their learners' levels and partners read) and publish
        what the book decides for them; the caller holds the lock."""
        if not self._may_decide():
            return 0
        level_keys, partner_keys = self.book.wanted()
        if not level_keys:
            return 0
        store = self.ctx.store
        levels = await store.get_many(LEVELS, level_keys)
        partners = await store.get_many(PARTNERS, partner_keys) if partner_keys else {}
        now = self.clock()
        return await self._publish(self.book.admit(levels, partners, now), now)

    async def sweep(self) -> int:
        """Put back unanswered promises, admit what waits for it, widen windows, expire and pair."""
        async with self._lock:
            self.book.lapse(self.clock())
            if not self._may_decide():
                return 0
            published = await self._decide()
            now = self.clock()
            due = self.book.due(now)
            levels = await self.ctx.store.get_many(LEVELS, due) if due else {}
            published += await self._publish(self.book.sweep(now, levels), now)
        return published

    async def _publish(self, decisions: Sequence[Decision], now: datetime) -> int:
        if not decisions:
            return 0
        events = [self._event(d, now) for d in decisions]
        at = domain.stamp(now)
        promises = [
            Change(PROMISED, t.ticket_id, {"match_id": d.match_id, "at": at})
            for d in decisions
            if d.pair is not None
            for t in d.tickets
        ]
        try:
            await self.ctx.commit(promises, events)
        except Exception:
            self.book.settled(decisions, published=False)
            log.exception(
                "matching could not write %d decisions; their tickets are offered again", len(events)
            )
            return 0
        for d in decisions:
            if d.pair is not None:
                TIME_TO_MATCH.observe(max((now - d.pair.older.requested_at).total_seconds(), 0.0))
                LEVEL_GAP.observe(d.pair.gap)
            else:
                EXPIRATIONS.labels(d.skill).inc()
        return len(events)

    def _event(self, decision: Decision, now: datetime) -> Any:
        if decision.pair is not None:
            payload: Any = domain.pair_found(
                decision.pair, decision.skill, now=now, match_id=decision.match_id
            )
            subject = payload.match_id
        else:
            assert decision.expired is not None
            payload = domain.ticket_expired(decision.expired, decision.skill)
            subject = payload.ticket_id
        event_id = deterministic_id(self.ctx.name, type(payload).__name__, subject)
        return new_event(payload, source=self.ctx.name, time=now, id=event_id)

    # -- the periodic sweep ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="matching-sweep")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.ownership.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("matching sweep failed; trying again")


__all__ = ["ENGINE_GROUP", "Matcher", "Ownership", "partition_of"]
