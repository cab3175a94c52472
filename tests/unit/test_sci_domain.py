"""The SCI score (pure): facts, the four parts, their bounds, the tiers, corrections and explanations."""

from __future__ import annotations

import json
import math
import statistics
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci import domain as d
from services.sci.domain import (
    UNCALIBRATED,
    Correction,
    EvidenceItem,
    Facts,
    Prior,
    Tally,
    explain,
    facts_of,
    score,
    specialty_depth,
    summarize,
)

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


def scored(
    items: list[EvidenceItem],
    no_shows: tuple[str, ...] = (),
    at: datetime = T0,
    correction: Correction = UNCALIBRATED,
) -> d.Score:
    return score(facts_of(items, no_shows), at, correction)


ANY_MEAN = st.floats(min_value=1, max_value=5)


def items_strategy(means: st.SearchStrategy[float] = ANY_MEAN) -> st.SearchStrategy[list[EvidenceItem]]:
    return st.lists(
        st.builds(
            EvidenceItem,
            evidence_id=st.uuids().map(str),
            session_id=st.sampled_from([f"s{i}" for i in range(15)]),
            rater_id=st.sampled_from([f"r{i}" for i in range(8)]),
            mean=means,
            specialty=st.sampled_from([None, "nlp", "tabular"]),
            occurred_at=st.integers(0, 400 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m)),
        ),
        max_size=30,
        unique_by=lambda i: i.evidence_id,
    )


no_show_strategy = st.lists(st.sampled_from([f"s{i}" for i in range(20)]), max_size=8)
# Means on the micro-point grid (what facts keep exactly), e.g. any mean of integer rubric scores.
micro_means = st.integers(d.MICRO, 5 * d.MICRO).map(lambda m: m / d.MICRO)
corrections = st.builds(
    Correction,
    bias=st.dictionaries(st.sampled_from([f"r{i}" for i in range(8)]), st.floats(-2.0, 2.0), max_size=8),
    weight=st.dictionaries(st.sampled_from([f"r{i}" for i in range(8)]), st.floats(0.01, 30.0), max_size=8),
    default_weight=st.floats(0.01, 30.0),
    prior=st.builds(Prior, mean=st.floats(0.0, 1.0), weight=st.floats(0.5, 10.0)),
    ratings=st.integers(0, 1000),
)


# Facts


def test_facts_keep_counts_exact_sums_and_the_newest_time() -> None:
    items = [
        item(1, mean=4.2, rater="bob", session="s1", at=T0),
        item(2, mean=3.0, rater="bob", session="s1", at=T0 + timedelta(days=2)),
        item(3, mean=5.0, rater="cy", session="s2", at=T0 + timedelta(days=1)),
    ]
    facts = facts_of(items, ["s1", "s9", "s9"])
    assert facts == Facts(
        sessions=2,
        no_shows=1,  # s1 produced evidence after all; s9 counts once
        raters={
            "bob": Tally(2, 7_200_000, 4_200_000**2 + 3_000_000**2),
            "cy": Tally(1, 5_000_000, 5_000_000**2),
        },
        last_evidence_at=T0 + timedelta(days=2),
    )
    assert facts.ratings == 3 and list(facts.raters) == ["bob", "cy"]
    assert facts_of([]) == Facts()
    assert d.to_micro(4.6) == 4_600_000 and d.to_micro(1 + 1 / 3) == 1_333_333


def test_tally_adds_in_micro_points_and_round_trips() -> None:
    tally = Tally().add(4.5).add(2.0)
    assert tally == Tally(2, 6_500_000, 4_500_000**2 + 2_000_000**2)
    assert Tally.from_doc(json.loads(json.dumps(tally.to_doc()))) == tally


