"""The quality figures (``sim.evaluation``) and the tier path (``sim.tier_path``) on tiny hand-made
populations whose answers are known."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.sci import domain
from services.sci.calibration import Calibration, Rating
from services.sci.documents import SCORES
from sim.evaluation import Scored, bound, figures, plain_mean, shrunk
from sim.inprocess import fold
from sim.population import DIMENSIONS, SKILL, START, Learner, Population, Session, Settings
from sim.population import Rating as Given
from sim.tier_path import Replay, events, tier_path


def learner(i: str, quality: float) -> Learner:
    return Learner(i, quality, {"nlp": quality}, 0.0, 0.7, False, 0.0)


def population_of(qualities: dict[str, float]) -> Population:
    return Population(Settings(learners=len(qualities)), 1, {i: learner(i, q) for i, q in qualities.items()})


def rate(
    population: Population, rater: str, ratee: str, value: int, day: float, no_show: str | None = None
) -> None:
    """One session on ``day`` in which ``rater`` rates ``ratee`` ``value`` on every dimension."""
    session = f"s{len(population.sessions):04d}"
    at = START + timedelta(days=day)
    population.sessions.append(Session(session, (rater, ratee), "nlp", at, no_show))
    if no_show is None:
        scores = dict.fromkeys(DIMENSIONS, value)
        population.ratings.append(Given(f"{session}-{rater}", session, rater, ratee, "nlp", scores, at))


def test_rated_exactly_as_they_are_the_plain_mean_is_perfect() -> None:
    # Four ratees of quality 2..5, each rated by the same rater, on the same day, at their quality.
    population = population_of({"r": 3.0, "a": 2.0, "b": 3.0, "c": 4.0, "d": 5.0})
    for ratee, value in (("a", 2), ("b", 3), ("c", 4), ("d", 5)):
        rate(population, "r", ratee, value, 1.0)
    figs = figures(population, plain_mean(population, fold(population)))
    assert figs["proof_mae"] == pytest.approx(0.0, abs=1e-9)
    assert figs["spearman_proof"] == pytest.approx(1.0)
    # same sessions, raters, agreement and day: the SCI ranks as Proof does
    assert figs["spearman_sci"] == pytest.approx(1.0)


def test_ratings_that_invert_the_order_give_minus_one_and_their_error() -> None:
    population = population_of({"r": 3.0, "a": 2.0, "b": 3.0, "c": 4.0, "d": 5.0})
    for ratee, value in (("a", 5), ("b", 4), ("c", 3), ("d", 2)):
        rate(population, "r", ratee, value, 1.0)
    figs = figures(population, plain_mean(population, fold(population)))
    assert figs["spearman_proof"] == pytest.approx(-1.0)
    assert figs["spearman_sci"] == pytest.approx(-1.0)
    # |(5-1)/4 - 1/4| + |3/4 - 2/4| + |2/4 - 3/4| + |1/4 - 4/4| over 4 = (0.75 + 0.25 + 0.25 + 0.75) / 4
    assert figs["proof_mae"] == pytest.approx(0.5)


def test_the_service_model_shrinks_and_the_bound_reads_through_the_noise() -> None:
    population = population_of({"r": 3.0, "a": 5.0})
    rate(population, "r", "a", 5, 1.0)
    folded = fold(population)
    # uncalibrated: one 5/5 is 40 x (3 x 0.5 + 1) / 4 = 25, not 40
    assert shrunk(population, folded)["a"].proof == pytest.approx(25.0)
    assert plain_mean(population, folded)["a"].proof == pytest.approx(40.0)
    assert 25.0 < bound(population, folded)["a"].proof < 40.0  # five 5s: high, but the prior holds it
    assert shrunk(population, folded)["r"].tier == domain.TIER_CLAIMED  # r was rated by nobody


def scored(tier: int, true_tier: int) -> Scored:
    return Scored(proof=20.0, sci=50.0, tier=tier, true_tier=true_tier)


def test_tier_accuracy_and_false_peer_endorsed_count_what_they_say() -> None:
    population = population_of({i: 3.0 for i in "abcdef"})
    shown = {
        "a": scored(4, 4),
        "b": scored(4, 2),  # shown Peer-endorsed, truly Practicing: false
        "c": scored(4, 3),  # one tier too high, not false Peer-endorsed
        "d": scored(3, 3),
        "e": scored(2, 3),
        "f": scored(1, 1),  # unrated: not counted at all
    }
    figs = figures(population, shown)
    assert figs["tier_accuracy"] == pytest.approx(2 / 5)
    assert figs["shown_peer_endorsed"] == pytest.approx(3 / 5)
    assert figs["false_peer_endorsed"] == pytest.approx(1 / 3)


def test_false_peer_endorsed_is_not_measured_when_nobody_is_shown_peer_endorsed() -> None:
    population = population_of({"a": 3.0, "b": 3.0})
    figs = figures(population, {"a": scored(3, 2), "b": scored(2, 2)})
    assert "false_peer_endorsed" not in figs and figs["shown_peer_endorsed"] == 0.0


def test_each_first_rating_moves_a_learner_one_tier_and_calibrations_follow_the_growth_rule() -> None:
    population = population_of({i: 3.0 for i in "abcd"})
    pairs = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
    for day in range(3):
        for rater, ratee in pairs:
            rate(population, rater, ratee, 3, day + 0.1 * len(population.sessions))
    path = tier_path(population, growth=0.5, minimum=4)
    # 12 ratings: calibrated at 4, then at 4 + 2 = 6, 6 + 3 = 9 (the next would need 14)
    assert path.calibrations == 3
    figs = path.figures()
    assert path.learners == 4
    assert figs["max_tier_step"] == 1.0 and figs["tier_jump_share"] == 0.0
    # each Claimed -> Practicing at their first rating; three sessions are too few for more
    assert figs["tier_moves"] == 4.0 and figs["recalibration_moves"] == 0.0


def harsh_world() -> tuple[Population, list[str]]:
    """x is rated 3 in ten sessions by five raters (2 each), who rate each other 4 (6 sessions each)."""
    raters = [f"r{i}" for i in range(5)]
    population = population_of({"x": 4.5, **{r: 4.8 for r in raters}})
    day = 0.0
    for n in range(2):
        for i, r in enumerate(raters):
            for k in (1, 2, 3):
                day += 0.01
                rate(population, raters[(i + k) % 5], r, 4, day)
            day += 0.01
            rate(population, r, "x", 3, day + n)
    return population, raters


def test_a_recalibration_that_finds_harsh_raters_lifts_a_learner_two_tiers_at_once() -> None:
    population, raters = harsh_world()
    every = len(population.ratings)

    def harsh(ratings: list[Rating]) -> Calibration:
        # what a calibration that found the five raters 1.6 points harsh says
        return Calibration(
            version="harsh",
            bias=dict.fromkeys(raters, -1.6),
            weight=dict.fromkeys(raters, 10.0),  # the calibration's scale (up to 30; the prior's 1.5)
            default_weight=1.0,
            ratings=len(ratings),
            prior_weight=1.5,
        )

    replay = Replay(growth=0.1, minimum=every, calibrator=harsh)
    for event in events(population):
        replay.fold(event)
    path = replay.path
    assert path.calibrations == 1
    # before it: Proof 20 for x, less the band: Practicing; after it: the raters' 3s read as 4.6,
    # the raters (rated 4, read as 5.6) are seniors, and x is Peer-endorsed
    assert ("x", domain.TIER_PRACTICING, domain.TIER_PEER_ENDORSED, True) in path.jumps
    assert path.max_step == 2 and path.max_recalibration_step == 2
    assert path.figures()["tier_jump_share"] == pytest.approx(len(path.jumped) / 6)
    assert path.recalibration_moves >= 1


def test_no_shows_are_folded_at_their_time_and_count_against_the_learner() -> None:
    population = population_of({"a": 3.0, "b": 3.0})
    rate(population, "a", "b", 4, 1.0)
    rate(population, "a", "b", 4, 2.0, no_show="b")
    kinds = [type(e.data).__name__ for e in events(population)]
    assert kinds == ["EvidenceRecorded", "SessionScheduled", "NoShowUpheld"]
    replay = Replay(minimum=100)
    for event in events(population):
        replay.fold(event)
    doc = replay.docs[(SCORES, f"b/{SKILL}")]
    assert doc["no_shows"] == 1 and doc["sessions"] == 1
    assert replay.path.moves == 1  # Claimed -> Practicing; the no-show lowers the SCI, not the tier
