"""Faults under load, the short version of ``bench.faults``: one broker, two replicas of every
service, supervised; pairs of learners go round the whole loop through the gateway while four
replicas are SIGKILLed one after another. Afterwards every accepted rating is in the evidence
trail and the SCI exactly once, every ticket ended once, every projection equals a rebuild
from the log, and no answer was a 5xx other than the gateway's 503."""

from __future__ import annotations

import json
from pathlib import Path

from bench.faults import fault_run
from deploy.local.stack import StackConfig, start_stack, stop_stack


async def test_replicas_killed_under_load_lose_and_double_nothing(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path / "state", brokers=1, replicas=2)
    try:
        start_stack(config, ready_timeout=120.0)
        result = await fault_run(
            config, pairs=4, kills=4, interval_s=3.0, kill_broker=False, seed=5, pause_s=1.0
        )
    finally:
        stop_stack(config)
    print(json.dumps(result, indent=1))
    assert result["replica_kills"] >= 3, result["kills"]
    assert result["ratings_accepted"] > 0
    assert result["checks"] == dict.fromkeys(result["checks"], True), result["checks"]