@settings(max_examples=100)
@given(items=items_strategy(), no_shows=no_show_strategy, data=st.data())
def test_facts_do_not_depend_on_order_or_duplicates(
    items: list[EvidenceItem], no_shows: list[str], data: st.DataObject
) -> None:
    again = data.draw(st.permutations(items), label="order")
    if items:
        again += data.draw(st.lists(st.sampled_from(items), max_size=10), label="duplicates")
    shows = data.draw(st.permutations(no_shows), label="no-show order") + no_shows[:2]
    facts = facts_of(items, no_shows)
    assert facts_of(again, shows) == facts
    at = T0 + timedelta(days=data.draw(st.integers(0, 500), label="days"))
    assert score(facts_of(again, shows), at) == score(facts, at)


@settings(max_examples=100)
@given(items_strategy(micro_means))
def test_summarize_matches_a_direct_float_computation(items: list[EvidenceItem]) -> None:
    stats = summarize(facts_of(items), UNCALIBRATED)
    means = [i.mean for i in items]
    values = [(m - 1.0) / 4.0 for m in means]
    assert stats.ratings == len(items) and stats.weight == len(items)
    assert stats.sessions == len({i.session_id for i in items})
    assert stats.distinct_raters == len({i.rater_id for i in items})
    assert math.isclose(stats.mean_rating, statistics.fmean(means) if means else 0.0, abs_tol=1e-9)
    assert math.isclose(stats.weighted_sum, math.fsum(values), abs_tol=1e-9)
    variance = statistics.pvariance(values) if values else 0.0
    assert math.isclose(stats.spread**2, variance, abs_tol=1e-9)
    assert math.isclose(stats.spread, math.sqrt(variance), abs_tol=1e-7)
    assert (stats.prior_mean, stats.prior_weight) == (d.PROOF_PRIOR, d.PROOF_PRIOR_WEIGHT)


def test_identical_ratings_have_no_spread() -> None:
    """The within-rater variance is exact (integers), so equal ratings spread by exactly 0."""
    stats = summarize(facts_of([item(i, mean=4.6, rater=f"r{i % 3}") for i in range(3)]))
    assert stats.spread == 0.0 and d.agreement(stats) == 1.0


# The four parts


def test_no_evidence_scores_zero_and_tier_1() -> None:
    s = score(Facts(), T0)
    assert (s.sci, s.tier, s.sessions, s.distinct_raters) == (0.0, d.TIER_CLAIMED, 0, 0)
    assert s.parts() == {"practice": 0.0, "proof": 0.0, "reliability": 0.0, "freshness": 0.0}
    # no-shows alone: nothing rated, so nothing earned
    assert scored([], ("s1", "s2")).parts() == s.parts()


def test_one_top_rated_session_by_the_formulas() -> None:
    s = scored([item(1, mean=5.0)])
    assert s.practice == round(25 * (1 - math.exp(-1 / 6)), 2) == 3.84
    assert s.proof == round(40 * (3 * 0.5 + 1.0) / 4, 2) == 25.0
    # raters 1 - e^(-1/3), agreement 0.5 with one rating, show-up 1
    assert s.reliability == round(20 * (0.4 * (1 - math.exp(-1 / 3)) + 0.4 * 0.5 + 0.2 * 1.0), 2)
    assert s.freshness == 15.0
    assert s.sci == round(s.practice + s.proof + s.reliability + s.freshness, 2)
    assert s.tier == d.TIER_PRACTICING and s.as_of == T0


def test_proof_is_a_mean_shrunk_toward_the_middle() -> None:
    items = [item(i, mean=1.0 + 4 * v) for i, v in enumerate([1.0, 0.5, 0.75])]
    assert scored(items).proof == round(40 * (1.5 + 2.25) / 6, 2)


