"""Every rule of the session lifecycle and of ratings, on the pure domain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.sessions import domain
from services.sessions.document import applied
from services.sessions.domain import SessionError
from shared.events.payloads import (
    ABANDON_REASONS,
    MatchedTicket,
    MatchFound,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionScheduled,
    SessionStarted,
)

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SID = "m-1"
SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}


def match(a: str = "ann", b: str = "bob", match_id: str = SID) -> MatchFound:
    return MatchFound(
        match_id=match_id,
        skill="machine-learning",
        specialty="nlp",
        format="build",
        tickets=(
            MatchedTicket(ticket_id="t-a", learner_id=a, level=2.0),
            MatchedTicket(ticket_id="t-b", learner_id=b, level=2.2),
        ),
        level_gap=0.2,
        waited_ms=1500,
    )


def scheduled() -> dict[str, Any]:
    return domain.schedule(match(), T0, "corr-1").doc


def started() -> dict[str, Any]:
    return domain.start(scheduled(), SID, "ann", T0 + timedelta(minutes=5)).doc


def completed() -> dict[str, Any]:
    return domain.complete(started(), SID, "bob", T0 + timedelta(minutes=35)).doc


def refused(status: int, fn: Any, *args: Any) -> SessionError:
    with pytest.raises(SessionError) as info:
        fn(*args)
    assert info.value.status == status, info.value.detail
    return info.value


# scheduling


def test_schedule_makes_a_scheduled_session_from_the_match() -> None:
    result = domain.schedule(match(), T0, "corr-1")
    doc = result.doc
    assert doc["session_id"] == doc["match_id"] == SID
    assert doc["participants"] == ["ann", "bob"]
    assert (doc["skill"], doc["specialty"], doc["format"]) == ("machine-learning", "nlp", "build")
    assert doc["status"] == "scheduled" and doc["scheduled_at"] == T0.isoformat()
    assert doc["ratings"] == [] and doc["correlation_id"] == "corr-1"
    assert result.event == SessionScheduled(
        session_id=SID,
        match_id=SID,
        skill="machine-learning",
        specialty="nlp",
        format="build",
        participants=("ann", "bob"),
    )


def test_schedule_refuses_a_self_pairing() -> None:
    with pytest.raises(ValueError, match="itself"):
        domain.schedule(match("ann", "ann"), T0)


# start


def test_start_moves_scheduled_to_started() -> None:
    at = T0 + timedelta(minutes=5)
    result = domain.start(scheduled(), SID, "bob", at)
    assert result.doc["status"] == "started" and result.doc["started_at"] == at.isoformat()
    assert result.event == SessionStarted(session_id=SID, started_by="bob")


def test_start_is_idempotent() -> None:
    doc = started()
    result = domain.start(doc, SID, "bob", T0 + timedelta(hours=1))
    assert result.doc == doc and result.event is None


def test_start_unknown_session_is_404() -> None:
    refused(404, domain.start, None, SID, "ann", T0)


def test_start_by_a_third_learner_is_403() -> None:
    refused(403, domain.start, scheduled(), SID, "cat", T0)


@pytest.mark.parametrize(
    "state", [completed, lambda: domain.abandon(scheduled(), SID, "ann", "other", None, T0).doc]
)
def test_start_after_the_end_is_409(state: Any) -> None:
    refused(409, domain.start, state(), SID, "ann", T0)


# complete


def test_complete_records_the_duration_since_start() -> None:
    at = T0 + timedelta(minutes=35, seconds=12)
    result = domain.complete(started(), SID, "bob", at)
    assert result.doc["status"] == "completed" and result.doc["duration_s"] == 30 * 60 + 12
    assert result.event == SessionCompleted(
        session_id=SID, completed_by="bob", duration_s=1812, confirm_by=at + domain.DEFAULT_WINDOW
    )


def test_complete_never_reports_a_negative_duration() -> None:
    result = domain.complete(started(), SID, "bob", T0)  # a clock that went back
    assert result.doc["duration_s"] == 0


def test_complete_a_scheduled_session_is_409() -> None:
    refused(409, domain.complete, scheduled(), SID, "ann", T0)


def test_complete_is_idempotent() -> None:
    doc = completed()
    result = domain.complete(doc, SID, "bob", T0 + timedelta(hours=3))
    assert result.doc == doc and result.event is None


def test_complete_by_a_third_learner_is_403_and_unknown_is_404() -> None:
    refused(403, domain.complete, started(), SID, "cat", T0)
    refused(404, domain.complete, None, SID, "ann", T0)


def test_complete_an_abandoned_session_is_409() -> None:
    doc = domain.abandon(started(), SID, "ann", "other", None, T0).doc
    refused(409, domain.complete, doc, SID, "ann", T0)


# abandon


@pytest.mark.parametrize("state", [scheduled, started])
def test_abandon_from_scheduled_or_started(state: Any) -> None:
    result = domain.abandon(state(), SID, "ann", "partner-absent", "bob", T0)
    assert result.doc["status"] == "abandoned" and result.doc["no_show"] == "bob"
    assert result.event == SessionAbandoned(
        session_id=SID,
        abandoned_by="ann",
        reason="partner-absent",
        no_show="bob",
        contest_by=T0 + domain.DEFAULT_WINDOW,
    )


def test_abandon_without_a_no_show() -> None:
    result = domain.abandon(scheduled(), SID, "bob", "schedule-conflict", None, T0)
    assert result.event == SessionAbandoned(session_id=SID, abandoned_by="bob", reason="schedule-conflict")


def test_an_abandon_reason_is_a_code_and_older_free_text_reads_as_other() -> None:
    """The log keeps no words a participant wrote: a reason logged as free text before codes
    is read as ``other``, so no fold or rebuild puts it into a store again."""
    legacy = SessionAbandoned(
        session_id=SID, abandoned_by="ann", reason="Bob Smith never came", no_show="bob"
    )
    assert legacy.reason == "other"
    doc = applied(scheduled(), legacy, T0)
    assert doc is not None and doc["abandon_reason"] == "other"
    for code in ABANDON_REASONS:
        assert SessionAbandoned(session_id=SID, abandoned_by="ann", reason=code).reason == code


@pytest.mark.parametrize("no_show", ["ann", "cat"])
def test_abandon_no_show_must_be_the_partner(no_show: str) -> None:
    refused(422, domain.abandon, scheduled(), SID, "ann", "other", no_show, T0)


def test_abandon_a_completed_session_is_409() -> None:
    refused(409, domain.abandon, completed(), SID, "ann", "other", None, T0)


def test_abandon_is_idempotent() -> None:
    doc = domain.abandon(scheduled(), SID, "ann", "other", None, T0).doc
    result = domain.abandon(doc, SID, "bob", "other", None, T0)
    assert result.doc == doc and result.event is None


def test_abandon_by_a_third_learner_is_403_and_unknown_is_404() -> None:
    refused(403, domain.abandon, scheduled(), SID, "cat", "other", None, T0)
    refused(404, domain.abandon, None, SID, "ann", "other", None, T0)


# ratings


def test_rate_the_partner_after_completion() -> None:
    result = domain.rate(completed(), SID, "ann", "bob", SCORES, "clear thinking", T0)
    rating_id = domain.rating_id_for(SID, "ann")
    assert result.event == RatingSubmitted(
        rating_id=rating_id,
        session_id=SID,
        rater_id="ann",
        ratee_id="bob",
        skill="machine-learning",
        specialty="nlp",
        scores=SCORES,
        comment=None,  # the comment is kept apart from the log (services/sessions/personal.py)
    )
    assert "clear thinking" not in result.event.model_dump_json() and "clear thinking" not in str(result.doc)
    assert [(r["rater_id"], r["ratee_id"]) for r in result.doc["ratings"]] == [("ann", "bob")]
    assert result.doc["status"] == "completed"


def test_both_participants_may_rate_each_other() -> None:
    doc = domain.rate(completed(), SID, "ann", "bob", SCORES, None, T0).doc
    doc = domain.rate(doc, SID, "bob", "ann", SCORES, None, T0).doc
    assert {(r["rater_id"], r["ratee_id"]) for r in doc["ratings"]} == {("ann", "bob"), ("bob", "ann")}
    assert len({r["rating_id"] for r in doc["ratings"]}) == 2


def test_rating_twice_is_409() -> None:
    doc = domain.rate(completed(), SID, "ann", "bob", SCORES, None, T0).doc
    refused(409, domain.rate, doc, SID, "ann", "bob", SCORES, None, T0)


@pytest.mark.parametrize("state", [scheduled, started])
def test_rating_before_completion_is_409(state: Any) -> None:
    refused(409, domain.rate, state(), SID, "ann", "bob", SCORES, None, T0)


def test_rating_an_abandoned_session_is_409() -> None:
    doc = domain.abandon(started(), SID, "ann", "other", None, T0).doc
    refused(409, domain.rate, doc, SID, "ann", "bob", SCORES, None, T0)


def test_rating_by_a_third_learner_is_403_and_unknown_is_404() -> None:
    refused(403, domain.rate, completed(), SID, "cat", "bob", SCORES, None, T0)
    refused(404, domain.rate, None, SID, "ann", "bob", SCORES, None, T0)


@pytest.mark.parametrize("ratee", ["ann", "cat"])
def test_rating_yourself_or_an_outsider_is_422(ratee: str) -> None:
    refused(422, domain.rate, completed(), SID, "ann", ratee, SCORES, None, T0)


@pytest.mark.parametrize(
    ("scores", "words"),
    [
        ({k: v for k, v in SCORES.items() if k != "deployment"}, "missing"),
        ({**SCORES, "charisma": 3}, "unknown"),
        ({**SCORES, "deployment": 0}, "1..5"),
        ({**SCORES, "deployment": 6}, "1..5"),
        ({}, "missing"),
    ],
)
def test_rating_must_score_exactly_the_rubric_within_1_to_5(scores: dict[str, int], words: str) -> None:
    error = refused(422, domain.rate, completed(), SID, "ann", "bob", scores, None, T0)
    assert words in error.detail


def test_rating_comment_too_long_is_422() -> None:
    refused(422, domain.rate, completed(), SID, "ann", "bob", SCORES, "x" * 2001, T0)


def test_rating_id_is_deterministic_per_rater_and_session() -> None:
    assert domain.rating_id_for("s", "ann") == domain.rating_id_for("s", "ann")
    assert domain.rating_id_for("s", "ann") != domain.rating_id_for("s", "bob")
