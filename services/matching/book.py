"""The matcher's book (pure): the waiting queues of the skills a replica owns, kept in memory
and folded from the log.

A replica owns the skills whose partition of ``lemma.matching.v1`` it holds in the engine
group. When it gains a partition, its book is **loaded** from the store at a position the
store's documents are known to stand at (the matcher reads the projection's offset before and
after the waiting tickets and retries until both agree): every waiting ticket, and the promises
a decision made that the log has not settled. From there the book **folds** the partition's
records, in offset order, once each (``positions``), with the rule of ``shared.ticket_log``:
the first effective event wins. So the book is what the log says, exactly as the projection's
fold is, and nothing is read from the store per decision except the levels and recent partners
of the tickets concerned.

A ticket the log has waiting is in exactly one of:

- ``pending``: folded, its learner's level and partners not read yet (the matcher reads them
  and calls ``admit``, which decides for it: an arrival is paired at once or queued);
- the ``queue`` (the engine's ``SkillQueue``): offered to others;
- ``promised``: named by a decision whose event the log has not settled; never offered twice.
  An effective MatchFound closes it; a void one (a cancel got there first) or no answer within
  ``promise_ttl_s`` puts it back;
- ``held``: a request of a ticket this book had never seen whose document the store already
  has closed: a late copy of a request older than the book, or a request the store folded
  ahead of the book together with what closed it. Either way it is waiting, in the log's
  rule, only until the event that closed it (named by the document), and never offered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from services.matching.domain import engine_ticket, learner_key, match_id_for, parse_stamp
from services.matching.engine import Pair, Rules, Ticket
from services.matching.skillbook import Activity, Promise, SkillBook, closed_by, refused
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchCancelled, MatchExpired, MatchFound, MatchRequested
from shared.ticket_log import CANCELLED, EXPIRED, MATCHED, WAITING

PROMISE_TTL_S: Final = 30.0
#: How far ahead of this replica's clock a publisher's may be. A request stamped later than a
#: partition's loading plus this cannot be a copy of one the log held before the book.
CLOCK_SKEW_S: Final = 60.0

Doc = dict[str, Any]
Record = tuple[int, int, CloudEvent]  # (partition, offset, event)


@dataclass(frozen=True)
class Decision:
    """A pair to publish (MatchFound) or a ticket to expire (MatchExpired)."""

    skill: str
    pair: Pair | None = None
    expired: Ticket | None = None
    match_id: str | None = None  # of the pair

    @property
    def tickets(self) -> tuple[Ticket, ...]:
        if self.pair is not None:
            return (self.pair.older, self.pair.newer)
        return (self.expired,) if self.expired is not None else ()


class Book:
    """The books of the skills of the partitions this replica owns."""

    def __init__(self, rules: Rules, *, promise_ttl_s: float = PROMISE_TTL_S) -> None:
        self.rules = rules
        self.promise_ttl_s = promise_ttl_s
        self.skills: dict[str, SkillBook] = {}
        self.positions: dict[int, int] = {}  # partition -> the last offset folded
        self._partition_skills: dict[int, tuple[str, ...]] = {}
        self._copies_until: dict[int, datetime] = {}  # requests stamped before may be old copies
        self._activity = Activity()
        self._awake: dict[str, None] = {}  # skills a sweep at hand looks at
        self._widened: dict[str, list[Ticket]] = {}  # what ``due`` found, for the sweep at hand

    # -- ownership --------------------------------------------------------------------------------

    def load(
        self,
        partition: int,
        skills: Sequence[str],
        position: int,
        tickets: Iterable[Mapping[str, Any]],
        promised: Mapping[str, Mapping[str, Any]],
        now: datetime,
    ) -> None:
        """Take a partition: its skills' waiting tickets as the store holds them at ``position``
        (the last offset folded there; -1: none), and the promises not yet settled."""
        self.drop(partition)
        self.positions[partition] = position
        self._partition_skills[partition] = tuple(skills)
        self._copies_until[partition] = now + timedelta(seconds=CLOCK_SKEW_S)
        books = {skill: SkillBook(skill, self.rules, self._activity) for skill in skills}
        self.skills.update(books)
        fresh = now - timedelta(seconds=self.promise_ttl_s)
        for doc in tickets:
            book = books.get(str(doc["skill"]))
            if book is None or doc["status"] != WAITING:
                continue
            ticket = engine_ticket(doc)
            book.open_ticket(ticket, arrived=False)
            promise = promised.get(ticket.ticket_id)
            if promise is not None and parse_stamp(promise["at"]) > fresh:
                book.pending.pop(ticket.ticket_id)
                book.promise(ticket.ticket_id, Promise(promise.get("match_id"), parse_stamp(promise["at"])))

    def drop(self, partition: int) -> list[str]:
        """Give a partition up; returns its skills."""
        self.positions.pop(partition, None)
        self._copies_until.pop(partition, None)
        skills = self._partition_skills.pop(partition, ())
        for skill in skills:
            self.skills.pop(skill, None)
            self._activity.forget(skill)
            self._awake.pop(skill, None)
            self._widened.pop(skill, None)
        return list(skills)

    def partitions(self) -> list[int]:
        return sorted(self.positions)

    # -- the log ----------------------------------------------------------------------------------

    def fresh(self, records: Iterable[Record]) -> list[Record]:
        """The records not folded yet, of partitions held, in the order given (per partition:
        offset order, as a consumer serves them)."""
        out: list[Record] = []
        last: dict[int, int] = {}
        for partition, offset, event in records:
            position = last.get(partition, self.positions.get(partition))
            if position is not None and offset > position:
                last[partition] = offset
                out.append((partition, offset, event))
        return out

    def unknown_requests(self, records: Iterable[Record]) -> list[str]:
        """Ticket ids requested in ``records`` that the book has never seen and that may be a
        copy of a request the log held before the book was loaded (stamped before the loading,
        give or take ``CLOCK_SKEW_S``): the matcher reads their documents for ``fold``."""
        ids: list[str] = []
        for partition, _, event in records:
            data = event.data
            if isinstance(data, MatchRequested) and event.time <= self._copies_until.get(
                partition, event.time
            ):
                book = self.skills.get(data.skill)
                if book is not None and data.ticket_id not in book.status:
                    ids.append(data.ticket_id)
        return ids

    def fold(self, records: Iterable[Record], stored: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Fold ``fresh`` records; ``stored``: the store's documents of ``unknown_requests``."""
        for partition, offset, event in records:
            if offset <= self.positions.get(partition, offset):
                continue  # folded already, or a partition not held
            self.positions[partition] = offset
            data = event.data
            if isinstance(data, MatchRequested):
                book = self.skills.get(data.skill)
                if book is not None:
                    self._requested(book, data, event.time, (stored or {}).get(data.ticket_id))
            elif isinstance(data, MatchFound):
                book = self.skills.get(data.skill)
                if book is not None:
                    self._found(book, data)
            elif isinstance(data, MatchCancelled | MatchExpired):
                book = self.skills.get(data.skill)
                if book is not None:
                    self._closed(book, data)

    def _requested(
        self, book: SkillBook, data: MatchRequested, at: datetime, doc: Mapping[str, Any] | None
    ) -> None:
        if data.ticket_id in book.status:
            return  # a copy
        ticket = Ticket(
            ticket_id=data.ticket_id,
            learner_id=data.learner_id,
            level=data.level,
            requested_at=data.requested_at,
            specialty=data.specialty,
            format=data.format,
            queued_at=at,
        )
        if doc is not None and doc.get("status") is not None:
            if refused(doc):
                book.status[data.ticket_id] = CANCELLED
                book.remember_closed(data.ticket_id)
                return
            if doc["status"] != WAITING:  # waiting until what the document says closed it
                book.hold(ticket, closed_by(doc))
                return
        elif data.learner_id in book.open:
            book.status[data.ticket_id] = CANCELLED  # the learner already waits in the skill
            book.remember_closed(data.ticket_id)
            return
        book.open_ticket(ticket, arrived=True)

    def _found(self, book: SkillBook, data: MatchFound) -> None:
        first, second = (t.ticket_id for t in data.tickets)
        closing = (MATCHED, data.match_id)
        if first != second and book.waiting_until(first, closing) and book.waiting_until(second, closing):
            for ticket_id in (first, second):
                book.close(ticket_id, MATCHED)
            book.partners.met(data.match_id, data.tickets[0].learner_id, data.tickets[1].learner_id)
            return
        for ticket_id in (first, second):  # void: a decision of ours that lost frees its tickets
            promise = book.promised.get(ticket_id)
            if promise is not None and promise.match_id == data.match_id:
                book.release(ticket_id)

    def _closed(self, book: SkillBook, data: MatchCancelled | MatchExpired) -> None:
        status = CANCELLED if isinstance(data, MatchCancelled) else EXPIRED
        if book.waiting_until(data.ticket_id, (status, None)):
            book.close(data.ticket_id, status)

    # -- deciding ---------------------------------------------------------------------------------

    def _with_pending(self) -> list[SkillBook]:
        found = [self.skills[s] for s in self._activity.pending if s in self.skills]
        return [book for book in found if book.pending]

    def wanted(self) -> tuple[list[str], list[str]]:
        """The ``levels`` and ``partners`` keys ``admit`` needs: the pending tickets' learners
        (partners only for learners not loaded yet)."""
        levels: list[str] = []
        partners: list[str] = []
        for book in self._with_pending():
            for ticket, _ in book.pending.values():
                key = learner_key(ticket.learner_id, book.skill)
                levels.append(key)
                if not book.partners.loaded(ticket.learner_id):
                    partners.append(key)
        return levels, partners

    def admit(
        self,
        levels: Mapping[str, Mapping[str, Any]],
        partners: Mapping[str, Mapping[str, Any]],
        now: datetime,
    ) -> list[Decision]:
        """Decide for every pending ticket, with its learner's level and partners as read:
        tickets loaded or put back are queued and examined with the queue; each arrival, in log
        order, is paired at once with its best acceptable candidate or queued."""
        decisions: list[Decision] = []
        books = self._with_pending()
        self._activity.pending.clear()
        for book in books:
            pending = list(book.pending.values())
            book.pending.clear()
            arrivals: list[Ticket] = []
            for ticket, arrived in pending:
                key = learner_key(ticket.learner_id, book.skill)
                if not book.partners.loaded(ticket.learner_id):
                    book.partners.load(ticket.learner_id, partners.get(key))
                current = _at_level(ticket, levels.get(key))
                book.waiting[ticket.ticket_id] = current
                if arrived:
                    arrivals.append(current)
                else:
                    book.queue.add(current, now, examined=False)
            if len(arrivals) < len(pending):
                decisions += self._decided(book, *book.queue.sweep(now), now)
            for ticket in arrivals:
                pair = book.queue.arrive(ticket, now)
                if pair is not None:
                    decisions += self._decided(book, [pair], [], now)
            self._activity.wake(book.skill, book.queue.next_change())
        return decisions

    def due(self, now: datetime) -> list[str]:
        """The ``levels`` keys a sweep at ``now`` reads: the tickets whose window widened (a
        claim or a score since they were last examined moves them)."""
        self._awake.update(dict.fromkeys(self._activity.awake(now)))
        keys: list[str] = []
        for skill in self._awake:
            book = self.skills.get(skill)
            if book is not None:
                widened = self._widened[skill] = book.queue.widened(now)
                keys += [learner_key(t.learner_id, skill) for t in widened]
        return keys

    def lapse(self, now: datetime) -> None:
        """Before a sweep: put back the tickets whose promise went unanswered (to be admitted
        again), and forget held tickets whose closing event never came (a late copy of a request
        older than the book is never closed in it)."""
        stale = now - timedelta(seconds=self.promise_ttl_s)
        forgotten = now - timedelta(seconds=2 * self.rules.ttl_s + self.promise_ttl_s)
        activity = self._activity
        for skill in list(activity.promising):
            book = self.skills.get(skill)
            if book is not None:
                for ticket_id in [t for t, p in book.promised.items() if p.at <= stale]:
                    book.release(ticket_id)
            if book is None or not book.promised:
                activity.promising.discard(skill)
        for skill in list(activity.holding):
            book = self.skills.get(skill)
            if book is not None:
                for ticket_id, (_, ticket) in list(book.held.items()):
                    if (ticket.queued_at or ticket.requested_at) <= forgotten:
                        del book.held[ticket_id]
                        book.status.pop(ticket_id, None)
            if book is None or not book.held:
                activity.holding.discard(skill)

    def sweep(self, now: datetime, levels: Mapping[str, Mapping[str, Any]]) -> list[Decision]:
        """Move re-examined tickets to their learners' levels, then expire and pair what the
        widened windows allow, in the skills whose queues have something due."""
        self._awake.update(dict.fromkeys(self._activity.awake(now)))
        awake, self._awake = self._awake, {}
        widened, self._widened = self._widened, {}
        decisions: list[Decision] = []
        for skill in awake:
            book = self.skills.get(skill)
            if book is None:
                continue
            for ticket in widened[skill] if skill in widened else book.queue.widened(now):
                doc = levels.get(learner_key(ticket.learner_id, book.skill))
                moved = _at_level(ticket, doc)
                if moved.level != ticket.level:
                    book.queue.relevel(ticket.ticket_id, moved.level)
                    book.waiting[ticket.ticket_id] = moved
            decisions += self._decided(book, *book.queue.sweep(now), now)
            self._activity.wake(skill, book.queue.next_change())
        return decisions

    def settled(self, decisions: Iterable[Decision], *, published: bool) -> None:
        """After the matcher's write: unpublished decisions (the write failed) put their
        tickets back at once; published ones stay promised until the log settles them."""
        if published:
            return
        for decision in decisions:
            book = self.skills.get(decision.skill)
            if book is not None:
                for ticket in decision.tickets:
                    book.release(ticket.ticket_id)

    def _decided(
        self, book: SkillBook, pairs: list[Pair], expired: list[Ticket], now: datetime
    ) -> list[Decision]:
        out: list[Decision] = []
        for pair in pairs:
            match_id = match_id_of(pair)
            for ticket in (pair.older, pair.newer):
                book.promise(ticket.ticket_id, Promise(match_id, now))
            out.append(Decision(book.skill, pair=pair, match_id=match_id))
        for ticket in expired:
            book.promise(ticket.ticket_id, Promise(None, now))
            out.append(Decision(book.skill, expired=ticket))
        return out

    # -- figures ----------------------------------------------------------------------------------

    def depth(self, skill: str) -> int:
        """Tickets the log has waiting in ``skill`` (offered, pending or promised; not held)."""
        book = self.skills.get(skill)
        return len(book.waiting) if book is not None else 0


def match_id_of(pair: Pair) -> str:
    return match_id_for(pair.older.ticket_id, pair.newer.ticket_id)


def _at_level(ticket: Ticket, doc: Mapping[str, Any] | None) -> Ticket:
    """The ticket at its learner's level as folded (a claim or a score), if there is one."""
    if doc is None or doc.get("level") is None or float(doc["level"]) == ticket.level:
        return ticket
    return replace(ticket, level=float(doc["level"]))
