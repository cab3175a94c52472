"""Rater calibration: recovers known leniency, downweights noisy raters, depends only on the set."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci.calibration import (
    LINK_SD,
    VERSION,
    Calibration,
    Rating,
    calibrate,
    corrector,
    link,
    slope,
)
from services.sci.domain import DEFAULT_PRIOR, EvidenceItem


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


def test_recovers_known_biases() -> None:
    # Rubric scores carry noise sd 0.8 each (the mean about 0.4 with rounding), so every rater rates
    # every ratee: 60 ratings per rater pin a bias down as tightly as the tolerances ask.
    ratings, bias, _ = synthetic(1, per_ratee=30)
    calibration = calibrate(ratings)
    assert calibration.version == VERSION
    errors = [abs(calibration.bias[r] - b) for r, b in bias.items()]
    assert max(errors) < 0.15
    assert sum(errors) / len(errors) < 0.06


def test_noisy_rater_weighs_less() -> None:
    ratings, _, true = synthetic(2)
    rng = random.Random(3)
    noisy = [
        Rating(ratee_id=t, rater_id="noisy", rating_id=f"{t}-noisy", value=true[t] + rng.gauss(0.0, 1.0))
        for t in sorted(true)[:15]
    ]
    calibration = calibrate(ratings + noisy)
    honest = sorted(w for r, w in calibration.weight.items() if r != "noisy")
    assert calibration.weight["noisy"] < honest[0]


def test_honest_data_is_left_nearly_alone() -> None:
    rng = random.Random(4)
    true = {f"t{j:02d}": rng.uniform(1.5, 4.5) for j in range(60)}
    raters = [f"r{i:02d}" for i in range(30)]
    ratings = [
        Rating(ratee_id=t, rater_id=r, rating_id=f"{t}-{r}", value=true[t] + rng.gauss(0.0, 0.3))
        for t in sorted(true)
        for r in rng.sample(raters, 6)
    ]
    assert max(abs(b) for b in calibrate(ratings).bias.values()) < 0.15


def test_corrector_removes_bias_and_weighs() -> None:
    calibration = Calibration("v", bias={"a": 1.0}, weight={"a": 2.0}, default_weight=5.0, ratings=1)
    correct = corrector(calibration)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    known = correct(EvidenceItem("e1", "s1", "a", 4.0, None, at))
    assert (known.value, known.weight) == (0.5, 2.0)
    unknown = correct(EvidenceItem("e2", "s2", "b", 4.0, None, at))
    assert (unknown.value, unknown.weight) == (0.75, 5.0)


def test_empty() -> None:
    assert calibrate([]).bias == {}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), shuffle_seed=st.integers(0, 1000), duplicates=st.integers(0, 10))
def test_order_and_duplicates_do_not_matter(seed: int, shuffle_seed: int, duplicates: int) -> None:
    ratings, _, _ = synthetic(seed, raters=8, ratees=12, per_ratee=3)
    rng = random.Random(shuffle_seed)
    shuffled = ratings + [rng.choice(ratings) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    assert calibrate(shuffled) == calibrate(ratings)


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
    assert calibration.weight["careless"] < 0.2 * min(
        w for r, w in calibration.weight.items() if r != "careless"
    )


def test_link_is_the_identity_in_the_middle_and_flattens_at_the_bounds() -> None:
    assert abs(link(3.0) - 3.0) < 1e-9
    xs = [0.0 + 0.25 * k for k in range(25)]
    values = [link(x) for x in xs]
    assert values == sorted(values) and all(1.0 <= v <= 5.0 for v in values)
    assert link(5.0) < 4.8 and link(1.0) > 1.2  # a 5-level learner is not rated 5 on every score
    assert slope(3.0) > 0.9 and slope(6.0) == slope(7.0)  # floored, so a rating always counts


def test_corrector_uses_the_rating_own_correction_and_prior() -> None:
    ratings, _, _ = synthetic(6, per_ratee=4)
    calibration = calibrate(ratings)
    first = ratings[0]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    item = EvidenceItem(first.rating_id, "s1", first.rater_id, first.value, None, at)
    corrected = corrector(calibration)(item)
    assert corrected.value == (calibration.values[first.rating_id] - 1.0) / 4.0
    assert corrected.weight == calibration.weights[first.rating_id]
    prior = calibration.prior()
    assert 0.3 < prior.mean < 0.7 and prior.weight > 0
    assert calibrate([]).prior() == DEFAULT_PRIOR