def test_proof_prior_is_a_parameter_and_proof_stays_in_range() -> None:
    items = [item(i, mean=m) for i, m in enumerate([5.0, 3.0, 4.0])]  # values 1, 0.5, 0.75
    prior = Correction(prior=Prior(mean=0.25, weight=1.5))
    assert scored(items, correction=prior).proof == round(40 * (0.375 + 2.25) / 4.5, 2)
    assert scored(items, correction=Correction(prior=d.DEFAULT_PRIOR)) == scored(items)
    raters = [i.rater_id for i in items]
    # A corrected value is not clipped per rating: (5 - 1 + 2) / 4 = 1.5 lies past the scale ...
    lenient = Correction(bias=dict.fromkeys(raters, -2.0), weight=dict.fromkeys(raters, 10.0))
    assert summarize(facts_of(items), lenient).weighted_sum == 10.0 * (1.5 + 1.0 + 1.25)
    assert scored(items, correction=lenient).proof == 40.0  # ... and Proof is held to 0..40 at the end
    harsh = Correction(bias=dict.fromkeys(raters, 4.0), weight=dict.fromkeys(raters, 10.0))
    assert summarize(facts_of(items), harsh).weighted_sum == 10.0 * (0.0 - 0.5 - 0.25)
    assert scored(items, correction=harsh).proof == 0.0


def test_agreement_falls_with_spread() -> None:
    same = [item(i, mean=4.0) for i in range(4)]
    split = [item(i, mean=1.0 if i % 2 else 5.0) for i in range(4)]
    assert d.agreement(summarize(facts_of(same))) == 1.0
    assert summarize(facts_of(split)).spread == 0.5
    assert d.agreement(summarize(facts_of(split))) == 0.0  # sd 0.5 >= 0.25
    assert d.agreement(summarize(facts_of([item(1)]))) == d.SINGLE_ITEM_AGREEMENT
    assert d.agreement(summarize(Facts())) == 0.0
    assert scored(same).reliability > scored(split).reliability


def test_no_shows_lower_reliability_and_attended_sessions_are_not_no_shows() -> None:
    items = [item(i) for i in range(3)]
    assert scored(items, ("x1", "x2")).reliability < scored(items).reliability
    assert facts_of(items, {"s0", "x1", "x2"}).no_shows == 2
    stats = summarize(facts_of(items, ("x1",)))
    assert d.show_up(stats) == 3 / 4


def test_freshness_decays_with_time_since_last_evidence() -> None:
    items = [item(1, at=T0), item(2, at=T0 + timedelta(days=10))]
    assert scored(items, at=T0 + timedelta(days=70)).freshness == round(15 / math.e, 2)
    assert scored(items, at=T0).freshness == 15.0  # an as-of before the evidence does not go above max
    assert d.freshness_points(None, T0) == 0.0


def breadth(sessions: int, raters: int, senior: int = 0) -> d.Stats:
    return d.Stats(
        sessions=sessions,
        distinct_raters=raters,
        ratings=sessions,
        weight=float(sessions),
        weighted_sum=0.0,
        mean_rating=0.0,
        spread=0.0,
        no_shows=0,
        last_evidence_at=None,
        senior_raters=senior,
    )


def test_tiers_need_score_quality_and_breadth() -> None:
    assert d.tier_for(99.0, 40.0, breadth(0, 0)) == d.TIER_CLAIMED
    assert d.tier_for(49.99, 40.0, breadth(20, 20, 20)) == d.TIER_PRACTICING
    assert d.tier_for(50.0, 20.0, breadth(5, 3)) == d.TIER_PRACTITIONER
    assert d.tier_for(60.0, 19.99, breadth(5, 3)) == d.TIER_PRACTICING  # practice alone is not proof
    assert d.tier_for(50.0, 20.0, breadth(4, 3)) == d.TIER_PRACTICING
    assert d.tier_for(80.0, 30.0, breadth(5, 2)) == d.TIER_PRACTICING
    assert d.tier_for(70.0, 28.0, breadth(10, 5, 2)) == d.TIER_PEER_ENDORSED
    assert d.tier_for(69.99, 28.0, breadth(10, 5, 2)) == d.TIER_PRACTITIONER
    assert d.tier_for(90.0, 27.99, breadth(10, 5, 2)) == d.TIER_PRACTITIONER
    assert d.tier_for(70.0, 28.0, breadth(9, 5, 2)) == d.TIER_PRACTITIONER
    assert d.tier_for(70.0, 28.0, breadth(10, 4, 2)) == d.TIER_PRACTITIONER
    assert d.tier_for(70.0, 28.0, breadth(10, 5, 1)) == d.TIER_PRACTITIONER  # endorsed by proven peers only


