"""The HTTP plan of a simulated population: valid ids and handles, the rounds' requests, and
ratings and no-shows drawn for any pair, valid and deterministic."""

from __future__ import annotations

import re

from services.passport.domain import HANDLE_PATTERN
from shared.auth import LEARNER_ID_PATTERN
from shared.catalog import get_catalog
from sim.plan import HttpPlan, LearnerPlan, build_plan, self_level, skill_index
from sim.population import scenario, simulate


def plan(run_id: str = "a1b2c3", learners: int = 40, sessions: int = 8) -> HttpPlan:
    return build_plan(
        simulate(scenario("biased", learners=learners, sessions_per_learner=sessions), 5), run_id
    )


def test_learner_ids_and_handles_are_valid_and_carry_the_run_id() -> None:
    p = plan()
    assert len(p.learners) == 40
    for learner in p.learners:
        assert LEARNER_ID_PATTERN.fullmatch(learner.learner_id)
        assert re.fullmatch(HANDLE_PATTERN, learner.handle)
        assert "a1b2c3" in learner.learner_id and learner.handle.startswith("a1b2c3-")
    other = plan("ffeedd")
    assert not {x.learner_id for x in p.learners} & {x.learner_id for x in other.learners}
    assert not {x.handle for x in p.learners} & {x.handle for x in other.learners}


def test_sessions_are_valid_for_the_catalog_and_rounds_ask_for_every_planned_learner() -> None:
    catalog = get_catalog()
    p = plan()
    assert len(p.sessions) == 40 * 8 // 2
    assert set(p.skills) == {s.id for s in catalog.skills}
    for s in p.sessions:
        assert catalog.problems(s.skill, specialty=s.specialty, format=s.format) == []
        assert s.first != s.second
    rounds = p.rounds()
    assert [r.number for r in rounds] == list(range(8))
    for r in rounds:
        planned = [s for s in p.sessions if s.round == r.number]
        assert r.planned == len(planned) and {s.skill for s in planned} == {r.skill}
        asked = [q.learner_id for q in r.requests]
        assert sorted(asked) == sorted(x for s in planned for x in (s.first, s.second))
        assert len(set(asked)) == len(asked)  # one request per learner and round
        for q in r.requests:
            mine = next(s for s in planned if q.learner_id in (s.first, s.second))
            assert q.body == {"skill": r.skill, "specialty": mine.specialty, "format": mine.format}


def test_ratings_are_drawn_for_any_pair_valid_for_the_skill_and_the_same_every_time() -> None:
    catalog = get_catalog()
    p = plan()
    ids = [x.learner_id for x in p.learners]
    for skill in catalog.skills:
        for specialty in skill.specialties:
            scores = p.scores(ids[0], ids[7], skill=skill.id, specialty=specialty.id, round_no=3)
            assert catalog.problems(skill.id, scores=scores) == []
            again = plan().scores(ids[0], ids[7], skill=skill.id, specialty=specialty.id, round_no=3)
            assert scores == again
    drawn = {
        tuple(p.scores(ids[1], ids[2], skill="machine-learning", specialty="nlp", round_no=n).values())
        for n in range(8)
    }
    assert len(drawn) > 1  # fresh noise each round


def test_the_rated_learners_true_skill_shows_in_the_drawn_scores() -> None:
    p = plan(learners=200)
    population = p.population
    assert population is not None
    by_quality = sorted(p.learners, key=lambda x: population.learners[p.sim_ids[x.learner_id]].quality)
    weak, strong = by_quality[:20], by_quality[-20:]
    rater = by_quality[100].learner_id

    def mean(ratees: list[LearnerPlan]) -> float:
        values = [
            v
            for x in ratees
            for n in range(4)
            for v in p.scores(
                rater, x.learner_id, skill="machine-learning", specialty="tabular", round_no=n
            ).values()
        ]
        return sum(values) / len(values)

    assert mean(strong) > mean(weak) + 1.0


def test_no_shows_are_drawn_per_pair_at_the_population_rate() -> None:
    p = plan(learners=200)
    ids = [x.learner_id for x in p.learners]
    pairs = [(ids[i], ids[i + 1]) for i in range(0, 200, 2)]
    absent = [p.no_show(a, b, skill="machine-learning", round_no=n) for n in range(20) for a, b in pairs]
    assert all(x is None or x in pair for x, pair in zip(absent, pairs * 20, strict=True))
    share = sum(x is not None for x in absent) / len(absent)
    assert 0.04 < share < 0.16  # two learners, each absent about 5% of the time
    assert absent == [
        p.no_show(a, b, skill="machine-learning", round_no=n) for n in range(20) for a, b in pairs
    ]
    # the same pair either way round
    assert [p.no_show(b, a, skill="machine-learning", round_no=0) for a, b in pairs] == absent[:100]


def test_every_learner_claims_the_skills_they_practise() -> None:
    p = plan()
    claims = {x.learner_id: x.claims for x in p.learners}
    for s in p.sessions:
        assert s.skill in claims[s.first] and s.skill in claims[s.second]
    assert all(
        level in ("beginner", "intermediate", "advanced", "expert")
        for c in claims.values()
        for level in c.values()
    )


def test_the_first_skill_gets_most_rounds_and_levels_follow_true_skill() -> None:
    rounds = [skill_index(r, 3) for r in range(8)]
    assert rounds.count(0) >= 5 and set(rounds) == {0, 1, 2}
    assert [self_level(q) for q in (1.0, 2.4, 3.7, 5.0)] == ["beginner", "intermediate", "advanced", "expert"]


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan() == plan()
