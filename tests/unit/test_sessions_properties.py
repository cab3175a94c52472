"""Property tests: no sequence of commands breaks the session invariants."""

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
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
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
    st.tuples(st.just("abandon"), st.sampled_from(LEARNERS), st.sampled_from((None, *LEARNERS))),
    st.tuples(st.just("rate"), st.sampled_from(LEARNERS), st.sampled_from(LEARNERS), score_sets),
)


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
            return domain.complete(doc, SID, who, now)
        case ("abandon", who, no_show):
            return domain.abandon(doc, SID, who, "because", no_show, now)
        case ("rate", who, ratee, scores):
            return domain.rate(doc, SID, who, ratee, scores, None, now)
    raise AssertionError(command)


EVENT_STATUS = {SessionStarted: "started", SessionCompleted: "completed", SessionAbandoned: "abandoned"}


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
        if isinstance(result.event, RatingSubmitted):
            assert after["status"] == before["status"] == "completed"
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
            continue
        assert again.event is None and again.doc == doc
