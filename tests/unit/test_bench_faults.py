"""The faults bench's pure parts: which process may be killed, and when a run passes."""

from __future__ import annotations

import random
from collections import Counter

from bench.faults_checks import FaultChecks
from bench.faults_inject import pick_broker, pick_replica


def proc(name: str, role: str = "service", ready: bool = True, pid: int | None = 1) -> dict[str, object]:
    return {"name": name, "role": role, "service": name.split("-")[0], "ready": ready, "pid": pid}


def test_a_replica_is_killed_only_while_every_sibling_is_ready() -> None:
    rows = [proc("sci-1"), proc("sci-2", ready=False), proc("evidence-1"), proc("evidence-2")]
    picks = {pick_replica(rows, random.Random(seed))["name"] for seed in range(50)}  # type: ignore[index]
    assert picks == {"evidence-1", "evidence-2"}


def test_a_lone_replica_is_never_killed() -> None:
    assert pick_replica([proc("sci-1"), proc("kafka-1", role="broker")], random.Random(1)) is None


def test_a_broker_is_killed_only_while_all_are_up() -> None:
    brokers = [proc(f"kafka-{n}", role="broker") for n in (1, 2, 3)]
    assert pick_broker(brokers, random.Random(1)) in brokers
    brokers[1]["ready"] = False
    assert pick_broker(brokers, random.Random(1)) is None


def test_a_run_fails_on_a_5xx_other_than_503_and_on_drift() -> None:
    checks = FaultChecks(replays=dict.fromkeys(("passport", "sci"), 0), server_errors=Counter({503: 4}))
    assert all(checks.verdicts.values())
    checks.server_errors[502] += 1
    assert not checks.verdicts["no_5xx_but_503"]
    checks.replays["sci"] = 1
    assert not checks.verdicts["projections_equal_rebuilds"]
    checks.ended_twice.append("t-1")
    assert not checks.verdicts["every_ticket_ended_once"]
