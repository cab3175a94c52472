"""The matcher's in-memory book (pure): a fold of the log that ends where the projection's fold
of the same log ends, whatever the order of requests, matches, cancels, expiries and copies, and
wherever it was loaded from the store; and decisions that never name a ticket twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching import domain
from services.matching.book import Book, Record
from services.matching.domain import PARTNERS, TICKETS, WAITING_INDEX, match_found
from services.matching.engine import Expansion, Rules
from services.matching.partners import PartnerMemory
from services.matching.projection import MatchingProjection, met_again
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchCancelled, MatchExpired, MatchFound, MatchRequested, Payload
from shared.projection import fold_events

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ML = "machine-learning"
RULES = Rules(expansions=(Expansion(0, 0.5), Expansion(10, 3.0)), recent_partners=2, ttl_s=60)
Docs = dict[tuple[str, str], Any]


def ev(payload: Payload, seconds: float) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(seconds=seconds))


def request(ticket: str, learner: str, seconds: float, level: float = 2.0) -> CloudEvent:
    requested = MatchRequested(
        ticket_id=ticket,
        learner_id=learner,
        skill=ML,
        level=level,
        requested_at=T0 + timedelta(seconds=seconds),
    )
    return ev(requested, seconds)


def fold(events: list[CloudEvent]) -> Docs:
    docs, _ = fold_events(MatchingProjection(), events)
    return docs


def records(events: list[CloudEvent], first: int = 0) -> list[Record]:
    return [(0, first + n, e) for n, e in enumerate(events)]


def loaded(docs: Docs, position: int, now: datetime, *, promise_ttl_s: float = 30.0) -> Book:
    """A book loaded from the projection's documents standing at ``position``."""
    book = Book(RULES, promise_ttl_s=promise_ttl_s)
    waiting = [docs[(TICKETS, key.split("/", 1)[1])] for (c, key) in docs if c == WAITING_INDEX]
    book.load(0, [ML], position, waiting, {}, now)
    return book


def statuses(docs: Docs) -> dict[str, str]:
    return {key: doc["status"] for (c, key), doc in docs.items() if c == TICKETS}


def agrees(book: Book, docs: Docs) -> None:
    """The book has every ticket the projection has waiting, waiting, and no other; a ticket it
    still holds (a late copy of a request older than the book) is closed in the log."""
    skill = book.skills[ML]
    expected = {key for key, status in statuses(docs).items() if status == "waiting"}
    assert set(skill.waiting) == expected
    for ticket_id, status in statuses(docs).items():
        if ticket_id in skill.held:
            assert status != "waiting", ticket_id
        elif ticket_id in skill.status:
            assert skill.status[ticket_id] == status, ticket_id


@st.composite
def skill_logs(draw: st.DrawFn) -> list[CloudEvent]:
    """One skill's partition: requests (some of a learner who already waits), decisions that may
    conflict or name closed tickets, cancels, expiries, and late copies of any of them."""
    learners = ["ann", "bob", "cy", "dee", "eve"]
    events: list[CloudEvent] = []
    count = draw(st.integers(2, 9))
    for i in range(count):
        events.append(
            request(f"t{i}", draw(st.sampled_from(learners)), i, draw(st.sampled_from([1.0, 2.0, 3.5])))
        )
    docs = fold(events)
    ids = sorted(key for key, _ in statuses(docs).items())
    for step in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["match", "cancel", "expire", "copy", "request"]))
        a = draw(st.sampled_from(ids))
        at = 20 + step
        if kind == "match":
            b = draw(st.sampled_from(ids))
            if a != b:
                events.append(ev(match_found(docs[(TICKETS, a)], docs[(TICKETS, b)], now=T0), at))
        elif kind == "copy":
            events.append(draw(st.sampled_from(events)))
        elif kind == "request":
            n = len(ids) + step
            events.append(request(f"t{n}", draw(st.sampled_from(learners)), at))
        else:
            t = docs[(TICKETS, a)]
            payload: Payload = (
                MatchCancelled(ticket_id=a, learner_id=t["learner_id"], skill=ML, reason="x")
                if kind == "cancel"
                else MatchExpired(ticket_id=a, learner_id=t["learner_id"], skill=ML)
            )
            events.append(ev(payload, at))
    return events