def test_senior_raters_are_the_raters_the_correction_knows_at_tier_3_or_4() -> None:
    items = [item(i, mean=5.0, rater=f"r{i % 6}") for i in range(12)]
    assert d.summarize(facts_of(items)).senior_raters == 0
    knows = Correction(senior=frozenset({"r0", "r1", "nobody"}))
    assert d.summarize(facts_of(items), knows).senior_raters == 2
    assert scored(items).tier == d.TIER_PRACTITIONER  # no proven peer among the raters yet
    assert score(facts_of(items), T0, knows).tier == d.TIER_PEER_ENDORSED


def test_seniors_are_the_learners_at_tier_3_or_4() -> None:
    strong = facts_of([item(i, mean=5.0, rater=f"r{i % 6}") for i in range(12)])
    weak = facts_of([item(i, mean=2.0, rater=f"r{i % 6}") for i in range(12)])
    found = d.seniors([("ann", strong, T0), ("bob", weak, T0), ("cy", Facts(), T0)], UNCALIBRATED)
    assert found == frozenset({"ann"})


def test_the_next_tier_says_what_is_missing() -> None:
    assert explain(Facts(), T0).next_tier == "Practicing starts with your first rated session: book one"
    two = explain(facts_of([item(1), item(2)]), T0).next_tier
    assert two is not None and two.startswith("Practitioner needs ")
    assert "5 sessions (you have 2)" in two and "3 distinct raters (you have 2)" in two
    strong = facts_of([item(i, mean=5.0, rater=f"r{i % 6}") for i in range(12)])
    hint = explain(strong, T0).next_tier
    assert hint == "Peer-endorsed needs 2 raters who are Practitioners or above (you have 0)"
    assert explain(strong, T0, Correction(senior=frozenset({"r0", "r1"}))).next_tier is None


def test_the_tier_does_not_lapse_as_freshness_decays() -> None:
    # a calibrated skill whose raters all weigh much: the band is narrow enough to earn the top tier
    means = [5.0 if i % 4 == 0 else 4.0 for i in range(12)]
    items = [item(i, mean=m, rater=f"r{i % 6}", at=T0 + timedelta(hours=i)) for i, m in enumerate(means)]
    facts = facts_of(items)
    earned_at = facts.last_evidence_at
    assert earned_at is not None
    proven = Correction(
        default_weight=30.0, prior=Prior(0.5, 1.5), ratings=10_000, senior=frozenset({"r0", "r1"})
    )
    now = score(facts, earned_at, proven)
    later = score(facts, earned_at + timedelta(days=300), proven, earned_at=earned_at)
    assert now.tier == d.TIER_PEER_ENDORSED
    assert later.freshness < now.freshness and later.sci < now.sci < 100
    assert later.sci < d.PEER_ENDORSED.min_sci  # low enough to lose the tier if it were recomputed ...
    assert score(facts, earned_at + timedelta(days=300), proven).tier == d.TIER_PRACTITIONER
    assert later.tier == now.tier  # ... but it was earned, and stays
    assert later.as_of == earned_at + timedelta(days=300)


def test_a_correction_changes_proof_and_agreement_not_practice_or_freshness() -> None:
    items = [item(1, mean=5.0, rater="lenient"), item(2, mean=3.0, rater="fair")]
    correction = Correction(bias={"lenient": 1.0}, weight={"lenient": 0.5}, ratings=2)
    plain = scored(items)
    calibrated = scored(items, correction=correction)
    # lenient: (5 - 1 - 1) / 4 = 0.75 at weight 0.5; fair: (3 - 1) / 4 = 0.5 at the default weight 1
    assert calibrated.proof == round(40 * (1.5 + 0.5 * 0.75 + 0.5) / 4.5, 2)
    assert calibrated.proof < plain.proof
    # the spread is of the corrected values: sd(0.75, 0.5) = 0.125 against sd(1, 0.5) = 0.25
    raters = 0.4 * (1 - math.exp(-2 / 3))
    assert calibrated.reliability == round(20 * (raters + 0.4 * 0.5 + 0.2), 2)
    assert plain.reliability == round(20 * (raters + 0.4 * 0.0 + 0.2), 2)
    assert (calibrated.practice, calibrated.freshness) == (plain.practice, plain.freshness)
    assert correction.bias_of("fair") == 0.0 and correction.weight_of("fair") == 1.0


