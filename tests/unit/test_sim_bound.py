"""The bound (``sim.bound``): the posterior median of true quality, on cases whose answer is known."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from sim.bound import (
    Observed,
    bound_proof,
    bound_quality,
    counts_of,
    grid,
    posterior_median,
    score_log_likelihood,
)
from sim.population import DIMENSIONS, START, Learner, Population, Rating, Session, Settings


def beta22_cdf(q: float) -> float:
    u = (q - 1.0) / 4.0
    return 3 * u * u - 2 * u**3


def prior_median_between(low: float, high: float) -> float:
    """The median of the prior restricted to [low, high], by bisection on its cdf."""
    target = 0.5 * (beta22_cdf(low) + beta22_cdf(high))
    a, b = low, high
    for _ in range(60):
        m = 0.5 * (a + b)
        a, b = (m, b) if beta22_cdf(m) < target else (a, m)
    return 0.5 * (a + b)


def all_scores(k: int, dims: int = 5) -> tuple[int, int, int, int, int]:
    counts = [0] * 5
    counts[k - 1] = dims
    return (counts[0], counts[1], counts[2], counts[3], counts[4])


def test_score_probabilities_sum_to_one_everywhere_and_peak_at_the_mean() -> None:
    q = grid()
    table = np.exp(score_log_likelihood(q, shift=0.3, noise_sd=0.7))
    assert table.shape == (5, len(q))
    assert np.allclose(table.sum(axis=0), 1.0, atol=1e-12)
    at = int(np.argmin(abs(q - 2.7)))  # mu = 3.0: a 3 is the likeliest score
    assert int(np.argmax(table[:, at])) == 2
    # the upper tail keeps its precision: P(3 | mu = 1.3, sd 0.1) is about Phi(-12), not 0
    far = score_log_likelihood(np.array([1.0]), shift=0.3, noise_sd=0.1)
    assert far[2, 0] == pytest.approx(math.log(0.5 * math.erfc(12 / math.sqrt(2))), rel=1e-6)


def test_with_nothing_informative_the_bound_is_the_prior_median() -> None:
    assert posterior_median([], specialty_sd=0.3) == pytest.approx(3.0, abs=1e-9)


def test_tiny_noise_pins_the_truth_to_the_rounding_region() -> None:
    # Every score 4 from an exact rater: q lies in [3.5, 4.5], spread there as the prior is.
    seen = [Observed("nlp", all_scores(4), 0.0, 1e-3)]
    expected = prior_median_between(3.5, 4.5)
    assert 3.5 < expected < 4.0  # below the middle of the region: the prior falls toward 5
    assert posterior_median(seen, specialty_sd=0.0) == pytest.approx(expected, abs=0.003)
    # the same 4s from a rater who gives half a point too much: q in [3.0, 4.0]
    lenient = [Observed("nlp", all_scores(4), 0.5, 1e-3)]
    assert posterior_median(lenient, specialty_sd=0.0) == pytest.approx(
        prior_median_between(3.0, 4.0), abs=0.003
    )


def test_symmetric_evidence_gives_the_middle() -> None:
    threes = [Observed("nlp", all_scores(3), 0.0, 0.7)]
    assert posterior_median(threes, specialty_sd=0.3) == pytest.approx(3.0, abs=1e-6)
    twos_and_fours = [Observed("nlp", all_scores(2), 0.0, 0.7), Observed("cv", all_scores(4), 0.0, 0.7)]
    assert posterior_median(twos_and_fours, specialty_sd=0.3) == pytest.approx(3.0, abs=1e-6)
    high = posterior_median([Observed("nlp", all_scores(5), 0.0, 0.7)], specialty_sd=0.3)
    low = posterior_median([Observed("nlp", all_scores(1), 0.0, 0.7)], specialty_sd=0.3)
    assert high - 3.0 == pytest.approx(3.0 - low, abs=1e-6) and high > 4.0


def test_a_lenient_raters_fives_say_less_than_an_honest_raters() -> None:
    honest = posterior_median([Observed("nlp", all_scores(5), 0.0, 0.7)], specialty_sd=0.3)
    lenient = posterior_median([Observed("nlp", all_scores(5), 1.0, 0.7)], specialty_sd=0.3)
    assert lenient < honest - 0.25


def test_the_bound_agrees_with_brute_force_monte_carlo() -> None:
    """Draw (q, offsets, scores) from the generative model; keep the draws that give exactly the
    observed scores; their median q is the posterior median (two specialties, two raters)."""
    specialty_sd = 0.3
    ratings = [("nlp", 0.4, 0.6, (4, 5, 4)), ("cv", -0.3, 0.9, (3, 2, 3))]  # specialty, shift, sd, scores
    rng = np.random.default_rng(7)
    kept: list[np.ndarray] = []
    for _ in range(12):
        n = 1_000_000
        q = 1.0 + 4.0 * rng.beta(2.0, 2.0, n)
        match = np.ones(n, dtype=bool)
        for _specialty, shift, sd, scores in ratings:
            q_s = np.clip(q + rng.normal(0.0, specialty_sd, n), 1.0, 5.0)
            for k in scores:
                match &= np.clip(np.round(q_s + shift + rng.normal(0.0, sd, n)), 1, 5) == k
        kept.append(q[match])
    accepted = np.concatenate(kept)
    assert len(accepted) > 5000
    seen = [
        Observed(specialty, counts_of({str(d): k for d, k in enumerate(scores)}), shift, sd)
        for specialty, shift, sd, scores in ratings
    ]
    assert posterior_median(seen, specialty_sd) == pytest.approx(float(np.median(accepted)), abs=0.015)


def learner(
    i: str, quality: float, *, leniency: float = 0.0, careless: bool = False, partner: str = ""
) -> Learner:
    return Learner(i, quality, {"nlp": quality}, leniency, 0.7, careless, 0.0, partner or None)


def population_of(
    people: list[Learner], ratings: list[tuple[str, str, int]], boost: float = 1.0
) -> Population:
    settings = Settings(learners=len(people), collusion_boost=boost)
    population = Population(settings, 1, {p.learner_id: p for p in people})
    for n, (rater, ratee, k) in enumerate(ratings):
        session = f"s{n}"
        at = START + timedelta(days=n)
        population.sessions.append(Session(session, (rater, ratee), "nlp", at, None))
        population.ratings.append(
            Rating(f"{session}-{rater}", session, rater, ratee, "nlp", dict.fromkeys(DIMENSIONS, k), at)
        )
    return population


def test_the_population_bound_uses_the_true_leniency_the_collusion_and_ignores_careless_raters() -> None:
    people = [
        learner("a", 3.0),
        learner("b", 3.0, leniency=0.5),
        learner("c", 3.0, careless=True),
        learner("d", 3.0, partner="e"),
        learner("e", 3.0, partner="d"),
    ]
    ratings = [("b", "a", 5), ("c", "b", 4), ("d", "e", 5), ("a", "d", 3)]
    population = population_of(people, ratings)
    quality = bound_quality(population)
    assert sorted(quality) == ["a", "b", "d", "e"]  # c received nothing
    assert quality["a"] == pytest.approx(posterior_median([Observed("nlp", all_scores(5), 0.5, 0.7)], 0.3))
    assert quality["b"] == pytest.approx(3.0, abs=1e-9)  # rated by a careless rater only
    # e's partner's 5s are read less the boost of 1 the truth knows they carry
    assert quality["e"] == pytest.approx(posterior_median([Observed("nlp", all_scores(5), 1.0, 0.7)], 0.3))
    assert quality["d"] == pytest.approx(3.0, abs=1e-6)  # all 3s from an honest rater
    proof = bound_proof(population)
    assert proof["b"] == pytest.approx(20.0, abs=1e-6)
    assert proof["e"] == pytest.approx(40.0 * (quality["e"] - 1.0) / 4.0)
