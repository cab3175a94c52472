"""The driver: the clients and the sessions service, straight on the broker, in a closed loop.

It claims the population's levels, requests tickets at a steady rate for free learners, cancels
10% of them at once (racing the matcher on purpose), follows ``lemma.matching.v1`` with the log
rule (``referee.Referee``) and ends each effective match's session (5% with a no-show), until
every learner is free again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.matching_replay.matchers import Matcher, store_count, until, wait_for_matchers
from bench.matching_replay.population import FREE, LEVELS, REQUEUE, SESSION, TICKET, Slot, population
from bench.matching_replay.referee import Referee
from bench.matching_replay.topics import InOrder
from services.matching.projection import requeue_ticket_id
from shared.bus import PARTITIONS
from shared.catalog import get_catalog
from shared.events.envelope import CloudEvent, decode, deterministic_id, encode, new_event
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchFound,
    MatchRequested,
    Payload,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SkillClaimed,
)
from shared.events.registry import Topic
from sim.arrivals import percentile

CANCEL_SHARE = 0.10
NO_SHOW_SHARE = 0.05
#: The window a partner has to dispute, or an accused to contest (the sessions service's default).
CLAIM_WINDOW = timedelta(hours=48)


@dataclass
class Driver:
    """The clients and the sessions service: requests, cancels, session ends, and the live log."""

    args: argparse.Namespace
    producer: AIOKafkaProducer
    rng: random.Random
    slots: dict[tuple[str, str], Slot]
    referee: Referee = field(default_factory=Referee)
    free: list[tuple[str, str]] = field(default_factory=list)
    free_at: dict[tuple[str, str], int] = field(default_factory=dict)
    agenda: list[tuple[float, int, str, Any]] = field(default_factory=list)
    pending: list[asyncio.Future[Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    requeue_latencies: list[float] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    last_terminal_at: float = field(default_factory=time.monotonic)
    _seq: int = 0

    def __post_init__(self) -> None:
        for key in self.slots:
            self._free(key)

    # -- the free list (a learner may request in a skill only when free there) ---------------------

    def _free(self, key: tuple[str, str]) -> None:
        slot = self.slots[key]
        slot.state, slot.ticket_id = FREE, None
        if key not in self.free_at:
            self.free_at[key] = len(self.free)
            self.free.append(key)

    def _take(self) -> Slot:
        index = self.rng.randrange(len(self.free))
        key, last = self.free[index], self.free[-1]
        self.free[index], self.free_at[last] = last, index
        self.free.pop()
        del self.free_at[key]
        return self.slots[key]

    def open_tickets(self) -> int:
        return self.counts["open"]

    def busy(self) -> int:
        return len(self.slots) - len(self.free)

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, payload: Payload, source: str, subject: str) -> None:
        event_id = deterministic_id(source, type(payload).__name__, subject)
        event = new_event(payload, source=source, time=datetime.now(UTC), id=event_id)
        self.pending.append(
            await self.producer.send(event.topic, value=encode(event), key=event.key.encode())
        )

    def settle_sends(self) -> None:
        """Raise the first failed send; forget the delivered ones."""
        still = []
        for future in self.pending:
            if future.done():
                future.result()
            else:
                still.append(future)
        self.pending = still

    def later(self, delay_s: float, action: str, subject: Any) -> None:
        self._seq += 1
        heapq.heappush(self.agenda, (time.monotonic() + delay_s, self._seq, action, subject))

    async def request(self) -> None:
        slot = self._take()
        ticket_id = str(uuid.uuid4())
        slot.state, slot.ticket_id = TICKET, ticket_id
        self.counts["open"] += 1
        self.issued.append(ticket_id)
        requested = MatchRequested(
            ticket_id=ticket_id,
            learner_id=slot.learner_id,
            skill=slot.skill,
            specialty=slot.specialty,
            format=slot.format,
            level=slot.level,
            requested_at=datetime.now(UTC),
        )
        await self.publish(requested, "matching", ticket_id)
        if self.rng.random() < CANCEL_SHARE:
            self.later(
                self.rng.uniform(0, self.args.cancel_within),
                "cancel",
                (slot.learner_id, slot.skill, ticket_id),
            )

    async def due(self) -> None:
        """Carry out every cancel and session end whose time has come."""
        now = time.monotonic()
        while self.agenda and self.agenda[0][0] <= now:
            _, _, action, subject = heapq.heappop(self.agenda)
            if action == "cancel":
                learner, skill, ticket_id = subject
                self.counts["cancels_published"] += 1
                cancel = MatchCancelled(
                    ticket_id=ticket_id, learner_id=learner, skill=skill, reason="cancelled by learner"
                )
                await self.publish(cancel, "matching", ticket_id)
            else:
                await self.end_session(subject)

    async def end_session(self, match: MatchFound) -> None:
        first, second = (t.learner_id for t in match.tickets)
        window = datetime.now(UTC) + CLAIM_WINDOW  # the absent learner may contest; never here
        confirmed: Payload | None = None
        if self.rng.random() < NO_SHOW_SHARE:
            absent, stayed = (first, second) if self.rng.random() < 0.5 else (second, first)
            ended: Payload = SessionAbandoned(
                session_id=match.match_id,
                abandoned_by=stayed,
                reason="no-show",
                no_show=absent,
                contest_by=window,
            )
            self.counts["no_shows"] += 1
            self._free((absent, match.skill))
            slot = self.slots[(stayed, match.skill)]
            slot.state, slot.ticket_id = REQUEUE, requeue_ticket_id(match.match_id, stayed)
        else:
            duration = int(self.args.session_s)
            ended = SessionCompleted(
                session_id=match.match_id, completed_by=first, duration_s=duration, confirm_by=window
            )
            confirmed = SessionConfirmed(session_id=match.match_id, confirmed_by=second)  # both say so
            self.counts["completed"] += 1
            self._free((first, match.skill))
            self._free((second, match.skill))
        await self.publish(ended, "sessions", match.match_id)
        if confirmed is not None:
            await self.publish(confirmed, "sessions", match.match_id)

    # -- the live log -----------------------------------------------------------------------------

    def on_matching(self, event: CloudEvent) -> None:
        data = event.data
        verdict = self.referee.apply(event)
        if verdict != "effective":
            if verdict == "refused":
                self.anomalies.append(f"request {getattr(data, 'ticket_id', '?')} refused")
            return
        if isinstance(data, MatchRequested):
            if data.requeue_of is not None:
                slot = self.slots[(data.learner_id, data.skill)]
                if slot.state != REQUEUE or slot.ticket_id != data.ticket_id:
                    self.anomalies.append(f"requeue {data.ticket_id} for a learner in state {slot.state}")
                slot.state = TICKET
                self.counts["open"] += 1
            return
        self.last_terminal_at = time.monotonic()
        if isinstance(data, MatchFound):
            for named in data.tickets:
                seen = self.referee.tickets[named.ticket_id]
                wait = (event.time - seen.requested_at).total_seconds()
                (self.requeue_latencies if seen.requeue_of else self.latencies).append(wait)
                self._closed(named.learner_id, data.skill, named.ticket_id, SESSION)
            self.later(self.args.session_s * self.rng.uniform(0.5, 1.5), "end", data)
        elif isinstance(data, MatchCancelled | MatchExpired):
            self._closed(data.learner_id, data.skill, data.ticket_id, FREE)

    def _closed(self, learner: str, skill: str, ticket_id: str, then: str) -> None:
        slot = self.slots.get((learner, skill))
        if slot is None or slot.state != TICKET or slot.ticket_id != ticket_id:
            self.anomalies.append(f"ticket {ticket_id} closed for a learner in state {slot and slot.state}")
            return
        self.counts["open"] -= 1
        if then == FREE:
            self._free((learner, skill))
        else:
            slot.state, slot.ticket_id = SESSION, None


async def follow(bootstrap: str, driver: Driver, stop: asyncio.Event) -> None:
    """Read ``lemma.matching.v1`` from the start as it grows, feeding the driver in log order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        tps = [TopicPartition(Topic.MATCHING.value, p) for p in range(PARTITIONS[Topic.MATCHING])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        in_order = InOrder()
        while not stop.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=50, max_records=5_000)).items():
                for record in in_order.take(tp, records):
                    driver.on_matching(decode(record.value))
                    driver.counts["log_records_seen"] += 1
    finally:
        await consumer.stop()