@settings(max_examples=150, deadline=None)
@given(skill_logs(), st.data())
def test_loaded_anywhere_and_folded_on_the_book_ends_as_the_projection(
    events: list[CloudEvent], data: st.DataObject
) -> None:
    """Loaded from the store at any point of the log, then folding the rest (its requests
    checked against documents the store may have folded further, or not at all), the book
    ends as the projection's fold of the whole log; a redelivered batch changes nothing."""
    horizon = data.draw(st.integers(0, len(events)))
    book = loaded(fold(events[:horizon]), horizon - 1, T0)
    rest = records(events[horizon:], horizon)
    store_at = horizon  # the store only moves on: behind the book or ahead of it
    while rest:
        size = data.draw(st.integers(1, len(rest)))
        batch, rest = rest[:size], rest[size:]
        store_at = data.draw(st.integers(store_at, len(events)))
        docs_then = fold(events[:store_at])
        fresh = book.fresh(batch)
        stored = {
            i: docs_then[(TICKETS, i)] for i in book.unknown_requests(fresh) if (TICKETS, i) in docs_then
        }
        book.fold(fresh, stored)
        book.fold(book.fresh(batch), {})  # redelivered: nothing new
    agrees(book, fold(events))


@settings(max_examples=100, deadline=None)
@given(skill_logs(), st.data())
def test_decisions_never_name_a_ticket_twice_whatever_the_log_does_meanwhile(
    events: list[CloudEvent], data: st.DataObject
) -> None:
    """The book decides as the log goes (its decisions reach the log late, after cancels that
    may void them): no ticket is ever in two decisions that take effect, nor in two decisions
    at once, and the book still ends as the projection."""
    book = loaded({}, -1, T0, promise_ttl_s=10_000)  # every decision waits for the log
    log: list[CloudEvent] = []
    in_flight: list[CloudEvent] = []
    pending_ids: set[str] = set()
    for event in events:
        now = T0 + timedelta(seconds=len(log) + 30)
        log.append(event)
        book.fold(records([event], len(log) - 1), {})
        if isinstance(event.data, MatchFound | MatchExpired):  # the same decision as one in flight
            same = [e for e in in_flight if decision_of(e) == decision_of(event)]
            in_flight = [e for e in in_flight if e not in same]
            for settled in same:
                pending_ids -= set(domain_tickets(settled))
        decisions = book.admit({}, {}, now)
        book.lapse(now)
        decisions += book.sweep(now, {})
        for decision in decisions:
            ids = {t.ticket_id for t in decision.tickets}
            assert not ids & pending_ids, "a ticket offered twice"
            pending_ids |= ids
            payload: Payload = (
                domain.pair_found(decision.pair, ML, now=now)
                if decision.pair is not None
                else domain.ticket_expired(decision.expired, ML)  # type: ignore[arg-type]
            )
            in_flight.append(ev(payload, len(log) + 30))
        while in_flight:  # the decisions reach the log, some later
            arrives: bool = data.draw(st.booleans())
            if not arrives:
                break
            decided = in_flight.pop(0)
            log.append(decided)
            book.fold(records([decided], len(log) - 1), {})
            pending_ids -= set(domain_tickets(decided))
    for decided in in_flight:
        log.append(decided)
        book.fold(records([decided], len(log) - 1), {})
    docs = fold(log)
    agrees(book, docs)
    matched = [t for e in log if isinstance(e.data, MatchFound) for t in domain_tickets(e)]
    effective = [d["match_id"] for (c, _), d in docs.items() if c == TICKETS and d["status"] == "matched"]
    assert all(effective.count(m) == 2 for m in effective)
    assert len(matched) >= len(effective)


def decision_of(event: CloudEvent) -> str:
    """What a decision is about: its match, or the ticket it expires (the same id, the same decision)."""
    data = event.data
    return data.match_id if isinstance(data, MatchFound) else f"expiry/{getattr(data, 'ticket_id', '')}"


def domain_tickets(event: CloudEvent) -> list[str]:
    data = event.data
    if isinstance(data, MatchFound):
        return [t.ticket_id for t in data.tickets]
    return [data.ticket_id] if isinstance(data, MatchExpired) else []


def test_an_arrival_is_paired_at_once_with_its_best_candidate_and_promised_until_the_log_says() -> None:
    book = loaded({}, -1, T0)
    book.fold(records([request("t1", "ann", 0), request("t2", "bob", 1, 3.5), request("t3", "cy", 2, 2.2)]))
    assert book.wanted() == (
        [f"{who}/{ML}" for who in ("ann", "bob", "cy")],
        [f"{who}/{ML}" for who in ("ann", "bob", "cy")],
    )
    (decision,) = book.admit({}, {}, T0 + timedelta(seconds=2))
    assert decision.pair is not None and {decision.pair.older.ticket_id, decision.pair.newer.ticket_id} == {
        "t1",
        "t3",
    }
    assert set(book.skills[ML].promised) == {"t1", "t3"} and len(book.skills[ML].queue) == 1
    found = domain.pair_found(decision.pair, ML, now=T0 + timedelta(seconds=2))
    book.fold(records([ev(found, 2)], 3))
    assert book.skills[ML].status == {"t1": "matched", "t2": "waiting", "t3": "matched"}
    assert book.skills[ML].partners.recent("ann") == ("cy",) and not book.skills[ML].promised


