"""The checks after the run: the logs read back whole and folded two ways, the stores of the
matching processes against the log, and the rebuild of the whole log into an empty store."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.matching_replay.driver import Driver
from bench.matching_replay.matchers import Matcher, busy_on, start_matcher, still_open, store_docs, until
from bench.matching_replay.referee import TERMINAL, Referee, sessions_overlap
from bench.matching_replay.topics import read_topic
from services.matching.projection import MatchingProjection, requeue_ticket_id
from shared.bus import PARTITIONS
from shared.events.envelope import CloudEvent, decode
from shared.events.payloads import MatchFound, SessionAbandoned, SessionCompleted
from shared.events.registry import Topic
from shared.projection import fold_events
from tests.support.processes import stop_process


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
        await until(stores_agree, 120, "the store agrees with the log", interval=2)
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
    }


async def rebuild(
    bootstrap: str, workdir: Path, args: argparse.Namespace, check: dict[str, Any]
) -> dict[str, Any]:
    """A third process on an empty store, alone in the group once the replicas have stopped, folds
    the whole log (a rebuild, or a restart that lost the store): it must reach the same tickets
    and see every session end."""
    statuses: dict[str, str] = check["ticket_statuses"]
    started = time.monotonic()
    # a ttl it never reaches: with nothing left waiting, it decides nothing (the log stays as checked)
    m = start_matcher("rebuild", bootstrap, workdir / "rebuild", 1e9, workdir / "rebuild" / "store")
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
