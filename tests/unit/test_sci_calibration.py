"""Rater calibration: recovers known leniency, downweights noisy and careless raters, depends only on
the set of ratings, and hands the score a per-rater ``Correction``."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci.calibration import (
    LINK_SD,
    PRIOR_STRENGTH,
    VERSION,
    Calibration,
    Rating,
    calibrate,
    discounted_raters,
    link,
    slope,
)
from services.sci.domain import (
    DEFAULT_PRIOR,
    PROOF_PRIOR_WEIGHT,
    UNCALIBRATED,
    Correction,
    EvidenceItem,
    Prior,
    facts_of,
    score,
    summarize,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _rubric(level: float, rng: random.Random, sd: float = LINK_SD) -> float:
    return sum(min(5, max(1, round(level + rng.gauss(0.0, sd)))) for _ in range(5)) / 5


def synthetic(
    seed: int, *, raters: int = 30, ratees: int = 60, per_ratee: int = 8
) -> tuple[list[Rating], dict[str, float], dict[str, float]]:
    """Every ratee rated by ``per_ratee`` random raters, as real ratings are made: the mean of 5 rubric
    scores clip(round(true + bias + noise), 1, 5), noise sd LINK_SD per score (the model's assumption)."""
    rng = random.Random(seed)
    # Biases average 0: a shift shared by every rater cannot be told apart from the true scores.
    bias = {f"r{i:02d}": (-1.0, -0.5, 0.0, 0.5, 1.0)[i % 5] for i in range(raters)}
    true = {f"t{j:02d}": rng.uniform(2.0, 4.0) for j in range(ratees)}
    ratings = [
        Rating(ratee_id=t, rater_id=r, rating_id=f"{t}-{r}", value=_rubric(true[t] + bias[r], rng))
        for t in sorted(true)
        for r in rng.sample(sorted(bias), per_ratee)
    ]
    return ratings, bias, true


def items_of(ratings: list[Rating]) -> list[EvidenceItem]:
    """One ratee's ratings as evidence items (one session each)."""
    return [EvidenceItem(r.rating_id, r.rating_id, r.rater_id, r.value, None, AT) for r in ratings]


def test_recovers_known_biases() -> None:
    # Rubric scores carry noise sd 0.8 each (the mean about 0.4 with rounding), so every rater rates
    # every ratee: 60 ratings per rater pin a bias down as tightly as the tolerances ask.
    ratings, bias, _ = synthetic(1, per_ratee=30)
    calibration = calibrate(ratings)
    assert calibration.version == VERSION == "pg1-link-v3"
    errors = [abs(calibration.bias[r] - b) for r, b in bias.items()]
    assert max(errors) < 0.15
    assert sum(errors) / len(errors) < 0.06


def test_correction_gives_every_rater_a_bias_and_a_weight() -> None:
    ratings, bias, _ = synthetic(7, raters=10, ratees=20, per_ratee=4)
    calibration = calibrate(ratings)
    correction = calibration.correction()
    seen = {r.rater_id for r in ratings}
    assert set(correction.bias) == set(correction.weight) == seen
    assert correction.bias == calibration.bias and correction.weight == calibration.weight
    assert all(w > 0 for w in correction.weight.values())
    assert correction.default_weight == calibration.default_weight > 0
    assert (correction.ratings, correction.version) == (len(ratings), VERSION)
    assert correction.digest == calibration.digest and len(correction.digest) == 16
    assert correction.prior == calibration.prior()
    # lenient raters (bias +1) are corrected down, harsh ones (-1) up
    lenient = [correction.bias_of(r) for r in seen if bias[r] == 1.0]
    harsh = [correction.bias_of(r) for r in seen if bias[r] == -1.0]
    assert min(lenient) > 0 > max(harsh)


def test_the_score_applies_the_correction_per_rater() -> None:
    """A rating's value is (mean - 1 - its rater's bias) / 4 at its rater's weight."""
    calibration = Calibration("v", bias={"a": 1.0}, weight={"a": 2.0}, default_weight=5.0, ratings=1)
    correction = calibration.correction()
    known = summarize(facts_of(items_of([Rating("ann", "a", "e1", 4.0)])), correction)
    assert (known.weighted_sum, known.weight) == (2.0 * 0.5, 2.0)
    unknown = summarize(facts_of(items_of([Rating("ann", "b", "e2", 4.0)])), correction)
    assert (unknown.weighted_sum, unknown.weight) == (5.0 * 0.75, 5.0)

    ratings, _, _ = synthetic(6, per_ratee=4)
    correction = calibrate(ratings).correction()
    ratee = [r for r in ratings if r.ratee_id == ratings[0].ratee_id]
    stats = summarize(facts_of(items_of(ratee)), correction)
    want = math.fsum(
        correction.weight_of(r.rater_id) * (r.value - 1 - correction.bias_of(r.rater_id)) / 4 for r in ratee
    )
    assert math.isclose(stats.weighted_sum, want, abs_tol=1e-9)
    assert math.isclose(
        stats.weight, math.fsum(correction.weight_of(r.rater_id) for r in ratee), abs_tol=1e-9
    )
    assert (stats.prior_mean, stats.prior_weight) == (correction.prior.mean, correction.prior.weight)


def test_calibrated_proof_is_closer_to_the_truth() -> None:
    ratings, _, true = synthetic(8)
    correction = calibrate(ratings).correction()
    plain_error = corrected_error = 0.0
    for ratee, level in true.items():
        facts = facts_of(items_of([r for r in ratings if r.ratee_id == ratee]))
        target = 40 * (level - 1) / 4
        plain_error += abs(score(facts, AT).proof - target)
        corrected_error += abs(score(facts, AT, correction).proof - target)
    assert corrected_error < 0.8 * plain_error


def test_noisy_rater_weighs_less() -> None:
    ratings, _, true = synthetic(2)
    rng = random.Random(3)
    noisy = [
        Rating(ratee_id=t, rater_id="noisy", rating_id=f"{t}-noisy", value=true[t] + rng.gauss(0.0, 1.0))
        for t in sorted(true)[:15]
    ]
    correction = calibrate(ratings + noisy).correction()
    honest = sorted(w for r, w in correction.weight.items() if r != "noisy")
    assert correction.weight_of("noisy") < honest[0]


def test_careless_rater_is_found_and_weighs_little() -> None:
    """A rater who gives 4 to everyone says nothing about who is better: informativeness near 0."""
    ratings, _, true = synthetic(5)
    careless = [
        Rating(ratee_id=t, rater_id="careless", rating_id=f"{t}-careless", value=4.0)
        for t in sorted(true)[:12]
    ]
    calibration = calibrate(ratings + careless)
    assert calibration.informative["careless"] < 0.2
    honest = [w for r, w in calibration.informative.items() if r != "careless"]
    assert sum(honest) / len(honest) > 0.9
    weight = calibration.correction().weight
    assert weight["careless"] < 0.2 * min(w for r, w in weight.items() if r != "careless")


def test_honest_data_is_left_nearly_alone() -> None:
    rng = random.Random(4)
    true = {f"t{j:02d}": rng.uniform(1.5, 4.5) for j in range(60)}
    raters = [f"r{i:02d}" for i in range(30)]
    ratings = [
        Rating(ratee_id=t, rater_id=r, rating_id=f"{t}-{r}", value=true[t] + rng.gauss(0.0, 0.3))
        for t in sorted(true)
        for r in rng.sample(raters, 6)
    ]
    assert max(abs(b) for b in calibrate(ratings).correction().bias.values()) < 0.15


def test_empty() -> None:
    calibration = calibrate([])
    assert calibration.bias == {} and calibration.ratings == 0 and calibration.digest == ""
    correction = calibration.correction()
    assert correction.prior == DEFAULT_PRIOR and correction.ratings == 0
    # nothing seen: scores exactly as uncalibrated
    items = [EvidenceItem(f"e{i}", f"s{i}", f"r{i % 2}", 2.0 + i, None, AT) for i in range(3)]
    assert score(facts_of(items), AT, correction) == score(facts_of(items), AT, UNCALIBRATED)


def test_prior_is_the_population_mean() -> None:
    calibration = calibrate(synthetic(6, per_ratee=4)[0])
    prior = calibration.prior()
    assert 0.3 < prior.mean < 0.7 and prior.weight == PROOF_PRIOR_WEIGHT * PRIOR_STRENGTH
    assert prior == Prior(mean=(calibration.prior_mean - 1) / 4, weight=prior.weight)
    assert calibrate([]).prior() == DEFAULT_PRIOR
    # what the score stores round-trips to the same correction
    correction = calibration.correction()
    assert Correction.from_doc(correction.to_doc()) == correction


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), shuffle_seed=st.integers(0, 1000), duplicates=st.integers(0, 10))
def test_order_and_duplicates_do_not_matter(seed: int, shuffle_seed: int, duplicates: int) -> None:
    ratings, _, _ = synthetic(seed, raters=8, ratees=12, per_ratee=3)
    rng = random.Random(shuffle_seed)
    shuffled = ratings + [rng.choice(ratings) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    calibration = calibrate(ratings)
    assert calibrate(shuffled) == calibration
    assert calibrate(shuffled).correction() == calibration.correction()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), index=st.integers(0, 35), delta=st.sampled_from([-0.2, 0.2, 1e-6]))
