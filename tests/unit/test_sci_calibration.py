"""Rater calibration: recovers known leniency, downweights noisy raters, depends only on the set."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci.calibration import VERSION, Calibration, Rating, calibrate, corrector
from services.sci.domain import EvidenceItem


def synthetic(
    seed: int, *, raters: int = 30, ratees: int = 60, per_ratee: int = 8
) -> tuple[list[Rating], dict[str, float], dict[str, float]]:
    """Every ratee rated by ``per_ratee`` random raters: value = true + bias + small noise."""
    rng = random.Random(seed)
    # Biases average 0: a shift shared by every rater cannot be told apart from the true scores.
    bias = {f"r{i:02d}": (-1.0, -0.5, 0.0, 0.5, 1.0)[i % 5] for i in range(raters)}
    true = {f"t{j:02d}": rng.uniform(2.0, 4.0) for j in range(ratees)}
    ratings = [
        Rating(ratee_id=t, rater_id=r, rating_id=f"{t}-{r}", value=true[t] + bias[r] + rng.gauss(0.0, 0.1))
        for t in sorted(true)
        for r in rng.sample(sorted(bias), per_ratee)
    ]
    return ratings, bias, true


def test_recovers_known_biases() -> None:
    ratings, bias, _ = synthetic(1)
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