def test_correction_round_trips_through_a_document() -> None:
    correction = Correction(
        bias={"bob": 0.25, "cy": -0.5},
        weight={"bob": 2.0, "cy": 0.125},
        default_weight=3.5,
        prior=Prior(mean=0.55, weight=1.5),
        ratings=42,
        version="pg1-link-v3",
        digest="0123456789abcdef",
    )
    doc = json.loads(json.dumps(correction.to_doc()))
    assert Correction.from_doc(doc) == correction
    assert Correction.from_doc(json.loads(json.dumps(UNCALIBRATED.to_doc()))) == UNCALIBRATED
    assert Correction.from_doc(None) is UNCALIBRATED


# Explanations, specialties, events


def test_explanations_read_like_the_brief() -> None:
    items = [item(i, rater=f"r{i % 3}", at=T0 + timedelta(days=i)) for i in range(9)]
    explained = explain(facts_of(items, ("x1",)), T0 + timedelta(days=20))
    result, parts = explained.score, explained.parts
    assert parts["practice"].reason == (
        f"Practice {result.practice:.1f}/25: 9 sessions; the next session adds about 0.9 points"
    )
    assert parts["practice"].max == 25 and parts["proof"].max == 40
    assert parts["reliability"].max == 20 and parts["freshness"].max == 15
    assert "4.0/5 on average over 9 ratings" in parts["proof"].reason
    assert "corrected for" not in parts["proof"].reason  # uncalibrated
    # the prior is 3 of 12 pseudo-ratings (>= 20 %): say so
    assert "pulled toward the typical rating (3.0/5)" in parts["proof"].reason
    assert "3 distinct raters" in parts["reliability"].reason
    assert "your ratings agree closely" in parts["reliability"].reason
    assert "showed up to 9 of 10 sessions" in parts["reliability"].reason
    assert "last evidence 12 days ago" in parts["freshness"].reason
    assert "halves about every 42 days" in parts["freshness"].reason
    assert [p.value for p in parts.values()] == list(result.parts().values())
    none = explain(Facts(), T0).parts
    assert none["freshness"].reason == "Freshness 0.0/15: no evidence yet"
    assert none["proof"].reason == "Proof 0.0/40: no peer ratings yet"
    assert none["practice"].reason.startswith("Practice 0.0/25: no rated sessions yet; your first one adds")
    one = explain(facts_of([item(1)]), T0).parts
    assert (
        "one rating so far" in one["reliability"].reason and "last evidence today" in one["freshness"].reason
    )


def test_explanations_name_the_calibration_and_drop_the_prior_once_ratings_dominate() -> None:
    items = [item(i, mean=1.0 if i % 2 else 5.0, rater=f"r{i % 4}") for i in range(20)]
    calibrated = Correction(ratings=500, prior=Prior(0.5, 1.5))
    explained = explain(facts_of(items), T0, calibrated, earned_at=T0)
    result, parts = explained.score, explained.parts
    assert "corrected for how lenient or harsh each rater is" in parts["proof"].reason
    assert "pulled toward" not in parts["proof"].reason  # 1.5 of 21.5 pseudo-ratings
    assert "your ratings vary a lot" in parts["reliability"].reason
    assert result == score(facts_of(items), T0, calibrated, earned_at=T0)


