"""Benchmark: tickets through two matcher processes on a real broker (issue 4, item 7, second run).

    .venv/bin/python -m bench.matching_replay [--tickets 100000] [--rate 400] [--learners 5000]
        [--max-open 1000] [--ttl 30] [--seed 1] [--keep]

Starts a Tansu broker (memory engine) and two matching processes (``python -m
services.matching``, instances ``a`` and ``b``, each with its own state directory and SQLite
store, default expansions, time to live ``--ttl``), then acts as the clients and the sessions
service would, straight on the broker, in a closed loop:

- a population of ``--learners`` learners claims a self-level in every catalog skill
  (SkillClaimed on ``lemma.passport.v1``; beginner 30%, intermediate 35%, advanced 25%, expert
  10%), with a specialty preference in 70% of cases and a format in 60%;
- tickets: MatchRequested on ``lemma.matching.v1`` keyed by skill (what the HTTP route
  publishes), ``--rate`` per second, each for a learner who is free in the skill (no open
  ticket, no unfinished session there); at most ``--max-open`` tickets open at once;
- 10% of tickets are cancelled 0-``--cancel-within`` s after the request (MatchCancelled,
  published whatever the driver has seen: it races the matcher on purpose);
- the driver follows ``lemma.matching.v1`` and reads it with the log rule (``bench.replay_log``);
  for each effective MatchFound, after a session of ``--session-s`` (uniform 0.5-1.5 x), it
  publishes on ``lemma.sessions.v1`` (keyed by session id = match id) a SessionAbandoned with a
  no-show (5% of matches: one of the two is absent, the other abandons) or a SessionCompleted.
  Learners whose session ended are free again, except the one a no-show left: the matcher
  puts them back in the queue (a requeue MatchRequested), and that ticket runs its course;
- after the last ticket, tickets still waiting expire after ``--ttl`` s; the run ends when every
  learner is free again.

Then it reads the whole of ``lemma.matching.v1``, ``lemma.sessions.v1`` and the dead-letter
topic and checks: the log folded partition by partition with the service's projection
(``MatchingProjection`` via ``fold_events``) and with the bench's own reading of the rule agree,
and every ticket ends in exactly one terminal state (matched, cancelled or expired), with one
effective terminal event; every effective MatchFound named two waiting tickets of its learners;
no learner is ever in two open sessions of a skill (effective matches and session ends, in event
time order, per learner and skill); every no-show requeued the partner once; nothing was
dead-lettered; both processes' stores hold the same ticket states as the log.

Figures: MatchFound published vs effective (void ones lost a race), cancels that lost to a match,
wall time, tickets per second through the system, match latency (the effective MatchRequested's
event time to the MatchFound's event time). The last output line is one JSON object with the
figures, ``checks``, ``meets_targets`` and the target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench.replay_log import TERMINAL, Referee, sessions_overlap
from services.matching.projection import MatchingProjection, requeue_ticket_id
from shared.bus import PARTITIONS, ensure_topics
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
    SkillClaimed,
)
from shared.events.registry import Topic
from shared.projection import fold_events
from shared.projection.order import unfolded
from sim.arrivals import percentile
from tests.support.processes import kafka_broker, start_matching_process, stop_process

TARGET = (
    "two matcher processes on the real broker, tickets 10% cancelled and 5% of matches ending in a "
    "no-show: every ticket ends in exactly one terminal event (matched, cancelled or expired) and no "
    "learner is ever in two open sessions of a skill"
)
LEVELS = (
    ("beginner", 1.0, 0.30),
    ("intermediate", 2.0, 0.35),
    ("advanced", 3.0, 0.25),
    ("expert", 4.0, 0.10),
)
CANCEL_SHARE = 0.10
NO_SHOW_SHARE = 0.05
INSTANCES = ("a", "b")
FREE, TICKET, SESSION, REQUEUE = "free", "ticket", "session", "requeue"


@dataclass
class Slot:
    """A learner in a skill, as the driver (the learner's client) knows it."""

    learner_id: str
    skill: str
    level: float
    specialty: str | None
    format: str | None
    state: str = FREE
    ticket_id: str | None = None


@dataclass
class Matcher:
    instance: str
    proc: subprocess.Popen[bytes]
    base: str
    db: Path


def start_matcher(instance: str, bootstrap: str, state: Path, ttl_s: float) -> Matcher:
    """A matching process with its own state directory (default expansions and recent-partner rule)."""
    proc, url = start_matching_process(
        instance,
        bootstrap,
        state,
        LEMMA_MATCHING_TTL_S=str(ttl_s),
        LEMMA_MATCHING_SWEEP_INTERVAL_S="0.5",
    )
    return Matcher(instance, proc, url, state / "data" / "matching.db")


def store_docs(db: Path, collection: str) -> dict[str, dict[str, Any]]:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        rows = con.execute("SELECT key, doc FROM docs WHERE collection=?", (collection,)).fetchall()
    return {key: json.loads(doc) for key, doc in rows}


def store_count(db: Path, collection: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        try:
            return int(
                con.execute("SELECT count(*) FROM docs WHERE collection=?", (collection,)).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0  # the schema is not made yet


def still_open(db: Path, ended: set[str]) -> list[str]:
    """Matches the store holds as not ended although the sessions log ended them."""
    return sorted(k for k, d in store_docs(db, "matches").items() if k in ended and not d["ended"])


def busy_on(db: Path, matches: Sequence[str]) -> int:
    """Learners (per skill) whose latest match in the store is one of ``matches``: the HTTP route
    refuses their requests there (409, "in a session ... which has not ended")."""
    stale = set(matches)
    return sum(d["match_id"] in stale for d in store_docs(db, "busy").values())


async def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)


@dataclass
class InOrder:
    """Hands on each partition's records once: a redelivery of what was taken is dropped.
    Offsets may skip (Kafka's transaction markers); nothing waits on a gap."""

    done: dict[tuple[str, int], int] = field(default_factory=dict)
    refetches: int = 0  # no broker of ours skips records any more: stays 0

    def take(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        taken = unfolded(records, self.done)
        if taken:
            self.done[(tp.topic, tp.partition)] = taken[-1].offset
        return taken


async def read_topic(
    bootstrap: str, topic: str, partitions: int, idle_s: float = 2.0
) -> dict[int, list[ConsumerRecord[bytes, bytes]]]:
    """Every record of ``topic`` (which nobody writes to any more), by partition, in log order.

    It reads until it is past the end offsets *and* nothing came for ``idle_s``: Tansu 0.6.0
    (memory engine) reports as a partition's end the last batch's base offset + 1, so after a
    batch of several records the end offsets fall short of the log's real end.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[ConsumerRecord[bytes, bytes]]] = {p: [] for p in range(partitions)}
        in_order = InOrder()
        last = time.monotonic()

        async def more() -> bool:
            behind = [await consumer.position(tp) < ends[tp] for tp in tps]
            return any(behind) or time.monotonic() - last < idle_s

        while await more():
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).items():
                out[tp.partition].extend(in_order.take(consumer, tp, records))
                last = time.monotonic()
        return out
    finally:
        await consumer.stop()


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
        if self.rng.random() < NO_SHOW_SHARE:
            absent, stayed = (first, second) if self.rng.random() < 0.5 else (second, first)
            ended: Payload = SessionAbandoned(
                session_id=match.match_id, abandoned_by=stayed, reason="no-show", no_show=absent
            )
            self.counts["no_shows"] += 1
            self._free((absent, match.skill))
            slot = self.slots[(stayed, match.skill)]
            slot.state, slot.ticket_id = REQUEUE, requeue_ticket_id(match.match_id, stayed)
        else:
            duration = int(self.args.session_s)
            ended = SessionCompleted(session_id=match.match_id, completed_by=first, duration_s=duration)
            self.counts["completed"] += 1
            self._free((first, match.skill))
            self._free((second, match.skill))
        await self.publish(ended, "sessions", match.match_id)

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


def population(learners: int, rng: random.Random) -> dict[tuple[str, str], Slot]:
    slots: dict[tuple[str, str], Slot] = {}
    for n in range(learners):
        learner = f"learner-{n:05d}"
        for skill in get_catalog().skills:
            level = rng.choices([lv[1] for lv in LEVELS], weights=[lv[2] for lv in LEVELS])[0]
            specialties = [s.id for s in skill.specialties]
            specialty = (
                rng.choices(specialties, weights=range(len(specialties), 0, -1))[0]
                if rng.random() < 0.7
                else None
            )
            fmt = rng.choice([f.id for f in skill.formats]) if rng.random() < 0.6 else None
            slots[(learner, skill.id)] = Slot(learner, skill.id, level, specialty, fmt)
    return slots


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
                for record in in_order.take(consumer, tp, records):
                    driver.on_matching(decode(record.value))
                    driver.counts["log_records_seen"] += 1
            driver.counts["broker_gaps_refetched"] = in_order.refetches
    finally:
        await consumer.stop()


async def wait_for_matchers(matchers: Sequence[Matcher], skills: Sequence[str]) -> dict[str, list[str]]:
    """Both processes ready and, between them, deciding for every skill (each skill once)."""
    owned: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=10) as client:

        async def settled() -> bool:
            for m in matchers:
                if m.proc.poll() is not None:
                    raise RuntimeError(f"matching {m.instance} exited ({m.proc.returncode}); see its log")
                try:
                    if (await client.get(f"{m.base}/readyz")).status_code != 200:
                        return False
                    owned[m.instance] = (await client.get(f"{m.base}/v1/matching/ownership")).json()["skills"]
                except httpx.TransportError:
                    return False
            every = [s for m in matchers for s in owned[m.instance]]
            return sorted(every) == sorted(skills)

        await until(settled, 120, "matching processes ready and owning every skill once")
    return owned


async def drive(args: argparse.Namespace, bootstrap: str, matchers: Sequence[Matcher]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    skills = [s.id for s in get_catalog().skills]
    owned = await wait_for_matchers(matchers, skills)
    print(f"matchers ready; skills decided: {json.dumps(owned)}", flush=True)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
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
        wall_s = (
            driver.last_terminal_at - started
        )  # to the last ticket closed (a stall's wait is not counted)
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


def fold_log(partitions: dict[int, list[CloudEvent]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The matching log folded partition by partition with the service's projection."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for events in partitions.values():
        state, _ = fold_events(MatchingProjection(), events, state)
    return state


async def verify(bootstrap: str, matchers: Sequence[Matcher], driver: Driver) -> dict[str, Any]:
    """Read the logs back and check them (and the stores) against the rule."""
    matching = {
        p: [decode(r.value) for r in rs]
        for p, rs in (await read_topic(bootstrap, Topic.MATCHING.value, PARTITIONS[Topic.MATCHING])).items()
    }
    sessions = [
        decode(r.value)
        for rs in (await read_topic(bootstrap, Topic.SESSIONS.value, PARTITIONS[Topic.SESSIONS])).values()
        for r in rs
    ]
    dead = sum(
        len(rs) for rs in (await read_topic(bootstrap, Topic.DLQ.value, PARTITIONS[Topic.DLQ])).values()
    )
    started = time.perf_counter()
    folded = fold_log(matching)
    fold_s = time.perf_counter() - started
    statuses = {key: doc["status"] for (collection, key), doc in folded.items() if collection == "tickets"}
    effective_by_projection = {key for (collection, key) in folded if collection == "matches"}

    referee = Referee()
    for events in matching.values():
        for event in events:
            referee.apply(event)
    ref_statuses = {t: seen.status for t, seen in referee.tickets.items()} | dict.fromkeys(
        referee.refused, "cancelled"
    )
    opened = referee.tickets.values()
    one_terminal = (
        all(seen.status in TERMINAL and seen.terminal_events == 1 for seen in opened)
        and set(statuses.values()) <= TERMINAL
        and statuses == ref_statuses
        and set(driver.issued) <= set(statuses)
    )
    found_ok = (
        effective_by_projection == set(referee.matches)
        and not referee.misnamed
        and all(m.learners[0] != m.learners[1] for m in referee.matches.values())
    )
    most_open, orphan_ends, ended_twice = sessions_overlap(referee.matches.values(), sessions)
    ended = {e.data.session_id for e in sessions if isinstance(e.data, SessionCompleted | SessionAbandoned)}
    no_shows = [e.data for e in sessions if isinstance(e.data, SessionAbandoned) and e.data.no_show]
    requeues = Counter(seen.requeue_of for seen in opened if seen.requeue_of)
    requeued_once = all(
        requeues[a.session_id] == 1
        and referee.tickets.get(
            requeue_ticket_id(
                a.session_id, next(x for x in referee.matches[a.session_id].learners if x != a.no_show)
            )
        )
        is not None
        for a in no_shows
    ) and sum(requeues.values()) == len(no_shows)

    async def stores_agree() -> bool:
        return all(
            {k: d["status"] for k, d in store_docs(m.db, "tickets").items()} == statuses for m in matchers
        )

    agree = True
    try:
        await until(stores_agree, 120, "both stores agree with the log", interval=2)
    except TimeoutError:
        agree = False
    held = {m.instance: {k: d["status"] for k, d in store_docs(m.db, "tickets").items()} for m in matchers}
    stores = {name: Counter(tickets.values()) for name, tickets in held.items()}
    # tickets whose state in a store is not the log's (a store that missed or misread events)
    diverged = {
        name: sum(tickets.get(k) != v for k, v in statuses.items()) + len(tickets.keys() - statuses.keys())
        for name, tickets in held.items()
    }
    # a session the log ended must be ended in each store too (else its learners look busy there)
    not_ended = {m.instance: still_open(m.db, ended) for m in matchers}
    published = Counter(type(e.data).__name__ for events in matching.values() for e in events)
    found_ids = {
        e.data.match_id for events in matching.values() for e in events if isinstance(e.data, MatchFound)
    }
    gaps_met = {m.instance: await gaps_refetched(m) for m in matchers}
    checks = {
        "every_ticket_one_terminal_state": one_terminal,
        "effective_match_found_named_two_waiting_tickets": found_ok,
        "no_learner_in_two_open_sessions": most_open <= 1,
        # the driver ends each effective match's session once, and no other (its view of the log
        # must be the log's)
        "every_match_session_ended_once": ended == set(referee.matches)
        and not ended_twice
        and not orphan_ends,
        "every_no_show_requeued_partner_once": requeued_once,
        "no_dead_letters": dead == 0,
        "stores_agree_with_log": agree,
        "stores_saw_every_session_end": not any(not_ended.values()),
    }
    return {
        "checks": checks,
        "published": published,
        "found_ids": len(found_ids),
        "referee": referee,
        "statuses": Counter(statuses.values()),
        "stores": stores,
        "most_open_sessions": most_open,
        "orphan_session_ends": orphan_ends,
        "sessions_ended_twice": len(ended_twice),
        "no_shows": len(no_shows),
        "requeue_tickets": sum(requeues.values()),
        "dead_letters": dead,
        "log_records": {"matching": sum(len(v) for v in matching.values()), "sessions": len(sessions)},
        "fold_s": fold_s,
        "not_ended_in_store": not_ended,
        "diverged": diverged,
        "ticket_statuses": statuses,
        "busy_on_not_ended": {},
        "ended_sessions": ended,
        "gaps_met": gaps_met,
    }


async def gaps_refetched(matcher: Matcher) -> float:
    """How many gaps in a partition's offsets the process's consumers met and fetched again
    (``lemma_broker_gaps_total``, summed over its labels)."""
    async with httpx.AsyncClient(base_url=matcher.base, timeout=10) as client:
        text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lemma_broker_gaps_total{")
    )


async def rebuild(
    bootstrap: str, workdir: Path, args: argparse.Namespace, check: dict[str, Any]
) -> dict[str, Any]:
    """A third process on an empty store folds the whole log (a rebuild, or a restart that lost
    its store): it must reach the same tickets and see every session end."""
    statuses: dict[str, str] = check["ticket_statuses"]
    started = time.monotonic()
    # a ttl it never reaches: with nothing left waiting, it decides nothing (the log stays as checked)
    m = start_matcher("rebuild", bootstrap, workdir / "rebuild", 1e9)
    try:

        async def caught_up() -> bool:
            if m.proc.poll() is not None:
                raise RuntimeError("the rebuild process exited; see its log")
            return {k: d["status"] for k, d in store_docs(m.db, "tickets").items()} == statuses

        agree = True
        try:
            await until(caught_up, args.stall_s * 3, "the rebuilt store agrees with the log", interval=2)
        except TimeoutError:
            agree = False
        seconds = time.monotonic() - started
        await asyncio.sleep(2)
        stale = still_open(m.db, check["ended_sessions"])
        return {
            "agree": agree,
            "seconds": round(seconds, 1),
            "not_ended": len(stale),
            "busy": busy_on(m.db, stale),
        }
    finally:
        stop_process(m.proc)


def figures(args: argparse.Namespace, run: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    driver: Driver = run["driver"]
    referee: Referee = check["referee"]
    published: Counter[str] = check["published"]
    counts = referee.counts
    lat, requeue_lat = driver.latencies, driver.requeue_latencies
    gaps = [m.level_gap for m in referee.matches.values()]

    def pct(values: Sequence[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if math.isnan(value) else round(value, 3)

    return {
        "tickets": len(driver.issued),
        "requeue_tickets": check["requeue_tickets"],
        "learners": args.learners,
        "rate_per_s": args.rate,
        "max_open": args.max_open,
        "ttl_s": args.ttl,
        "outcomes": dict(check["statuses"]),
        "refused_requests": counts["MatchRequested:refused"],
        "requeue_copies": counts["MatchRequested:copy"],
        "match_found_published": published["MatchFound"],
        "match_found_distinct": check["found_ids"],
        "match_found_effective": len(referee.matches),
        "match_found_void": counts["MatchFound:void"],
        "void_found_causes": dict(referee.void_found_causes),
        "cancels_published": published["MatchCancelled"],
        "cancels_effective": counts["MatchCancelled:effective"],
        "cancels_lost_to_match": referee.void_closed_causes["MatchCancelled:matched"],
        "expiries_published": published["MatchExpired"],
        "expiries_effective": counts["MatchExpired:effective"],
        "sessions_completed": driver.counts["completed"],
        "no_shows": check["no_shows"],
        "wall_s": round(run["wall_s"], 1),
        "requesting_s": None if math.isnan(run["generated_s"]) else round(run["generated_s"], 1),
        "blocked_s": round(run["blocked_s"], 1),
        "tickets_per_s": round(len(driver.issued) / run["wall_s"], 1),
        "requested_per_s": None
        if math.isnan(run["generated_s"])
        else round(len(driver.issued) / run["generated_s"], 1),
        "latency_s": {f"p{q}": pct(lat, q) for q in (50, 90, 95, 99)} | {"max": pct(lat, 100), "n": len(lat)},
        "requeue_latency_s": {f"p{q}": pct(requeue_lat, q) for q in (50, 95)} | {"n": len(requeue_lat)},
        "level_gap_mean": round(sum(gaps) / len(gaps), 4) if gaps else None,
        "level_gap_p95": pct(gaps, 95),
        "most_open_sessions_per_learner_skill": check["most_open_sessions"],
        "orphan_session_ends": check["orphan_session_ends"],
        "stores": {k: dict(v) for k, v in check["stores"].items()},
        "store_tickets_not_as_in_log": check["diverged"],
        "skills_decided": run["owned"],
        "log_records": check["log_records"],
        "dead_letters": check["dead_letters"],
        "sessions_ended_in_log_not_in_store": {k: len(v) for k, v in check["not_ended_in_store"].items()},
        "driver_anomalies": len(driver.anomalies),
        "broker_gaps_refetched": driver.counts["broker_gaps_refetched"],
        "matcher_gaps_refetched": check["gaps_met"],
        "stalled": run["stalled"],
    }


def report(args: argparse.Namespace, out: dict[str, Any], checks: dict[str, bool]) -> None:
    lat, rq = out["latency_s"], out["requeue_latency_s"]
    print(
        f"matching replay: {out['tickets']:,} tickets from {args.learners:,} learners over "
        f"{len(get_catalog().skills)} skills, {args.rate:g}/s (at most {args.max_open:,} open), "
        f"two matcher processes, Tansu memory engine; ttl {args.ttl:g} s, seed {args.seed}"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"  wall {out['wall_s']:.1f} s (requesting {out['requesting_s']} s, {out['blocked_s']:.1f} s with "
        f"nobody free or too many open): {out['tickets_per_s']:,.1f} tickets/s through the system "
        f"(first request to last ticket closed); {out['requested_per_s']} requests/s while requesting"
    )
    print(
        f"  outcomes {out['outcomes']}; requeue tickets {out['requeue_tickets']:,} (copies "
        f"{out['requeue_copies']:,}), refused requests {out['refused_requests']}"
    )
    print(
        f"  MatchFound published {out['match_found_published']:,} "
        f"({out['match_found_distinct']:,} distinct), "
        f"effective {out['match_found_effective']:,}, void (lost races) {out['match_found_void']:,} "
        f"{out['void_found_causes']}"
    )
    print(
        f"  cancels published {out['cancels_published']:,}, effective {out['cancels_effective']:,}, "
        f"lost to a match {out['cancels_lost_to_match']:,}; expiries {out['expiries_effective']:,} of "
        f"{out['expiries_published']:,} published"
    )
    print(f"  sessions completed {out['sessions_completed']:,}, no-shows {out['no_shows']:,}")
    print(
        f"  match latency (request event -> MatchFound event, {lat['n']:,} tickets): p50 {lat['p50']} s, "
        f"p90 {lat['p90']} s, p95 {lat['p95']} s, p99 {lat['p99']} s, max {lat['max']} s; requeued "
        f"({rq['n']:,}): p50 {rq['p50']} s, p95 {rq['p95']} s"
    )
    print(f"  level gap of effective matches: mean {out['level_gap_mean']}, p95 {out['level_gap_p95']}")
    print(
        f"  sessions the log ended that a store still holds open: {out['sessions_ended_in_log_not_in_store']}"
        f" (learners refused there as busy: {out['learners_refused_as_busy_in_store']})"
    )
    if "rebuild" in out:
        print(f"  rebuild on an empty store: {out['rebuild']}")
    print(f"  store tickets whose state is not the log's: {out['store_tickets_not_as_in_log']}")
    print(f"  stores: {out['stores']}; log records {out['log_records']}; dead letters {out['dead_letters']}")
    print(
        f"  session ends naming no effective match {out['orphan_session_ends']}; gaps the broker served the "
        f"driver's consumer (fetched again) {out['broker_gaps_refetched']}, the matchers' consumers "
        f"{out['matcher_gaps_refetched']}"
    )
    print("checks:")
    for name, ok in checks.items():
        print(f"  {name}: {'met' if ok else 'MISSED'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=400.0, help="ticket requests per second (steady)")
    parser.add_argument("--learners", type=int, default=5_000)
    parser.add_argument("--max-open", type=int, default=1_000, help="open tickets at most (a closed loop)")
    parser.add_argument("--ttl", type=float, default=30.0, help="LEMMA_MATCHING_TTL_S of the matchers")
    parser.add_argument("--session-s", type=float, default=1.0, help="mean simulated session length")
    parser.add_argument("--cancel-within", type=float, default=0.2, help="a cancel follows in 0..this s")
    parser.add_argument("--stall-s", type=float, default=90.0, help="give up when nothing closes this long")
    parser.add_argument(
        "--rebuild", action="store_true", help="then fold the whole log into a third, empty store"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs, stores)")
    args = parser.parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    workdir = Path(tempfile.mkdtemp(prefix="lemma-matching-replay-"))
    matchers: list[Matcher] = []
    ok = False
    try:
        with kafka_broker(workdir) as bootstrap:
            try:
                asyncio.run(ensure_topics(bootstrap))
                for name in INSTANCES:
                    matchers.append(start_matcher(name, bootstrap, workdir / name, args.ttl))
                run = asyncio.run(drive(args, bootstrap, matchers))
                check = asyncio.run(verify(bootstrap, matchers, run["driver"]))
                for m in matchers:
                    check["busy_on_not_ended"][m.instance] = busy_on(
                        m.db, check["not_ended_in_store"][m.instance]
                    )
                rebuilt = asyncio.run(rebuild(bootstrap, workdir, args, check)) if args.rebuild else None
            finally:
                for m in matchers:
                    stop_process(m.proc)
        checks = check["checks"] | {"drained": not run["stalled"] and not run["driver"].anomalies}
        out = figures(args, run, check)
        out["learners_refused_as_busy_in_store"] = check["busy_on_not_ended"]
        if rebuilt is not None:
            out["rebuild"] = rebuilt
            checks["rebuilt_store_agrees_with_log"] = rebuilt["agree"]
            checks["rebuilt_store_saw_every_session_end"] = rebuilt["not_ended"] == 0
        report(args, out, checks)
        for anomaly in run["driver"].anomalies[:10]:
            print(f"  driver anomaly: {anomaly}")
        missed = [name for name, passed in checks.items() if not passed]
        ok = not missed
        print(
            json.dumps(
                {"benchmark": "matching_replay", **out, "checks": checks, "target": TARGET}
                | {"meets_targets": ok, "missed": missed}
            )
        )
        return 0
    except KeyboardInterrupt:
        print("interrupted: the broker and the matching processes are stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep or not ok:
            print(f"state kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
