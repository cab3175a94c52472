"""Evidence rules: which ratings become evidence, and how items are keyed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.evidence.domain import (
    NotEvidence,
    SessionFacts,
    evidence_from_rating,
    evidence_id_for,
    key_stamp,
    skill_trail_key,
    trail_key,
    trail_prefix,
)
from shared.catalog import get_catalog
from shared.events.payloads import RatingSubmitted

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}
SESSION = SessionFacts(
    skill="machine-learning",
    specialty="nlp",
    format="build",
    participants=("ann", "bob"),
    status="completed",
)


def rating(scores: dict[str, int] | None = None, **changes: str) -> RatingSubmitted:
    fields: dict[str, object] = {
        "rating_id": "r1",
        "session_id": "s1",
        "rater_id": "ann",
        "ratee_id": "bob",
        "skill": "machine-learning",
        "scores": SCORES if scores is None else scores,
        **changes,
    }
    return RatingSubmitted.model_validate(fields)


def test_a_rating_in_a_completed_session_becomes_evidence_about_the_ratee() -> None:
    evidence = evidence_from_rating(SESSION, rating(), T0, get_catalog())
    assert evidence.evidence_id == evidence_id_for("r1")
    assert evidence.learner_id == "bob" and evidence.rater_id == "ann"
    assert (evidence.specialty, evidence.format, evidence.occurred_at) == ("nlp", "build", T0)
    assert evidence.scores == SCORES


@pytest.mark.parametrize(
    ("scores", "reason"),
    [
        ({}, "missing rubric dimensions"),
        ({k: v for k, v in SCORES.items() if k != "deployment"}, "missing rubric dimensions ['deployment']"),
        ({**SCORES, "charisma": 3}, "unknown rubric dimensions ['charisma']"),
    ],
)
def test_scores_must_fit_the_skills_rubric(scores: dict[str, int], reason: str) -> None:
    with pytest.raises(NotEvidence, match="does not fit the catalog") as raised:
        evidence_from_rating(SESSION, rating(scores), T0, get_catalog())
    assert reason in str(raised.value)


def test_the_sessions_skill_and_specialty_must_be_in_the_catalog() -> None:
    unknown_skill = SessionFacts("cooking", None, None, ("ann", "bob"), "completed")
    with pytest.raises(NotEvidence, match="unknown skill 'cooking'"):
        evidence_from_rating(unknown_skill, rating(skill="cooking"), T0, get_catalog())
    unknown_specialty = SessionFacts("machine-learning", "knitting", None, ("ann", "bob"), "completed")
    with pytest.raises(NotEvidence, match="unknown specialty 'knitting'"):
        evidence_from_rating(unknown_specialty, rating(), T0, get_catalog())


@pytest.mark.parametrize(
    ("session", "the_rating", "reason"),
    [
        (None, rating(), "unknown session"),
        (SessionFacts("machine-learning", None, None, ("ann", "bob"), "started"), rating(), "started"),
        (SESSION, rating(rater_id="eve"), "not between the session's participants"),
        (SESSION, rating(ratee_id="ann"), "self-rating"),
        (SESSION, rating(skill="data-engineering"), "names skill data-engineering"),
    ],
)
def test_other_ratings_are_not_evidence(
    session: SessionFacts | None, the_rating: RatingSubmitted, reason: str
) -> None:
    with pytest.raises(NotEvidence, match=reason):
        evidence_from_rating(session, the_rating, T0, get_catalog())


def test_key_stamps_are_utc_and_fixed_width() -> None:
    plus_two = datetime(2026, 11, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert key_stamp(plus_two) == "2026-11-01T10:00:00.000000Z"
    assert key_stamp(datetime(2026, 11, 1, 10, 0)) == "2026-11-01T10:00:00.000000Z"  # naive: taken as UTC
    assert key_stamp(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "0999-01-02T03:04:05.000006Z"


def test_keys_sort_in_time_order_whatever_the_offset() -> None:
    earlier = datetime(2026, 11, 1, 11, 0, tzinfo=timezone(timedelta(hours=-5)))  # 16:00 UTC
    later = datetime(2026, 11, 1, 18, 0, tzinfo=timezone(timedelta(hours=1)))  # 17:00 UTC
    assert trail_key("bob", earlier, "e1") < trail_key("bob", later, "e0")
    assert skill_trail_key("bob", "ml", earlier, "e1") < skill_trail_key("bob", "ml", later, "e0")


def test_trail_keys_start_with_their_prefix() -> None:
    assert trail_key("bob", T0, "e1") == "bob/2026-11-01T10:00:00.000000Z/e1"
    assert trail_key("bob", T0, "e1").startswith(trail_prefix("bob"))
    assert skill_trail_key("bob", "ml", T0, "e1") == "bob/ml/2026-11-01T10:00:00.000000Z/e1"
    assert skill_trail_key("bob", "ml", T0, "e1").startswith(trail_prefix("bob", "ml"))
