"""The matcher: decides pairs and expiries for the skills this process owns, and publishes them.

Ownership follows the partitions of ``lemma.matching.v1`` (keyed by skill): every matching
process joins the consumer group ``matching-engine``, and the partitions Kafka assigns to it
are the skills it decides for. Its queue is the projection every process folds from the whole
log (``projection.py``). A run, under the service's write lock: read the skill's waiting
tickets, leave out those a decision already named (``promised``, until the log settles them),
let the engine decide (``domain.decide``), and commit the MatchFound / MatchExpired events with
the promises in one write. The decisions take effect when the log holds them: if two processes
ever decide at once (a rebalance), the first effective event wins (``shared.ticket_log``).

Runs follow every fold write (new tickets are decided at once) and a periodic sweep
(``LEMMA_MATCHING_SWEEP_INTERVAL_S``), so windows widen and tickets expire without arrivals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import Counter, Gauge, Histogram

from services.matching import domain
from services.matching.domain import LEVELS, PARTNERS, PROMISED, TICKETS, WAITING_INDEX, learner_key
from services.matching.engine import Rules
from shared.bus import PARTITIONS
from shared.events.envelope import deterministic_id, new_event
from shared.events.payloads import MatchExpired, MatchFound
from shared.events.registry import Topic
from shared.service import ServiceContext
from shared.store import Change

log = logging.getLogger(__name__)

ENGINE_GROUP = "matching-engine"
PROMISE_TTL_S = 30.0  # a decision the log has not settled by then is offered again
PAGE = 1000

QUEUE_DEPTH = Gauge("lemma_matching_queue_depth", "Tickets waiting, by skill", ["skill"])
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


def partition_of(skill: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a skill's key (what the producer uses)."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(skill.encode(), every, every))


class Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    """The partitions of ``lemma.matching.v1`` (named ``topic`` on the cluster) this process
    holds in the engine group."""

    def __init__(self, topic: str = Topic.MATCHING.value) -> None:
        self.topic = topic
        self.partitions: set[int] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.partitions -= {tp.partition for tp in revoked if tp.topic == self.topic}

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.partitions |= {tp.partition for tp in assigned if tp.topic == self.topic}


class Matcher:
    def __init__(
        self, ctx: ServiceContext, rules: Rules, skills: Sequence[str], *, sweep_interval_s: float
    ) -> None:
        self.ctx = ctx
        self.rules = rules
        self.skills = sorted(skills)
        self.ownership = Ownership(ctx.settings.topic(Topic.MATCHING))
        self.sweep_interval_s = sweep_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._partitions = PARTITIONS[Topic.MATCHING]

    def kick(self) -> None:
        self._wake.set()

    def owned_skills(self) -> list[str]:
        owned = self.ownership.partitions
        return [s for s in self.skills if partition_of(s, self._partitions) in owned]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="matching-matcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_interval_s)
            self._wake.clear()
            try:
                await self.run()
            except Exception:
                log.exception("matcher run failed; trying again")

    async def run(self) -> int:
        """Decide every owned skill once; returns the number of events published. Nothing is
        decided while a partition of the queue's projection is not positioned on its log (being
        checked, or refused: the store may not be the log's), so no decision rests on it."""
        if self.ctx.held_partitions():
            return 0
        published = 0
        for skill in self.owned_skills():
            published += await self.decide(skill)
        return published

    async def decide(self, skill: str) -> int:
        store = self.ctx.store
        async with self.ctx.lock:
            now = datetime.now(UTC)
            ids = await self._waiting_ids(skill)
            found = await store.get_many(TICKETS, ids)
            promised = await store.get_many(PROMISED, ids)
            fresh = now - timedelta(seconds=PROMISE_TTL_S)
            waiting = [
                found[i]
                for i in ids
                if i in found
                and found[i]["status"] == domain.STATUS_WAITING
                and not (i in promised and domain.parse_stamp(promised[i]["at"]) > fresh)
            ]
            keys = [learner_key(t["learner_id"], skill) for t in waiting]
            # a ticket is matched at the learner's level now (a claim or a score may have arrived
            # since it was queued); the MatchFound records it
            levels = await store.get_many(LEVELS, keys)
            waiting = [
                {**t, "level": domain.level_of(levels[k])}
                if k in levels and levels[k].get("level") is not None
                else t
                for t, k in zip(waiting, keys, strict=True)
            ]
            met = await store.get_many(PARTNERS, keys)
            partners = {key.split("/", 1)[0]: doc["partners"] for key, doc in met.items()}
            pairs, expired = domain.decide(waiting, partners, self.rules, now)
            QUEUE_DEPTH.labels(skill).set(len(waiting) - 2 * len(pairs) - len(expired))
            if not pairs and not expired:
                return 0
            events = [*(self._event(p, now) for p in pairs), *(self._event(e, now) for e in expired)]
            promises = [
                Change(PROMISED, t.ticket_id, {"match_id": p.match_id, "at": domain.stamp(now)})
                for p in pairs
                for t in p.tickets
            ]
            await self.ctx.commit(promises, events)
        for p in pairs:
            TIME_TO_MATCH.observe(p.waited_ms / 1000)
            LEVEL_GAP.observe(p.level_gap)
        EXPIRATIONS.labels(skill).inc(len(expired))
        return len(events)

    def _event(self, payload: MatchFound | MatchExpired, now: datetime) -> Any:
        subject = payload.match_id if isinstance(payload, MatchFound) else payload.ticket_id
        event_id = deterministic_id(self.ctx.name, type(payload).__name__, subject)
        return new_event(payload, source=self.ctx.name, time=now, id=event_id)

    async def _waiting_ids(self, skill: str) -> list[str]:
        ids: list[str] = []
        after: str | None = None
        while rows := await self.ctx.store.scan(
            WAITING_INDEX, domain.waiting_prefix(skill), after=after, limit=PAGE
        ):
            ids += [str(doc["ticket_id"]) for _, doc in rows]
            after = rows[-1][0]
        return ids
