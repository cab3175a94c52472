"""The simulator's HTTP mode against the real local stack: a small population, seen on the skill page."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from deploy.local import seed as demo
from deploy.local.stack import StackConfig, start_stack, stop_stack
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
        assert len(plan.sessions) == 12
        result = asyncio.run(drive(plan, config.gateway_url, demo.secret(config), concurrency=8))
        assert result.error_count == 0, result.errors
        assert result.learners == 12 and result.sessions == 12 and result.unmatched == 0
        assert result.completed + result.no_shows == 12
        assert result.ratings == 2 * result.completed

        with httpx.Client(base_url=config.gateway_url, timeout=10) as http:
            for skill in plan.skills:
                expected = sum(1 for s in plan.sessions if s.skill == skill and s.no_show is None)
                rated = {x for s in plan.sessions if s.skill == skill for x, _, _ in s.ratings}
                deadline = time.monotonic() + 20
                while True:
                    page = http.get(f"/v1/skills/{skill}").json()
                    counted = (page["sessions_completed"], page["learners_verifying"])
                    if counted == (expected, len(rated)) or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
                assert counted == (expected, len(rated)), (skill, page)
        assert not demo.is_empty(config)
    finally:
        stop_stack(config)