def test_a_void_decision_and_an_unanswered_promise_put_the_tickets_back() -> None:
    book = loaded({}, -1, T0)
    book.fold(records([request("t1", "ann", 0), request("t2", "bob", 1), request("t3", "cy", 2)]))
    (decision,) = book.admit({}, {}, T0 + timedelta(seconds=2))
    assert decision.pair is not None
    first, second = decision.pair.older, decision.pair.newer
    cancel = ev(
        MatchCancelled(ticket_id=first.ticket_id, learner_id=first.learner_id, skill=ML, reason="x"), 3
    )
    found = ev(domain.pair_found(decision.pair, ML, now=T0 + timedelta(seconds=2)), 3)
    book.fold(records([cancel, found], 3))  # the cancel got there first: the match is void
    assert (
        book.skills[ML].status[second.ticket_id] == "waiting" and second.ticket_id in book.skills[ML].pending
    )
    (again,) = book.admit({}, {}, T0 + timedelta(seconds=4))  # offered again: paired with the third
    assert again.pair is not None and second.ticket_id in {
        again.pair.older.ticket_id,
        again.pair.newer.ticket_id,
    }
    book.lapse(T0 + timedelta(seconds=40))  # no answer in 30 s: both back
    assert not book.skills[ML].promised and len(book.skills[ML].pending) == 2


def test_a_late_copy_of_a_request_older_than_the_book_is_never_offered() -> None:
    """t1 was requested and cancelled before the book was loaded; a copy of its request comes
    after (a relay publishing again): the store's document says it is closed."""
    early = [
        request("t1", "ann", 0),
        ev(MatchCancelled(ticket_id="t1", learner_id="ann", skill=ML, reason="x"), 1),
    ]
    docs = fold(early)
    book = loaded(docs, 1, T0 + timedelta(seconds=2))
    copy = records([early[0]], 2)
    assert book.unknown_requests(copy) == ["t1"]
    book.fold(copy, {"t1": docs[(TICKETS, "t1")]})
    assert book.wanted() == ([], []) and "t1" in book.skills[ML].held
    later = records([request("t2", "ann", 5)], 3)  # ann is not kept waiting by the copy
    book.fold(later, {})
    assert set(book.skills[ML].pending) == {"t2"}


def test_requests_stamped_well_after_the_loading_are_not_looked_up() -> None:
    book = loaded({}, -1, T0)
    assert book.unknown_requests(records([request("t1", "ann", 30)])) == ["t1"]
    assert book.unknown_requests(records([request("t2", "bob", 120)])) == []


def test_partners_merge_the_stores_document_with_the_log_read_since() -> None:
    memory = PartnerMemory(keep=3)
    memory.met("m3", "ann", "cy")  # the log since the book was loaded: m3, then m4
    memory.met("m4", "ann", "dee")
    doc = met_again(met_again(met_again(None, "p1", "m1"), "bob", "m2"), "cy", "m3")  # the store had m3
    memory.load("ann", doc)
    assert memory.recent("ann") == ("bob", "cy", "dee")
    memory.met("m5", "ann", "eve")
    assert memory.recent("ann") == ("cy", "dee", "eve")
    behind = PartnerMemory(keep=3)
    behind.met("m3", "ann", "cy")
    behind.load("ann", met_again(None, "bob", "m2"))  # the store had not folded m3 yet
    assert behind.recent("ann") == ("bob", "cy")
    old = PartnerMemory(keep=3)
    old.met("m3", "ann", "cy")
    old.load("ann", {"partners": ["bob", "cy"]})  # before match ids: the log on top, to be safe
    assert old.recent("ann") == ("bob", "cy", "cy")


def test_a_partner_document_keeps_its_match_ids() -> None:
    doc: dict[str, Any] | None = None
    for n in range(12):
        doc = met_again(doc, f"p{n}", f"m{n}")
    assert doc is not None and doc["partners"][-1] == "p11" and doc["matches"][0] == "m2"
    assert len(doc["partners"]) == len(doc["matches"]) == 10
    assert PARTNERS == "partners"