def test_digest_names_the_exact_rating_set(seed: int, index: int, delta: float) -> None:
    ratings, _, _ = synthetic(seed, raters=8, ratees=12, per_ratee=3)
    digest = calibrate(ratings).digest
    changed = list(ratings)
    changed[index] = replace(changed[index], value=changed[index].value + delta)
    assert calibrate(changed).digest != digest
    again = list(reversed(ratings)) + ratings[:5]
    assert calibrate(again).digest == digest


def test_link_is_the_identity_in_the_middle_and_flattens_at_the_bounds() -> None:
    assert abs(link(3.0) - 3.0) < 1e-9
    xs = [0.0 + 0.25 * k for k in range(25)]
    values = [link(x) for x in xs]
    assert values == sorted(values) and all(1.0 <= v <= 5.0 for v in values)
    assert link(5.0) < 4.8 and link(1.0) > 1.2  # a 5-level learner is not rated 5 on every score
    assert slope(3.0) > 0.9 and slope(6.0) == slope(7.0)  # floored, so a rating always counts


def test_a_rater_who_gives_1_to_everyone_cannot_sink_anyone_and_is_flagged_for_operators() -> None:
    """Abuse: one learner rates every partner 1 on every dimension. The calibration finds them
    careless (no spread) and far below their peers, weighs them near zero and corrects the rest
    by their bias; operators see them in ``lemma_raters_discounted``. The Proof of their victims
    moves by under a point, a fraction of what an uncalibrated mean loses."""
    ratings, _, true = synthetic(11)
    victims = sorted(true)[:20]
    sinker = [Rating(ratee_id=t, rater_id="sinker", rating_id=f"{t}-sinker", value=1.0) for t in victims]
    calibration = calibrate(ratings + sinker)
    assert discounted_raters(calibration) == ["sinker"]
    weight = calibration.correction().weight
    assert weight["sinker"] < 0.1 * min(w for r, w in weight.items() if r != "sinker")
    honest = calibrate(ratings).correction()
    moved, plain_moved = [], []
    for victim in victims:
        mine = facts_of(items_of([r for r in ratings if r.ratee_id == victim]))
        hit = facts_of(items_of([r for r in ratings + sinker if r.ratee_id == victim]))
        moved.append(score(mine, AT, honest).proof - score(hit, AT, calibration.correction()).proof)
        plain_moved.append(score(mine, AT).proof - score(hit, AT).proof)
    assert max(abs(m) for m in moved) < 1.0, moved
    assert sum(plain_moved) / len(plain_moved) > 2 * sum(abs(m) for m in moved) / len(moved), plain_moved
