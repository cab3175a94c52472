"""The bench's trust figures on tiny hand-made populations whose answers are known."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.sci import domain
from sim.inprocess import fold
from sim.population import DIMENSIONS, START, Learner, Population, Rating, Settings
from sim.trust_figures import band_figures, collusion_figures, inflation


def learner(i: str, quality: float, partner: str | None = None) -> Learner:
    return Learner(i, quality, {"nlp": quality}, 0.0, 0.5, False, 0.0, partner)


def rated(population: Population, rater: str, ratee: str, value: int, n: int) -> None:
    population.ratings.append(
        Rating(
            f"{rater}>{ratee}#{n}",
            f"s{rater}{ratee}{n}",
            rater,
            ratee,
            "nlp",
            dict.fromkeys(DIMENSIONS, value),
            START + timedelta(days=n),
        )
    )


def test_the_band_covers_a_learner_rated_as_they_are_and_misses_one_rated_far_off() -> None:
    people = {i: learner(i, q) for i, q in (("mid", 3.0), ("top", 5.0), ("r1", 3.0), ("r2", 3.0))}
    population = Population(Settings(learners=4), 1, people)
    for n in range(4):
        rated(population, "r1", "mid", 3, n)  # rated at their true 3: Proof 20 = the truth
        rated(population, "r2", "top", 1, n)  # a 5 rated 1 four times: Proof far below 40
    figures = band_figures(population, fold(population), domain.UNCALIBRATED)
    assert figures["band_coverage"] == 0.5  # mid inside its band, top outside; r1 and r2 unrated
    stats = domain.summarize(domain.facts_of(fold(population).items["mid"]))
    assert figures["band_half_width"] == pytest.approx(domain.proof_band(stats), abs=0.01)


def test_collusion_figures_count_the_caught_the_wrongly_flagged_and_the_inflation() -> None:
    crowd = {f"c{i:02d}": learner(f"c{i:02d}", 1.5 + (i % 7) * 0.45) for i in range(24)}
    crowd["c00"] = learner("c00", crowd["c00"].quality, partner="c10")
    crowd["c10"] = learner("c10", crowd["c10"].quality, partner="c00")
    population = Population(Settings(learners=24), 1, crowd)
    ids = sorted(crowd)
    for i, rater in enumerate(ids):
        for k in range(1, 5):
            ratee = ids[(i + k) % len(ids)]
            rated(population, rater, ratee, round(crowd[ratee].quality), k)
    for n in range(3):
        rated(population, "c00", "c10", 5, 10 + n)
        rated(population, "c10", "c00", 5, 10 + n)
    folded = fold(population)
    figures = collusion_figures(population, folded)
    assert figures["colluders_caught"] == 1.0 and figures["honest_flagged"] == 0.0
    assert figures["inflation_undefended"] > figures["inflation_defended"] + 2
    assert inflation(population, folded, domain.UNCALIBRATED, set()) == 0.0
