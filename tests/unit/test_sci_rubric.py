"""Depth per rubric dimension: the residual tallies, the depth each learner is shown, and the raters'
severity per dimension the calibration finds."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.sci import domain
from services.sci.domain import MICRO, Correction, EvidenceItem, Facts, RubricTally, depth, facts_of
from services.sci.domain.rubric import residuals_micro
from services.sci.rubric_calibration import RubricRating, calibrate_rubric, residuals_of
from sim import evaluation
from sim.inprocess import fold
from sim.population import scenario, simulate

AT = datetime(2026, 3, 1, tzinfo=UTC)
scores_st = st.fixed_dictionaries({d: st.integers(1, 5) for d in ("a", "b", "c")})


@given(scores_st)
def test_a_ratings_residuals_are_exact_and_add_up_to_its_mean_rounding(scores: dict[str, int]) -> None:
    found = residuals_micro(scores)
    assert list(found) == sorted(scores)
    assert all(isinstance(v, int) for v in found.values())
    assert abs(sum(found.values())) <= len(scores)  # the mean's rounding, at most a micro-point each


@given(st.lists(scores_st, min_size=1, max_size=8), st.randoms())
def test_a_tally_is_the_same_in_any_order_and_survives_its_document(
    ratings: list[dict[str, int]], rnd: object
) -> None:
    shuffled = list(ratings)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    one, two = RubricTally(), RubricTally()
    for s in ratings:
        one = one.add(s)
    for s in shuffled:
        two = two.add(s)
    assert one == two and RubricTally.from_doc(one.to_doc()) == one and one.ratings == len(ratings)


def _tallies(per_rater: dict[str, list[dict[str, int]]]) -> dict[str, RubricTally]:
    out: dict[str, RubricTally] = {}
    for rater, given_scores in per_rater.items():
        tally = RubricTally()
        for s in given_scores:
            tally = tally.add(s)
        out[rater] = tally
    return out


def test_no_rubric_scores_no_depth() -> None:
    assert depth({}, {}, {}, 0.5) == ()


def test_a_dimension_many_raters_agree_on_stands_out_more_than_one_rating_says() -> None:
    lean = {"a": 4, "b": 3, "c": 2}  # strong on a, weak on c
    one = depth(_tallies({"r0": [lean]}), {}, {}, 0.5)
    many = depth(_tallies({f"r{i}": [lean] for i in range(8)}), {}, {}, 0.5)
    level = {d.dimension: d.level for d in many}
    assert level["a"] > 3.0 > level["c"] and abs(level["b"] - 3.0) < 1e-9  # overall 0.5 is 3 on 1..5
    assert one[0].level - 3.0 < level["a"] - 3.0  # one rating is shrunk more than eight
    assert [d.ratings for d in many] == [8, 8, 8]
    assert statistics.fmean(level.values()) == 3.0  # deviations average to none: Proof is untouched


def test_a_raters_known_severity_is_taken_out() -> None:
    harsh_on_c = {"a": 4, "b": 4, "c": 2}
    tallies = _tallies({"r0": [harsh_on_c] * 4})
    raw = {d.dimension: d.level for d in depth(tallies, {}, {}, 0.5)}
    severity = {"r0": {"a": 2 / 3, "b": 2 / 3, "c": -4 / 3}}
    corrected = {d.dimension: d.level for d in depth(tallies, {}, severity, 0.5)}
    assert raw["c"] < 2.5 and all(abs(v - 3.0) < 1e-9 for v in corrected.values())


def test_a_rater_who_weighs_nothing_moves_no_depth() -> None:
    tallies = _tallies({"honest": [{"a": 3, "b": 3}] * 3, "noise": [{"a": 5, "b": 1}] * 3})
    level = {d.dimension: d.level for d in depth(tallies, {"honest": 1.0, "noise": 0.0}, {}, 0.5)}
    assert level == {"a": 3.0, "b": 3.0}


def test_facts_keep_the_residuals_whichever_way_they_are_built() -> None:
    items = [
        EvidenceItem(f"e{i}", f"s{i}", f"r{i % 3}", statistics.fmean(s.values()), None, AT, s)
        for i, s in enumerate([{"a": 5, "b": 3}, {"a": 4, "b": 2}, {"a": 5, "b": 4}, {"a": 3, "b": 3}])
    ]
    folded = Facts()
    for item in items:
        folded = folded.with_rating(
            item.rater_id,
            item.mean,
            item.occurred_at,
            new_session=True,
            was_no_show=False,
            scores=item.scores,
        )
    assert folded == facts_of(items)
    assert folded.rubric["r0"] == RubricTally(2, {"a": MICRO, "b": -MICRO})  # (5, 3) and (3, 3)
    assert EvidenceItem.from_doc("e0", items[0].to_doc()) == items[0]


def test_an_item_stored_before_scores_were_kept_has_no_depth_and_the_same_score() -> None:
    with_scores = EvidenceItem("e0", "s0", "r0", 4.0, None, AT, {"a": 5, "b": 3})
    without = replace(with_scores, scores={})
    assert "scores" not in without.to_doc() and facts_of([without]).rubric == {}
    new, old = domain.score(facts_of([with_scores]), AT), domain.score(facts_of([without]), AT)
    assert old.rubric == () and len(new.rubric) == 2 and replace(new, rubric=()) == old


def test_a_correction_keeps_severity_and_the_depth_prior_in_its_document() -> None:
    c = Correction(ratings=10, severity={"r0": {"a": 0.25, "b": -0.25}}, rubric_prior=1.5)
    back = Correction.from_doc(c.to_doc())
    assert back.severity == c.severity and back.rubric_prior == 1.5
    old = {k: v for k, v in c.to_doc().items() if k not in ("severity", "rubric_prior")}
    assert Correction.from_doc(old).severity == {} and Correction.from_doc(old).rubric_prior is None


def _rubric_ratings(name: str, seed: int) -> tuple[list[RubricRating], dict[str, dict[str, float]]]:
    population = simulate(scenario(name, learners=300, sessions_per_learner=8), seed)
    ratings = [
        RubricRating(r.ratee_id, r.rater_id, r.rating_id, residuals_of(r.scores)) for r in population.ratings
    ]
    return ratings, {i: learner.severity for i, learner in population.learners.items()}


def test_the_calibration_finds_raters_severity_where_the_data_carries_it() -> None:
    ratings, truth = _rubric_ratings("rubric-severity", 5)
    found = calibrate_rubric(ratings)
    pairs = [(v, truth[r][d]) for r, lean in found.severity.items() for d, v in lean.items()]
    assert len(pairs) > 1000 and statistics.correlation(*zip(*pairs, strict=True)) > 0.6
    assert 0.5 < found.prior < 5.0  # learners do differ between dimensions here
    assert calibrate_rubric(reversed(ratings)) == found  # a set: any order, the same result


def test_the_calibration_keeps_no_severity_where_raters_lean_alike() -> None:
    found = calibrate_rubric(_rubric_ratings("rubric", 5)[0])
    assert found.severity == {} and found.prior < 5.0
    flat = calibrate_rubric(_rubric_ratings("biased", 5)[0])  # nobody differs between dimensions
    assert flat.severity == {} and flat.prior > 100.0


def test_the_depth_shown_beats_the_plain_mean_per_dimension_on_a_rubric_population() -> None:
    population = simulate(scenario("rubric-severity", learners=300, sessions_per_learner=8), 6)
    folded = fold(population)
    correction = evaluation.calibration(folded).correction()
    ours: list[float] = []
    plain: list[float] = []
    for learner_id, facts in evaluation.facts(folded).items():
        if not facts.rubric:
            continue
        shown = domain.score(facts, population.end, correction, learner_id=learner_id).rubric
        learner = population.learners[learner_id]
        for d in shown:
            true = learner.dimension_quality(d.dimension)
            ours.append(abs(d.level - true))
            plain.append(
                abs(statistics.fmean(i.scores[d.dimension] for i in folded.items[learner_id]) - true)
            )
    assert len(ours) == 5 * sum(1 for f in evaluation.facts(folded).values() if f.rubric)
    assert statistics.fmean(ours) < statistics.fmean(plain)