async def drive(args: argparse.Namespace, bootstrap: str, matchers: Sequence[Matcher]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    skills = [s.id for s in get_catalog().skills]
    owned = await wait_for_matchers(matchers, skills)
    print(f"matchers ready; skills decided: {json.dumps(owned)}", flush=True)
    # as the services publish: acks from every in-sync replica, idempotent (no duplicates, dense offsets)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    stop = asyncio.Event()
    follower: asyncio.Task[None] | None = None
    try:
        driver = Driver(args, producer, rng, population(args.learners, rng))
        levels = {value: name for name, value, _ in LEVELS}
        for slot in driver.slots.values():
            claim = SkillClaimed(learner_id=slot.learner_id, skill=slot.skill, self_level=levels[slot.level])
            await driver.publish(claim, "passport", f"{slot.learner_id}/{slot.skill}")
        await producer.flush()
        driver.settle_sends()

        async def claims_folded() -> bool:
            return all(store_count(m.db, "levels") >= len(driver.slots) for m in matchers)

        await until(claims_folded, 300, "the claims folded by both processes")
        print(f"{len(driver.slots):,} claims folded by both processes", flush=True)

        follower = asyncio.create_task(follow(bootstrap, driver, stop))
        started = last_tick = last_report = time.monotonic()
        tokens, blocked_s, generated_s, stalled = 0.0, 0.0, math.nan, False
        while True:
            now = time.monotonic()
            if len(driver.issued) < args.tickets:
                # a token bucket: a steady rate; time with nobody free (or too many open) is lost
                tokens = min(tokens + (now - last_tick) * args.rate, max(1.0, args.rate * 0.05))
                while tokens >= 1 and len(driver.issued) < args.tickets:
                    if not driver.free or driver.open_tickets() >= args.max_open:
                        blocked_s += now - last_tick
                        break
                    await driver.request()
                    tokens -= 1
                if len(driver.issued) == args.tickets:
                    generated_s = time.monotonic() - started
                    print(f"all {args.tickets:,} tickets requested after {generated_s:.1f} s", flush=True)
            last_tick = now
            await driver.due()
            driver.settle_sends()
            if follower.done():
                follower.result()
                raise RuntimeError("the log follower stopped")
            if len(driver.issued) == args.tickets and not driver.agenda and driver.busy() == 0:
                break
            if now - driver.last_terminal_at > args.stall_s and driver.busy():
                stalled = True
                print(f"STALLED: nothing closed for {args.stall_s:g} s with {driver.busy()} learners busy")
                break
            if now - last_report >= 10:
                last_report = now
                recent = driver.latencies[-2000:]
                print(
                    f"  {now - started:6.0f} s: {len(driver.issued):,} requested, "
                    f"{driver.open_tickets():,} open, {driver.busy():,} learners busy, "
                    f"{len(driver.referee.matches):,} matches, wait p50/p95 of the last 2,000: "
                    f"{percentile(recent, 50):.2f}/{percentile(recent, 95):.2f} s",
                    flush=True,
                )
            await asyncio.sleep(0.005)
        # to the last ticket closed (a stall's wait is not counted)
        wall_s = driver.last_terminal_at - started
        # quiet: let late copies (the second process's requeue, void decisions) land, then stop
        seen = -1
        while seen != driver.counts["log_records_seen"]:
            seen = driver.counts["log_records_seen"]
            await asyncio.sleep(3)
        await producer.flush()
        driver.settle_sends()
        return {
            "driver": driver,
            "wall_s": wall_s,
            "generated_s": generated_s,
            "blocked_s": blocked_s,
            "stalled": stalled,
            "owned": owned,
        }
    finally:
        stop.set()
        if follower is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await follower
        await producer.stop()
