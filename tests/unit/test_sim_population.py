"""The simulator is deterministic per seed and produces the population the bench relies on."""

from __future__ import annotations

from sim.inprocess import fold, no_show_events, scores
from sim.population import scenario, simulate


def test_same_seed_same_population() -> None:
    settings = scenario("colluding", learners=120, sessions_per_learner=4)
    first, second = simulate(settings, 7), simulate(settings, 7)
    assert first.learners == second.learners
    assert first.sessions == second.sessions
    assert first.ratings == second.ratings
    assert scores(fold(first)) == scores(fold(second))


def test_different_seed_different_population() -> None:
    settings = scenario("biased", learners=60, sessions_per_learner=3)
    assert simulate(settings, 1).ratings != simulate(settings, 2).ratings


def test_population_shape() -> None:
    settings = scenario("careless", learners=200, sessions_per_learner=4)
    population = simulate(settings, 3)
    assert sum(learner.careless for learner in population.learners.values()) == 20
    assert all(1.0 <= learner.quality <= 5.0 for learner in population.learners.values())
    for rating in population.ratings:
        assert all(1 <= v <= 5 for v in rating.scores.values())
        if population.learners[rating.rater_id].careless:
            assert set(rating.scores.values()) == {4}
    abandoned = {s.session_id for s in population.sessions if s.no_show}
    assert {e.session_id for e in no_show_events(population)} == abandoned
    assert not abandoned & {r.session_id for r in population.ratings}


def test_colluding_pairs_are_mutual() -> None:
    population = simulate(scenario("colluding", learners=500, sessions_per_learner=2), 5)
    partners = {i: x.partner for i, x in population.learners.items() if x.partner}
    assert len(partners) == 10
    assert all(partners[b] == a for a, b in partners.items())


def test_unbiased_control_has_no_leniency() -> None:
    population = simulate(scenario("unbiased", learners=50, sessions_per_learner=2), 1)
    assert all(
        x.leniency == 0.0 and not x.careless and x.partner is None for x in population.learners.values()
    )


def test_raters_told_their_bias_drop_the_share_of_it_they_are_told_to() -> None:
    from dataclasses import replace as with_

    from sim.metrics import spearman
    from sim.population import scenario

    def leniency_shown(feedback: float) -> float:
        """How well each rater's mean residual (rating less true quality) tracks their leniency."""
        population = simulate(
            with_(
                scenario("biased", learners=300, sessions_per_learner=8), feedback=feedback, feedback_from=0.0
            ),
            seed=5,
        )
        residuals: dict[str, list[float]] = {}
        for r in population.ratings:
            truth = population.learners[r.ratee_id].specialty_quality[r.specialty]
            mean = sum(r.scores.values()) / len(r.scores)
            residuals.setdefault(r.rater_id, []).append(mean - truth)
        raters = sorted(residuals)
        return spearman(
            [sum(residuals[i]) / len(residuals[i]) for i in raters],
            [population.learners[i].leniency for i in raters],
        )

    untold, told = leniency_shown(0.0), leniency_shown(1.0)
    assert untold > 0.6 and abs(told) < 0.2
    base = scenario("biased", learners=50, sessions_per_learner=4)
    never_told = with_(base, feedback=0.5, feedback_from=1.0)  # told after the last round: no change
    assert simulate(base, seed=2).ratings == simulate(never_told, seed=2).ratings
    assert simulate(base, seed=2).ratings != simulate(with_(never_told, feedback_from=0.5), seed=2).ratings
