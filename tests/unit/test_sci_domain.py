"""The SCI score (pure): the four parts, their bounds, the tiers and the explanations."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci import domain as d
from services.sci.domain import Corrected, EvidenceItem, count_no_shows, explain, score, specialty_depth

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def item(
    n: int,
    *,
    mean: float = 4.0,
    session: str | None = None,
    rater: str | None = None,
    specialty: str | None = None,
    at: datetime = T0,
) -> EvidenceItem:
    return EvidenceItem(
        evidence_id=f"e{n}",
        session_id=session or f"s{n}",
        rater_id=rater or f"r{n}",
        mean=mean,
        specialty=specialty,
        occurred_at=at,
    )


items_strategy = st.lists(
    st.builds(
        EvidenceItem,
        evidence_id=st.uuids().map(str),
        session_id=st.sampled_from([f"s{i}" for i in range(15)]),
        rater_id=st.sampled_from([f"r{i}" for i in range(8)]),
        mean=st.floats(min_value=1, max_value=5),
        specialty=st.sampled_from([None, "nlp", "tabular"]),
        occurred_at=st.integers(0, 400 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m)),
    ),
    max_size=30,
    unique_by=lambda i: i.evidence_id,
)


def test_no_evidence_scores_zero_and_tier_1() -> None:
    s = score([], 3, T0)
    assert (s.sci, s.tier, s.sessions) == (0.0, d.TIER_CLAIMED, 0)
    assert s.parts() == {"practice": 0.0, "proof": 0.0, "reliability": 0.0, "freshness": 0.0}


def test_one_top_rated_session_by_the_formulas() -> None:
    s = score([item(1, mean=5.0)], 0, T0)
    assert s.practice == round(25 * (1 - math.exp(-1 / 6)), 2) == 3.84
    assert s.proof == round(40 * (3 * 0.5 + 1.0) / 4, 2) == 25.0
    # raters 1 - e^(-1/3), agreement 0.5 with one rating, show-up 1
    assert s.reliability == round(20 * (0.4 * (1 - math.exp(-1 / 3)) + 0.4 * 0.5 + 0.2 * 1.0), 2)
    assert s.freshness == 15.0
    assert s.sci == round(s.practice + s.proof + s.reliability + s.freshness, 2)
    assert s.tier == d.TIER_PRACTICING


def test_proof_is_a_mean_shrunk_toward_the_middle() -> None:
    items = [item(i, mean=1.0 + 4 * v) for i, v in enumerate([1.0, 0.5, 0.75])]
    assert score(items, 0, T0).proof == round(40 * (1.5 + 2.25) / 6, 2)


def test_proof_prior_is_a_parameter_and_proof_stays_in_range() -> None:
    items = [item(i, mean=1.0 + 4 * v) for i, v in enumerate([1.0, 0.5, 0.75])]
    prior = d.Prior(mean=0.25, weight=1.5)
    assert score(items, 0, T0, prior=prior).proof == round(40 * (0.375 + 2.25) / 4.5, 2)
    assert score(items, 0, T0, prior=d.DEFAULT_PRIOR) == score(items, 0, T0)

    def beyond(_: d.EvidenceItem) -> d.Corrected:  # a calibrated value may lie past the end of the scale
        return d.Corrected(value=1.4, weight=10.0)

    assert score(items, 0, T0, correct=beyond).proof == 40.0


def test_agreement_falls_with_spread() -> None:
    same = [item(i, mean=4.0) for i in range(4)]
    split = [item(i, mean=1.0 if i % 2 else 5.0) for i in range(4)]
    assert d.agreement(d.summarize(same, 0)) == 1.0
    assert d.agreement(d.summarize(split, 0)) == 0.0  # sd 0.5 >= 0.25
    assert score(same, 0, T0).reliability > score(split, 0, T0).reliability


def test_no_shows_lower_reliability_and_attended_sessions_are_not_no_shows() -> None:
    items = [item(i) for i in range(3)]
    assert score(items, 2, T0).reliability < score(items, 0, T0).reliability
    assert count_no_shows({"s0", "x1", "x2"}, items) == 2


def test_freshness_decays_with_time_since_last_evidence() -> None:
    items = [item(1, at=T0), item(2, at=T0 + timedelta(days=10))]
    assert score(items, 0, T0 + timedelta(days=70)).freshness == round(15 / math.e, 2)
    assert score(items, 0, T0).freshness == 15.0  # an as-of before the evidence does not go above max


def test_tiers_need_score_sessions_and_raters() -> None:
    assert d.tier_for(49.99, 20, 20) == d.TIER_PRACTICING
    assert d.tier_for(50.0, 5, 3) == d.TIER_PRACTITIONER
    assert d.tier_for(80.0, 5, 2) == d.TIER_PRACTICING
    assert d.tier_for(70.0, 10, 5) == d.TIER_PEER_ENDORSED
    assert d.tier_for(70.0, 9, 5) == d.TIER_PRACTITIONER
    strong = [item(i, mean=5.0, rater=f"r{i % 6}") for i in range(12)]
    assert score(strong, 0, T0).tier == d.TIER_PEER_ENDORSED


def test_the_calibration_seam_changes_proof_only_through_the_corrector() -> None:
    items = [item(1, mean=5.0, rater="lenient"), item(2, mean=3.0, rater="fair")]

    def discount_lenient(i: EvidenceItem) -> Corrected:
        base = d.uncalibrated(i)
        return Corrected(value=base.value - 0.25, weight=0.5) if i.rater_id == "lenient" else base

    plain = score(items, 0, T0)
    calibrated = score(items, 0, T0, correct=discount_lenient)
    assert calibrated.proof == round(40 * (1.5 + 0.5 * 0.75 + 0.5) / 4.5, 2)
    assert calibrated.proof < plain.proof and calibrated.practice == plain.practice


def test_explanations_read_like_the_brief() -> None:
    items = [item(i, rater=f"r{i % 3}", at=T0 + timedelta(days=i)) for i in range(9)]
    result, parts = explain(items, 1, T0 + timedelta(days=20))
    assert parts["practice"].reason == (
        f"Practice {result.practice:.1f}/25: 9 sessions; the next session adds about 0.9 points"
    )
    assert parts["practice"].max == 25 and parts["proof"].max == 40
    assert "4.0/5 on average over 9 ratings" in parts["proof"].reason
    assert "3 distinct raters" in parts["reliability"].reason
    assert "showed up to 9 of 10 sessions" in parts["reliability"].reason
    assert "last evidence 12 days ago" in parts["freshness"].reason
    assert [p.value for p in parts.values()] == list(result.parts().values())
    _, none = explain([], 0, T0)
    assert none["freshness"].reason == "Freshness 0.0/15: no evidence yet"
    _, one = explain([item(1)], 0, T0)
    assert (
        "one rating so far" in one["reliability"].reason and "last evidence today" in one["freshness"].reason
    )


def test_specialty_depth_counts_sessions_and_means() -> None:
    items = [
        item(1, mean=5.0, specialty="nlp"),
        item(2, mean=3.0, specialty="nlp", session="s1"),
        item(3, mean=2.0, specialty="tabular"),
        item(4, mean=4.0),
    ]
    depth = specialty_depth(items)
    assert list(depth) == ["nlp", "tabular"]
    assert depth["nlp"].sessions == 1 and depth["nlp"].mean_rating == 0.75
    assert depth["tabular"].sessions == 1 and depth["tabular"].mean_rating == 0.25


def test_from_event_takes_the_mean_rubric_score() -> None:
    from shared.events.payloads import EvidenceRecorded

    e = EvidenceRecorded(
        evidence_id="e",
        learner_id="ann",
        skill="machine-learning",
        session_id="s",
        rater_id="bob",
        scores={"a": 4, "b": 3},
        occurred_at=T0,
    )
    got = EvidenceItem.from_event(e)
    assert got.mean == 3.5 and EvidenceItem.from_doc("e", got.to_doc()) == got


@settings(max_examples=150)
@given(items_strategy, st.integers(0, 10), st.integers(0, 500))
def test_parts_stay_in_bounds_and_add_up(items: list[EvidenceItem], no_shows: int, days: int) -> None:
    s = score(items, no_shows, T0 + timedelta(days=days))
    for name, value in s.parts().items():
        assert 0.0 <= value <= d.PART_MAX[name]
        assert round(value, 2) == value
    assert 0.0 <= s.sci <= 100.0
    assert s.sci == round(sum(s.parts().values()), 2)
    assert s.tier == d.tier_for(s.sci, s.sessions, s.distinct_raters)
    assert (s.tier == d.TIER_CLAIMED) == (not items)


@settings(max_examples=100)
@given(items_strategy, st.integers(0, 10))
def test_the_score_does_not_depend_on_the_order_of_items(items: list[EvidenceItem], no_shows: int) -> None:
    at = T0 + timedelta(days=30)
    assert score(items, no_shows, at) == score(list(reversed(items)), no_shows, at)


@given(st.integers(0, 200))
def test_practice_is_monotone_in_sessions(n: int) -> None:
    assert d.practice_points(n + 1) > d.practice_points(n)
    assert d.practice_points(n) < d.PRACTICE_MAX


@settings(max_examples=100)
@given(items_strategy.filter(bool), st.integers(0, 400), st.integers(1, 400))
def test_freshness_falls_as_as_of_moves_on(items: list[EvidenceItem], days: int, later: int) -> None:
    last = max(i.occurred_at for i in items)
    early = score(items, 0, last + timedelta(days=days))
    late = score(items, 0, last + timedelta(days=days + later))
    assert late.freshness <= early.freshness
    assert d.freshness_points(last, last + timedelta(days=days + later)) < d.freshness_points(
        last, last + timedelta(days=days)
    )
    assert (late.practice, late.proof, late.reliability) == (early.practice, early.proof, early.reliability)
