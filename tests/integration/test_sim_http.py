"""The simulator's HTTP mode against the real local stack: a small population in rounds, paired by
the real matching engine, its sessions run with the partners the engine chose, seen on the skill page."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from deploy.local import seed as demo
from deploy.local.stack import StackConfig, start_stack, stop_stack
from shared.auth import mint_token
from shared.settings import Settings
from sim.http_driver import drive
from sim.plan import build_plan
from sim.population import scenario, simulate


def test_a_small_population_driven_through_the_gateway_shows_on_the_skill_page(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    try:
        start_stack(config)
        assert demo.is_empty(config)
        population = simulate(scenario("biased", learners=12, sessions_per_learner=2), 11)
        plan = build_plan(population, run_id="itest1")
        assert len(plan.sessions) == 12 and [len(r.requests) for r in plan.rounds()] == [12, 12]
        result = asyncio.run(
            drive(plan, config.gateway_url, demo.secret(config), concurrency=8, match_wait_s=6)
        )
        assert result.error_count == 0, result.errors
        assert result.learners == 12 and result.rounds == 2
        # every ticket (the learners' and those matching reopened after a no-show) ended its
        # round matched or cancelled; the engine paired most of them
        for stats in result.round_stats:
            assert stats.requests == 12
            assert stats.matched + stats.unmatched == stats.requests + stats.requeued, stats
        assert result.unmatched == sum(s.unmatched for s in result.round_stats)
        assert result.sessions >= 6, result.round_stats
        assert result.sessions == len(result.runs) == result.completed + result.no_shows
        assert result.requeued == result.no_shows
        assert result.ratings == 2 * result.completed

        secret = Settings(jwt_secret=demo.secret(config))
        ops = {"Authorization": f"Bearer {mint_token(secret, 'operator', role='ops')}"}
        with httpx.Client(base_url=config.gateway_url, timeout=10, headers=ops) as http:
            # the sessions ran with the partners the engine chose, and ended as the driver says
            for run in result.runs:
                session = http.get(f"/v1/sessions/{run.session_id}").json()
                assert tuple(session["participants"]) == run.participants
                assert session["status"] == {"completed": "completed", "no-show": "abandoned"}[run.outcome]
                assert session["no_show"] == run.no_show
                assert len(session["ratings"]) == run.ratings
                # both confirmed, so it counts at once; a no-show claim waits out its 48 h window
                if run.outcome == "completed":
                    assert session["confirmation"]["state"] == "confirmed", session
                else:
                    assert session["no_show_claim"]["state"] == "pending", session
            for skill in plan.skills:
                claimants = sum(1 for learner in plan.learners if skill in learner.claims)
                expected = (result.completed_in(skill), claimants)
                deadline = time.monotonic() + 20
                while True:
                    page = http.get(f"/v1/skills/{skill}").json()
                    counted = (page["sessions_completed"], page["learners_verifying"])
                    if counted == expected or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
                assert counted == expected, (skill, page)
            # no ticket was left waiting: each learner's next request opens a new one (202, not 200)
            for learner in plan.learners:
                auth = {"Authorization": f"Bearer {mint_token(secret, learner.learner_id)}"}
                body = {"skill": plan.skills[0]}
                r = http.post("/v1/match-requests", json=body, headers=auth)
                assert r.status_code == 202, (learner.learner_id, r.status_code, r.text)
                ticket = r.json()["ticket_id"]
                assert http.delete(f"/v1/match-requests/{ticket}", headers=auth).status_code == 200
        assert not demo.is_empty(config)
    finally:
        stop_stack(config)
