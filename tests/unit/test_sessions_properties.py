"""Property tests: no sequence of commands (and sweeps) breaks the session invariants; above
all, no participant alone makes a session count or a no-show cost the other."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sessions import domain
from services.sessions.domain import TERMINAL, SessionError
from shared.events.payloads import (
    MatchedTicket,
    MatchFound,
    NoShowContested,
    NoShowUpheld,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
    SessionStarted,
)

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SID = "m-prop"
SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}
LEARNERS = ("ann", "bob", "cat")

score_sets = st.sampled_from(
    [SCORES, {**SCORES, "deployment": 9}, {k: 3 for k in list(SCORES)[:4]}, {**SCORES, "x": 1}]
)
commands = st.one_of(
    st.tuples(st.just("start"), st.sampled_from(LEARNERS)),
    st.tuples(st.just("complete"), st.sampled_from(LEARNERS)),
    st.tuples(st.just("confirm"), st.sampled_from(LEARNERS)),
    st.tuples(st.just("dispute"), st.sampled_from(LEARNERS)),
    st.tuples(st.just("abandon"), st.sampled_from(LEARNERS), st.sampled_from((None, *LEARNERS))),
    st.tuples(st.just("contest"), st.sampled_from(LEARNERS)),
    st.tuples(st.just("rate"), st.sampled_from(LEARNERS), st.sampled_from(LEARNERS), score_sets),
    st.tuples(st.just("sweep")),
)
#: The window the properties run with: commands come a minute apart, so windows close mid-sequence.
WINDOW = timedelta(minutes=3)


FOUND = MatchFound(
    match_id=SID,
    skill="machine-learning",
    tickets=(
        MatchedTicket(ticket_id="a", learner_id="ann", level=1.0),
        MatchedTicket(ticket_id="b", learner_id="bob", level=1.5),
    ),
    level_gap=0.5,
    waited_ms=0,
)


def fresh() -> dict[str, Any]:
    return domain.schedule(FOUND, T0).doc


def run(doc: dict[str, Any], command: tuple[Any, ...], now: datetime) -> domain.Transition:
    match command:
        case ("start", who):
            return domain.start(doc, SID, who, now)
        case ("complete", who):
            return domain.complete(doc, SID, who, now, WINDOW)
        case ("confirm", who):
            return domain.confirm(doc, SID, who, now, WINDOW)
        case ("dispute", who):
            return domain.dispute(doc, SID, who, "did-not-happen", now)
        case ("abandon", who, no_show):
            return domain.abandon(doc, SID, who, "other", no_show, now, WINDOW)
        case ("contest", who):
            return domain.contest(doc, SID, who, "was-present", now)
        case ("rate", who, ratee, scores):
            return domain.rate(doc, SID, who, ratee, scores, None, now)
        case ("sweep",):
            settled = domain.settle_due(doc, SID, now)
            assert settled is not None
            return settled
    raise AssertionError(command)


EVENT_STATUS = {
    SessionStarted: "started",
    SessionCompleted: "completed",
    SessionConfirmed: "completed",
    SessionDisputed: "completed",
    SessionAbandoned: "abandoned",
    NoShowContested: "abandoned",
    NoShowUpheld: "abandoned",
}
#: The states each part may move to from each state (pending is where both begin).
MOVES: dict[str | None, set[str | None]] = {
    None: {None, "pending"},
    "pending": {"pending", "confirmed", "disputed", "upheld", "contested"},
    "confirmed": {"confirmed"},
    "disputed": {"disputed"},
    "upheld": {"upheld"},
    "contested": {"contested"},
}


def state(part: dict[str, Any] | None) -> str | None:
    return None if part is None else str(part["state"])


def no_unilateral_harm(before: dict[str, Any], after: dict[str, Any], event: object, now: datetime) -> None:
    """A completion counts only with both participants' word or the partner's silence past the
    deadline; a dispute comes only from the partner, in time; a no-show claim stands only once
    the accused let its window pass, and only the accused contests it, in time."""
    old, new = before["confirmation"], after["confirmation"]
    assert state(new) in MOVES[state(old)]
    if isinstance(event, SessionCompleted):
        assert (
            event.confirm_by == now + WINDOW and state(new) == "pending" and new["by"] == [event.completed_by]
        )
    if isinstance(event, SessionConfirmed):
        assert state(old) == "pending" and state(new) == "confirmed"
        if event.confirmed_by is None:
            assert now >= datetime.fromisoformat(old["deadline"])
        else:
            assert set(new["by"]) == set(after["participants"])  # both said so
    if isinstance(event, SessionDisputed):
        assert event.disputed_by not in old["by"] and event.disputed_by in after["participants"]
        assert now < datetime.fromisoformat(old["deadline"])
    if state(new) == "confirmed" and state(old) != "confirmed":
        assert len(set(new["by"])) == 2 or now >= datetime.fromisoformat(old["deadline"])
    old_claim, claim = before["no_show_claim"], after["no_show_claim"]
    assert state(claim) in MOVES[state(old_claim)]
    if isinstance(event, SessionAbandoned) and event.no_show is not None:
        assert state(claim) == "pending" and event.contest_by == now + WINDOW
    if isinstance(event, NoShowUpheld):
        assert state(old_claim) == "pending" and now >= datetime.fromisoformat(old_claim["deadline"])
        assert event.no_show == old_claim["no_show"] != old_claim["claimed_by"]
    if isinstance(event, NoShowContested):
        assert event.contested_by == old_claim["no_show"]
        assert now < datetime.fromisoformat(old_claim["deadline"])


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=25))
def test_any_command_sequence_keeps_the_invariants(sequence: list[tuple[Any, ...]]) -> None:
    doc = fresh()
    for step, command in enumerate(sequence):
        before = copy.deepcopy(doc)
        now = T0 + timedelta(minutes=step)
        try:
            result = run(doc, command, now)
        except SessionError as exc:
            assert exc.status in (403, 409, 422)
            assert doc == before  # a refusal changes nothing
            continue
        assert doc == before  # commands never mutate their input
        after = result.doc
        # an event exactly when the document changed, and it matches the new status
        assert (result.event is None) == (after == before)
        no_unilateral_harm(before, after, result.event, now)
        if isinstance(result.event, RatingSubmitted):
            assert after["status"] == before["status"] == "completed"
            assert state(before["confirmation"]) in ("pending", "confirmed")  # never once disputed
            assert result.event.rater_id != result.event.ratee_id
            assert {result.event.rater_id, result.event.ratee_id} == set(after["participants"])
        elif result.event is not None:
            assert after["status"] == EVENT_STATUS[type(result.event)]
        # a terminal state never changes
        if before["status"] in TERMINAL:
            assert after["status"] == before["status"]
        # ratings: only when completed, at most one per rater, never by outsiders
        raters = [r["rater_id"] for r in after["ratings"]]
        assert len(raters) == len(set(raters))
        assert set(raters) <= set(after["participants"])
        assert not raters or after["status"] == "completed"
        doc = after


@settings(max_examples=100, deadline=None)
@given(st.lists(commands, max_size=25))
def test_replaying_a_successful_command_changes_nothing_or_is_refused(
    sequence: list[tuple[Any, ...]],
) -> None:
    """A client retrying the same request (a lost response) never causes a second effect."""
    doc = fresh()
    for step, command in enumerate(sequence):
        now = T0 + timedelta(minutes=step)
        try:
            doc = run(doc, command, now).doc
        except SessionError:
            continue
        try:
            again = run(doc, command, now)
        except SessionError as exc:
            assert exc.status == 409  # only a second rating is refused
            assert command[0] == "rate"
            continue
        assert again.event is None and again.doc == doc
