"""Demo data for a fresh local stack: a simulated population driven through the gateway.

``lemma stack up`` (``make run``) calls ``seed_if_empty`` once the stack is ready; the tests
start the stack with ``start_stack``, which never seeds. ``<state>/seeded`` records a seed,
so a restart does not seed again; a store that already has learners is never seeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable

import httpx

from deploy.local.config import StackConfig
from deploy.local.credentials import jwt_secret
from sim.http_driver import DriveResult, Tick, drive
from sim.plan import HttpPlan, build_plan, handle
from sim.population import scenario, simulate

MARKER = "seeded"
LEARNERS = 300
SESSIONS_PER_LEARNER = 8  # 300 x 8 / 2 = 1,200 sessions
SEED = 7
SKILL = "machine-learning"  # the skill page the summary shows
CONCURRENCY = 48  # sessions in flight (and twice as many match requests): the stack is CPU-bound beyond


def seeding_disabled() -> bool:
    return os.environ.get("LEMMA_SEED", "1").strip().lower() in ("0", "false", "no", "off")


def is_empty(config: StackConfig) -> bool:
    """No seed recorded and no learner verifying any skill of the catalog."""
    if (config.state_dir / MARKER).exists():
        return False
    with httpx.Client(base_url=config.gateway_url, timeout=10.0) as http:
        skills = http.get("/v1/skills").raise_for_status().json()
        for skill in skills:
            page = http.get(f"/v1/skills/{skill['id']}").raise_for_status().json()
            if page["learners_verifying"] or page["sessions_completed"]:
                return False
    return True


def demo_plan(learners: int = LEARNERS, sessions_per_learner: int = SESSIONS_PER_LEARNER) -> HttpPlan:
    """Raters lenient and noisy as in the biased scenario, learners stronger on some rubric
    dimensions than on others and raters harsher on some (``rubric-severity``), so the demo's
    passports show depth per dimension; pairs and no-shows are the biased scenario's."""
    population = simulate(
        scenario("rubric-severity", learners=learners, sessions_per_learner=sessions_per_learner), SEED
    )
    return build_plan(population, run_id=secrets.token_hex(3))


def record(config: StackConfig, plan: HttpPlan, result: DriveResult) -> None:
    """Write ``<state>/seeded``, so a later ``up`` does not seed again."""
    summary = {
        "run_id": plan.run_id,
        "learners": result.learners,
        "sessions": result.sessions,
        "completed": result.completed,
        "rounds": result.rounds,
        "unmatched": result.unmatched,
        "seconds": round(result.elapsed_s, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (config.state_dir / MARKER).write_text(json.dumps(summary) + "\n")


def sample_passport(config: StackConfig) -> str | None:
    """The URL of a seeded learner's passport, if this state folder was seeded."""
    try:
        run_id = json.loads((config.state_dir / MARKER).read_text())["run_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"{config.gateway_url}/passports/{handle(run_id, 'L00000')}"


def seed(
    config: StackConfig, plan: HttpPlan, *, concurrency: int = CONCURRENCY, tick: Tick | None = None
) -> DriveResult:
    """Drive ``plan`` through the stack's gateway and record the seed (no progress bar)."""
    result = asyncio.run(
        drive(plan, config.gateway_url, secret(config), concurrency=concurrency, tick=tick or _no)
    )
    record(config, plan, result)
    return result


def completed_in(result: DriveResult, skill: str) -> int:
    """Sessions of ``skill`` the drive completed (the engine chose the pairs, so the plan cannot say)."""
    return result.completed_in(skill)


def _no() -> None:
    return None


def wait_for_figures(
    config: StackConfig,
    skill: str,
    sessions: int,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, object]:
    """The skill page once it counts ``sessions`` completed sessions (or whatever it shows at the timeout)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=config.gateway_url, timeout=10.0) as http:
        while True:
            page: dict[str, object] = http.get(f"/v1/skills/{skill}").json()
            done = page.get("sessions_completed")
            if (isinstance(done, int) and done >= sessions) or time.monotonic() > deadline:
                return page
            sleep(0.5)


def secret(config: StackConfig) -> str:
    """The secret the services verify tokens with (as ``start_stack`` hands it to them)."""
    return os.environ.get("LEMMA_JWT_SECRET") or jwt_secret(config.state_dir)
