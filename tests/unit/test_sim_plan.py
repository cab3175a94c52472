"""The HTTP plan of a simulated population: valid ids and handles, valid scores, calls in order."""

from __future__ import annotations

import re

from services.passport.domain import HANDLE_PATTERN
from shared.auth import LEARNER_ID_PATTERN
from shared.catalog import get_catalog
from sim.plan import MATCH, HttpPlan, build_plan, self_level, skill_index
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


def test_sessions_and_ratings_are_valid_for_the_catalog() -> None:
    catalog = get_catalog()
    p = plan()
    assert len(p.sessions) == 40 * 8 // 2
    assert set(p.skills) == {s.id for s in catalog.skills}
    for s in p.sessions:
        assert catalog.problems(s.skill, specialty=s.specialty, format=s.format) == []
        assert s.first != s.second
        if s.no_show is None:
            assert {(r, e) for r, e, _ in s.ratings} == {(s.first, s.second), (s.second, s.first)}
        else:
            assert s.no_show in (s.first, s.second) and s.ratings == ()
        for _, _, scores in s.ratings:
            assert catalog.problems(s.skill, scores=scores) == []


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


def test_the_calls_of_a_session_come_in_the_order_a_client_makes_them() -> None:
    p = plan()
    done = next(s for s in p.sessions if s.no_show is None)
    match = done.match_steps()
    assert [(x.actor, x.method, x.path) for x in match] == [
        (done.first, "POST", MATCH),
        (done.second, "POST", MATCH),
    ]
    assert (
        match[0].json
        == match[1].json
        == {"skill": done.skill, "specialty": done.specialty, "format": done.format}
    )
    steps = done.session_steps()
    assert [x.path.rsplit("/", 1)[-1] for x in steps] == ["start", "complete", "ratings", "ratings"]
    assert steps[0].actor == done.first and steps[1].actor == done.second
    assert {x.actor for x in steps[2:]} == {done.first, done.second}


def test_a_no_show_is_reported_by_the_learner_who_came() -> None:
    p = plan(learners=200)
    missed = next(s for s in p.sessions if s.no_show is not None)
    [step] = missed.session_steps()
    assert step.path.endswith("/abandon") and step.actor != missed.no_show
    assert step.actor in (missed.first, missed.second)
    assert step.json == {"reason": "no-show", "no_show": missed.no_show}


def test_the_first_skill_gets_most_rounds_and_levels_follow_true_skill() -> None:
    rounds = [skill_index(r, 3) for r in range(8)]
    assert rounds.count(0) >= 5 and set(rounds) == {0, 1, 2}
    assert [self_level(q) for q in (1.0, 2.4, 3.7, 5.0)] == ["beginner", "intermediate", "advanced", "expert"]


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan() == plan()
