"""The matching rules: closest level, ties by wait, never self, never a ticket that is not waiting;
a request pairs at once or waits; cancelling; and, for any sequence of requests and cancels,
no ticket in two matches and no learner paired with themself."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching import domain
from services.matching.domain import (
    LEVELS,
    OPEN,
    TICKETS,
    WAITING,
    MatchRequest,
    cancel_ticket,
    match_id_for,
    pick_partner,
    request_match,
    stamp,
)
from shared.events.payloads import MatchCancelled, MatchFound, MatchRequested, Payload
from shared.projection.fold import Doc, DocRef

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ML = "machine-learning"


def ticket(
    ticket_id: str,
    learner_id: str,
    level: float,
    *,
    minute: int = 0,
    status: str = "waiting",
    skill: str = ML,
    specialty: str | None = None,
    format: str | None = None,
) -> Doc:
    doc = domain.new_ticket(
        MatchRequest(ticket_id, learner_id, skill, specialty, format),
        level=level,
        now=T0 + timedelta(minutes=minute),
    )
    return {**doc, "status": status}


# -- pick_partner ---------------------------------------------------------------------------------


def test_the_closest_level_is_picked() -> None:
    waiting = [ticket("t1", "ann", 1.0), ticket("t2", "bob", 2.4), ticket("t3", "cat", 1.8)]
    assert pick_partner("dan", ML, 2.2, waiting)["ticket_id"] == "t2"  # type: ignore[index]


def test_ties_go_to_the_longest_waiting() -> None:
    waiting = [ticket("t1", "ann", 2.5, minute=5), ticket("t2", "bob", 1.5, minute=1)]
    assert pick_partner("dan", ML, 2.0, waiting)["ticket_id"] == "t2"  # type: ignore[index]


def test_never_the_same_learner() -> None:
    waiting = [ticket("t1", "dan", 2.0), ticket("t2", "bob", 2.9)]
    assert pick_partner("dan", ML, 2.0, waiting)["ticket_id"] == "t2"  # type: ignore[index]
    assert pick_partner("dan", ML, 2.0, waiting[:1]) is None


@pytest.mark.parametrize("status", ["matched", "cancelled", "expired"])
def test_never_a_ticket_that_is_not_waiting(status: str) -> None:
    waiting = [ticket("t1", "ann", 2.0, status=status), ticket("t2", "bob", 2.5)]
    assert pick_partner("dan", ML, 2.0, waiting)["ticket_id"] == "t2"  # type: ignore[index]
    assert pick_partner("dan", ML, 2.0, waiting[:1]) is None


def test_never_another_skill() -> None:
    assert pick_partner("dan", ML, 2.0, [ticket("t1", "ann", 2.0, skill="data-engineering")]) is None


def test_any_gap_pairs_unless_a_window_is_set() -> None:
    far = [ticket("t1", "ann", 4.0)]
    assert pick_partner("dan", ML, 1.0, far) is not None
    assert pick_partner("dan", ML, 1.0, far, max_gap=3.0) is not None
    assert pick_partner("dan", ML, 1.0, far, max_gap=2.9) is None
    d = request_match(
        MatchRequest("t2", "dan", ML), level=1.0, now=T0, open_ticket=None, waiting=far, max_gap=1.0
    )
    assert d.ticket["status"] == "waiting" and len(d.emit) == 1


# -- request_match --------------------------------------------------------------------------------


def test_a_request_without_partner_waits_in_the_queue() -> None:
    now = T0 + timedelta(minutes=3)
    d = request_match(MatchRequest("t9", "dan", ML, "nlp"), level=2.0, now=now, open_ticket=None, waiting=[])
    assert d.changed and d.ticket["status"] == "waiting" and d.ticket["session_id"] is None
    assert d.changes[(WAITING, f"{ML}/t9")] == {
        "ticket_id": "t9",
        "level": 2.0,
        "learner_id": "dan",
        "requested_at": stamp(now),
    }
    assert d.changes[(OPEN, f"dan/{ML}")] == {"ticket_id": "t9"}
    assert [type(p) for p in d.emit] == [MatchRequested]


def test_a_request_with_a_partner_matches_both_in_one_change_set() -> None:
    older = ticket("t1", "ann", 2.5, minute=0, specialty="nlp", format=None)
    now = T0 + timedelta(minutes=2, seconds=3)
    d = request_match(
        MatchRequest("t2", "bob", ML, None, "build"), level=2.0, now=now, open_ticket=None, waiting=[older]
    )
    requested, found = d.emit
    assert isinstance(requested, MatchRequested) and isinstance(found, MatchFound)
    assert found.match_id == match_id_for("t1", "t2") == match_id_for("t2", "t1")
    assert [t.ticket_id for t in found.tickets] == ["t1", "t2"]
    assert [(t.learner_id, t.level) for t in found.tickets] == [("ann", 2.5), ("bob", 2.0)]
    assert found.level_gap == 0.5 and found.waited_ms == 123_000
    assert (found.specialty, found.format) == ("nlp", "build")
    assert d.ticket["status"] == "matched" and d.ticket["session_id"] == found.match_id
    assert d.ticket["partner_id"] == "ann"
    assert d.changes[(TICKETS, "t1")] == {
        **older,
        "status": "matched",
        "match_id": found.match_id,
        "session_id": found.match_id,
        "partner_id": "bob",
        "closed_at": stamp(now),
    }
    assert d.changes[(WAITING, f"{ML}/t1")] is None and d.changes[(OPEN, f"ann/{ML}")] is None
    assert (WAITING, f"{ML}/t2") not in d.changes


def test_disagreeing_preferences_take_the_older_tickets() -> None:
    older = ticket("t1", "ann", 2.0, specialty="nlp", format="discuss")
    d = request_match(
        MatchRequest("t2", "bob", ML, "tabular", "discuss"),
        level=2.0,
        now=T0,
        open_ticket=None,
        waiting=[older],
    )
    found = d.emit[1]
    assert isinstance(found, MatchFound) and (found.specialty, found.format) == ("nlp", "discuss")


def test_a_second_request_while_waiting_returns_the_open_ticket() -> None:
    mine = ticket("t1", "ann", 2.0)
    d = request_match(MatchRequest("t2", "ann", ML), level=2.0, now=T0, open_ticket=mine, waiting=[mine])
    assert not d.changed and d.ticket == mine and not d.changes and not d.emit


def test_a_closed_open_pointer_does_not_block_a_new_ticket() -> None:
    old = ticket("t1", "ann", 2.0, status="matched")
    d = request_match(MatchRequest("t2", "ann", ML), level=2.0, now=T0, open_ticket=old, waiting=[])
    assert (
        d.changed and d.ticket["ticket_id"] == "t2" and d.changes[(OPEN, f"ann/{ML}")] == {"ticket_id": "t2"}
    )


# -- cancel_ticket --------------------------------------------------------------------------------


def test_the_owner_cancels_a_waiting_ticket() -> None:
    d = cancel_ticket(ticket("t1", "ann", 2.0), by="ann", by_ops=False, now=T0)
    assert d.changed and d.ticket["status"] == "cancelled"
    assert d.changes[(WAITING, f"{ML}/t1")] is None and d.changes[(OPEN, f"ann/{ML}")] is None
    (event,) = d.emit
    assert isinstance(event, MatchCancelled) and event.reason == "cancelled by learner"


def test_cancel_rules() -> None:
    with pytest.raises(domain.NotOwner):
        cancel_ticket(ticket("t1", "ann", 2.0), by="bob", by_ops=False, now=T0)
    with pytest.raises(domain.NotOwner):  # the owner check comes first
        cancel_ticket(ticket("t1", "ann", 2.0, status="matched"), by="bob", by_ops=False, now=T0)
    with pytest.raises(domain.NotOpen):
        cancel_ticket(ticket("t1", "ann", 2.0, status="matched"), by="ann", by_ops=False, now=T0)
    again = cancel_ticket(ticket("t1", "ann", 2.0, status="cancelled"), by="ann", by_ops=False, now=T0)
    assert not again.changed and not again.emit
    by_ops = cancel_ticket(ticket("t1", "ann", 2.0), by="op", by_ops=True, now=T0)
    assert by_ops.changed and by_ops.ticket["status"] == "cancelled"


# -- any sequence of requests and cancels ---------------------------------------------------------


class Queue:
    """Drives the pure rules the way the API does, over an in-memory document set."""

    def __init__(self, levels: dict[str, float], max_gap: float | None) -> None:
        self.max_gap = max_gap
        self.docs: dict[DocRef, Doc] = {
            (LEVELS, domain.level_key(learner, skill)): {"level": level}
            for learner, level in levels.items()
            for skill in SKILLS
        }
        self.emitted: list[Payload] = []
        self.created: list[str] = []
        self.clock = T0

    def _apply(self, decision: domain.Decision) -> None:
        for ref, doc in decision.changes.items():
            if doc is None:
                self.docs.pop(ref, None)
            else:
                self.docs[ref] = doc
        self.emitted.extend(decision.emit)

    def request(self, learner: str, skill: str) -> None:
        self.clock += timedelta(seconds=7)
        pointer = self.docs.get((OPEN, domain.open_key(learner, skill)))
        waiting = [
            self.docs[(TICKETS, doc["ticket_id"])]
            for (collection, key), doc in sorted(self.docs.items())
            if collection == WAITING and key.startswith(domain.waiting_prefix(skill))
        ]
        decision = request_match(
            MatchRequest(f"t{len(self.created)}", learner, skill),
            level=domain.level_of(self.docs.get((LEVELS, domain.level_key(learner, skill)))),
            now=self.clock,
            open_ticket=self.docs.get((TICKETS, pointer["ticket_id"])) if pointer else None,
            waiting=waiting,
            max_gap=self.max_gap,
        )
        if decision.changed:
            self.created.append(decision.ticket["ticket_id"])
        self._apply(decision)

    def cancel(self, index: int, by: str) -> None:
        if not self.created:
            return
        self.clock += timedelta(seconds=7)
        doc = self.docs[(TICKETS, self.created[index % len(self.created)])]
        with contextlib.suppress(domain.TicketError):  # not the owner, or not waiting: nothing happens
            self._apply(cancel_ticket(doc, by=by, by_ops=False, now=self.clock))


LEARNERS = ["ann", "bob", "cat", "dan"]
SKILLS = ["machine-learning", "data-engineering"]
LEVEL = st.sampled_from([1.0, 1.5, 2.0, 2.25, 3.0, 4.0])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.sampled_from(LEARNERS), st.sampled_from(SKILLS)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.sampled_from(LEARNERS)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    levels=st.fixed_dictionaries({learner: LEVEL for learner in LEARNERS}),
    ops=OPS,
    max_gap=st.sampled_from([None, 1.0]),
)
def test_no_ticket_in_two_matches_and_no_self_pairing(
    levels: dict[str, float], ops: list[Any], max_gap: float | None
) -> None:
    queue = Queue(levels, max_gap)
    for op in ops:
        if op[0] == "request":
            queue.request(op[1], op[2])
        else:
            queue.cancel(op[1], op[2])

    tickets = {key: doc for (collection, key), doc in queue.docs.items() if collection == TICKETS}
    matches = [p for p in queue.emitted if isinstance(p, MatchFound)]
    in_matches = [t.ticket_id for m in matches for t in m.tickets]
    assert len(in_matches) == len(set(in_matches)), "a ticket was assigned twice"
    for m in matches:
        first, second = m.tickets
        assert first.learner_id != second.learner_id, "a learner was paired with themself"
        assert max_gap is None or m.level_gap <= max_gap
        for t in m.tickets:
            doc = tickets[t.ticket_id]
            assert doc["status"] == "matched" and doc["session_id"] == m.match_id == doc["match_id"]
            assert doc["skill"] == m.skill
        assert tickets[first.ticket_id]["partner_id"] == second.learner_id
    cancelled = {p.ticket_id for p in queue.emitted if isinstance(p, MatchCancelled)}
    assert cancelled.isdisjoint(in_matches)
    assert all(tickets[t]["status"] == "cancelled" for t in cancelled)

    waiting_index = {doc["ticket_id"] for (c, _), doc in queue.docs.items() if c == WAITING}
    assert waiting_index == {t for t, doc in tickets.items() if doc["status"] == "waiting"}
    open_index = {doc["ticket_id"] for (c, _), doc in queue.docs.items() if c == OPEN}
    assert open_index == waiting_index
    waiting = [tickets[t] for t in waiting_index]
    for a in waiting:
        for b in waiting:
            if a is not b and a["skill"] == b["skill"]:
                assert a["learner_id"] != b["learner_id"], "two open tickets for one learner and skill"
                assert max_gap is not None, "two pairable tickets left waiting"
                assert abs(a["level"] - b["level"]) > max_gap, "two pairable tickets left waiting"
