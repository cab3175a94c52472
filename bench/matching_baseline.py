"""The baseline: the previous matcher's path, which read a skill's whole queue from the store
at every run, and the store documents both paths read.

Before the in-memory book, each fold write woke the matcher, which for **every skill it owned**
scanned the skill's ``waiting`` index, read the tickets, promises, levels and partners of all
of them, put them in a fresh ``SkillQueue`` and swept it in full (``old_decide`` below, as it
was in ``services/matching/matcher.py``, deciding with today's engine). Timed here on the same
store as the new path, without its write (which only flatters it).

``write_queue`` puts a replica's waiting tickets in the store as the projection holds them
(``tickets``, the ``waiting`` index, ``open``), with the projection's offsets at the log's
end, so that both paths read the same state: the old one scanning it, the new one taking it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from services.matching import domain
from services.matching.book import Book
from services.matching.domain import LEVELS, OPEN, PARTNERS, PROMISED, TICKETS, WAITING_INDEX
from services.matching.engine import Rules, SkillQueue
from shared.events.payloads import MatchRequested
from shared.store import Change, Store

PAGE = 1000
PROMISE_TTL_S = 30.0


async def write_queue(store: Store, book: Book, topic: str, offsets: dict[int, int]) -> int:
    """The book's waiting tickets as projection documents, and the projection's offsets."""
    changes: list[Change] = []
    for skill, skill_book in book.skills.items():
        for ticket in skill_book.waiting.values():
            requested = MatchRequested(
                ticket_id=ticket.ticket_id,
                learner_id=ticket.learner_id,
                skill=skill,
                specialty=ticket.specialty,
                format=ticket.format,
                level=ticket.level,
                requested_at=ticket.requested_at,
            )
            doc = domain.ticket_doc(requested, ticket.queued_at or ticket.requested_at)
            changes += [
                Change(TICKETS, ticket.ticket_id, doc),
                Change(
                    WAITING_INDEX,
                    domain.waiting_key(skill, ticket.ticket_id),
                    {"ticket_id": ticket.ticket_id},
                ),
                Change(OPEN, domain.learner_key(ticket.learner_id, skill), {"ticket_id": ticket.ticket_id}),
            ]
    positions = {("matching", topic, p): last for p, last in offsets.items() if last >= 0}
    await store.write(changes, offsets=positions)
    return sum(1 for c in changes if c.collection == TICKETS)


async def old_decide(store: Store, skill: str, rules: Rules, now: datetime) -> tuple[int, int]:
    """One run of the previous matcher for one skill; returns (tickets read, pairs decided)."""
    ids: list[str] = []
    after: str | None = None
    while rows := await store.scan(WAITING_INDEX, domain.waiting_prefix(skill), after=after, limit=PAGE):
        ids += [str(doc["ticket_id"]) for _, doc in rows]
        after = rows[-1][0]
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
    keys = [domain.learner_key(t["learner_id"], skill) for t in waiting]
    levels = await store.get_many(LEVELS, keys)
    waiting = [
        {**t, "level": domain.level_of(levels[k])}
        if k in levels and levels[k].get("level") is not None
        else t
        for t, k in zip(waiting, keys, strict=True)
    ]
    met = await store.get_many(PARTNERS, keys)
    partners = {key.split("/", 1)[0]: doc["partners"] for key, doc in met.items()}
    queue = SkillQueue(rules, recent=partners)
    for doc in waiting:
        queue.add(domain.engine_ticket(doc), now)
    pairs, _ = queue.sweep(now, full=True)
    return len(waiting), len(pairs)


async def time_old_path(
    store: Store, skills: Sequence[str], rules: Rules, now: datetime, *, sample: int
) -> dict[str, Any]:
    """The old path per skill (``sample`` skills, the ones with the most waiting first), and one
    whole run over every skill, as each fold write caused."""
    sizes = {s: await store.count(WAITING_INDEX, domain.waiting_prefix(s)) for s in skills}
    chosen = sorted(skills, key=lambda s: (-sizes[s], s))[:sample]
    per_skill: list[float] = []
    for skill in chosen:
        started = time.perf_counter()
        await old_decide(store, skill, rules, now)
        per_skill.append(time.perf_counter() - started)
    started = time.perf_counter()
    read = 0
    for skill in skills:
        read += (await old_decide(store, skill, rules, now))[0]
    return {
        "per_skill_s": per_skill,
        "run_s": time.perf_counter() - started,
        "run_tickets": read,
        "largest_queue": max(sizes.values(), default=0),
    }