def test_specialty_depth_counts_sessions_and_weighted_corrected_means() -> None:
    items = [
        item(1, mean=5.0, specialty="nlp", rater="bob"),
        item(2, mean=3.0, specialty="nlp", session="s1", rater="cy"),
        item(3, mean=2.0, specialty="tabular", rater="dee"),
        item(4, mean=4.0),
        item(5, mean=4.0, specialty="vision", rater="cy"),
        item(6, mean=4.0, specialty="vision", rater="cy"),
        item(7, mean=5.0, specialty="vision", rater="cy"),
    ]
    depth = specialty_depth(items + items[:2])  # a second copy counts once
    assert list(depth) == ["nlp", "tabular", "vision"]
    assert depth["nlp"] == d.Depth(sessions=1, mean_rating=4.0)
    assert depth["tabular"] == d.Depth(sessions=1, mean_rating=2.0)
    assert depth["vision"] == d.Depth(sessions=3, mean_rating=4.33)  # rounded to 2 decimals
    # weighted mean of (mean - bias); held to 1..5
    correction = Correction(bias={"bob": 1.0, "dee": 3.0}, weight={"bob": 3.0})
    corrected = specialty_depth(items, correction)
    assert corrected["nlp"].mean_rating == (3.0 * 4.0 + 1.0 * 3.0) / 4.0
    assert corrected["tabular"].mean_rating == 1.0  # 2 - 3 = -1, clipped
    assert specialty_depth(items, Correction(bias={"cy": -2.0}))["vision"].mean_rating == 5.0


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


# Properties


@settings(max_examples=150)
@given(items_strategy(), no_show_strategy, st.integers(0, 500), st.integers(0, 500), corrections)
def test_parts_stay_in_bounds_and_add_up(
    items: list[EvidenceItem], no_shows: list[str], days: int, earned_days: int, correction: Correction
) -> None:
    facts = facts_of(items, no_shows)
    at = T0 + timedelta(days=days)
    for scoring in (d.UNCALIBRATED, correction):
        s = score(facts, at, scoring)
        for name, value in s.parts().items():
            assert 0.0 <= value <= d.PART_MAX[name]
            assert round(value, 2) == value
        assert 0.0 <= s.sci <= 100.0
        assert s.sci == round(sum(s.parts().values()), 2)
        # the tier is earned at the low end of the band; there is a band exactly when there are ratings
        low_proof = round(s.proof - s.band, 2)
        assert s.tier == d.tier_for(round(s.sci - s.band, 2), low_proof, d.summarize(facts, scoring))
        assert (s.tier == d.TIER_CLAIMED) == (not items)
        assert (s.band > 0) == bool(items) and 0.0 <= s.low <= s.sci <= s.high <= 100.0
    # with earned_at, every figure is the one at as_of except the tier, which is the one at earned_at
    earned_at = T0 + timedelta(days=earned_days)
    kept = score(facts, at, correction, earned_at=earned_at)
    assert kept.parts() == score(facts, at, correction).parts()
    assert kept.tier == score(facts, earned_at, correction).tier


@given(st.integers(0, 200))
def test_practice_is_monotone_in_sessions(n: int) -> None:
    assert d.practice_points(n + 1) > d.practice_points(n)
    assert d.practice_points(n) < d.PRACTICE_MAX


@settings(max_examples=100)
@given(items_strategy().filter(bool), st.integers(0, 400), st.integers(1, 400))
def test_freshness_falls_as_as_of_moves_on(items: list[EvidenceItem], days: int, later: int) -> None:
    facts = facts_of(items)
    last = max(i.occurred_at for i in items)
    assert facts.last_evidence_at == last
    early = score(facts, last + timedelta(days=days), earned_at=last)
    late = score(facts, last + timedelta(days=days + later), earned_at=last)
    assert late.freshness <= early.freshness and late.sci <= early.sci
    assert late.tier == early.tier == score(facts, last).tier
    assert d.freshness_points(last, last + timedelta(days=days + later)) < d.freshness_points(
        last, last + timedelta(days=days)
    )
    assert (late.practice, late.proof, late.reliability) == (early.practice, early.proof, early.reliability)
