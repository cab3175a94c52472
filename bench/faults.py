"""Faults under load: SIGKILL service replicas (and a broker) while clients go round the whole
loop through the gateway; afterwards nothing accepted is lost or counted twice.

    .venv/bin/python -m bench.faults                          # 3 brokers, 2 replicas, 24 kills
    .venv/bin/python -m bench.faults --brokers 1 --kills 4    # what the suite's short test runs

The bench starts its own stack (supervised: a killed process comes back after a back-off, as
Kubernetes would restart it) on free ports in a temporary folder and stops it at the end.
Clients (``bench.faults_traffic``) register and claim first, then ``--pairs`` pairs each ask
for a partner, are matched, start, complete and rate each other, over and over, retrying what
gets no answer or a 502/503/504. Meanwhile every ``--interval`` seconds a random service
replica is killed (never the last ready one of its service), and halfway a broker (with
``--brokers`` > 1; with one broker the log is down while it comes back). Then the clients stop,
every killed process must be back, and ``bench.faults_checks`` checks the outcome. The last
line is one JSON object: the figures, the checks and whether all are met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.faults_checks import run_fault_checks
from bench.faults_inject import Injector
from bench.faults_traffic import Traffic
from bench.load_setup import Api, one_address_for_every_learner
from deploy.local.stack import StackConfig, StackError, start_stack, stop_stack
from shared.events.registry import Topic
from shared.settings import Settings

SKILL = "machine-learning"
#: How long the clients may take to finish the loops under way once the faults stop.
DRAIN_S = 120.0


def say(text: str) -> None:
    print(f"[faults] {text}", flush=True)


async def fault_run(
    config: StackConfig,
    *,
    pairs: int,
    kills: int,
    interval_s: float,
    kill_broker: bool,
    seed: int,
    pause_s: float = 0.0,
    report: Callable[[str], None] = say,
) -> dict[str, Any]:
    """Run the traffic and the faults against a running, supervised ``config`` stack; the
    figures and the checks."""
    rng = random.Random(seed)
    secret = (config.state_dir / "jwt-secret").read_text().strip()
    api = Api(config.gateway_url, secret, limit=4 * pairs + 16)
    run = f"{seed}-{int(time.time()) % 100000}"
    traffic = Traffic(api, [(f"fa-{run}-{i}", f"fb-{run}-{i}") for i in range(pairs)], SKILL, pause_s)
    try:
        await traffic.setup()
        report(f"{2 * pairs} learners registered; traffic on, {kills} kills every {interval_s:g} s")
        started = time.monotonic()
        injector = Injector(config.state_dir, rng, traffic.started)
        stop = asyncio.Event()
        load = asyncio.create_task(traffic.run(stop))
        broker_at = kills // 2 if kill_broker else -1
        missed = 0
        for i in range(kills):  # on a fixed schedule: picking a victim takes time too
            await asyncio.sleep(max(0.0, started + (i + 1) * interval_s - time.monotonic()))
            kill = await injector.kill_replica()
            if kill is None:
                missed += 1
            else:
                report(f"killed {kill.name} (pid {kill.pid}) at {kill.at:.1f} s")
            if i == broker_at:
                broker = await injector.kill_broker()
                report(f"killed broker {broker.name} at {broker.at:.1f} s" if broker else "no broker to kill")
        faults_s = time.monotonic() - started
        stop.set()
        out = await asyncio.wait_for(load, DRAIN_S)
        back = await injector.all_back()
        report(f"{out.loops} loops, {len(out.accepted)} ratings accepted; every killed process back: {back}")
        checks = await run_fault_checks(
            api,
            out,
            bootstrap=config.kafka_bootstrap,
            matching_topic=Settings().topic(Topic.MATCHING),
            state_dir=config.state_dir,
        )
    finally:
        api.close()
    figures = {
        "brokers": config.brokers,
        "replicas": config.replicas,
        "pairs": pairs,
        "seconds_under_faults": round(faults_s, 1),
        "kills": [k.to_json() for k in injector.kills],
        "replica_kills": sum(1 for k in injector.kills if k.role == "service"),
        "broker_kills": sum(1 for k in injector.kills if k.role == "broker"),
        "no_victim_ready": missed,
        "all_back": back,
        "back_after_s_max": max((k.back_after or 0.0 for k in injector.kills), default=0.0),
        "loops": out.loops,
        "sessions": len(out.sessions),
        "client_gave_up": dict(Counter(out.gave_up)),
        "no_answer": len(out.no_answer),
        **checks.to_json(),
    }
    verdicts = {
        **checks.verdicts,
        "at_least_the_kills_asked": figures["replica_kills"] >= kills - missed and missed <= kills // 4,
        "every_killed_process_back": back,
        "ratings_were_made": len(out.accepted) > 0,
    }
    return {**figures, "checks": verdicts, "meets": all(verdicts.values())}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", type=int, default=3)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--kills", type=int, default=24, help="service replicas killed (SIGKILL)")
    p.add_argument("--interval", type=float, default=4.0, help="seconds between kills")
    p.add_argument("--no-broker-kill", action="store_true")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--pause", type=float, default=1.0, help="a learner's think time between loops (s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    state = Path(tempfile.mkdtemp(prefix="lemma-faults-"))
    config = StackConfig.with_free_ports(state, brokers=args.brokers, replicas=args.replicas)
    say(f"starting {args.brokers} broker(s), {args.replicas} replicas of every service in {state}")
    try:
        try:
            one_address_for_every_learner()
            start_stack(config, ready_timeout=120.0)
        except StackError as exc:
            say(f"the stack did not start: {exc}\nlast lines of {exc.process}.log:\n{exc.log_tail}")
            raise
        result = asyncio.run(
            fault_run(
                config,
                pairs=args.pairs,
                kills=args.kills,
                interval_s=args.interval,
                kill_broker=not args.no_broker_kill and args.brokers > 1,
                seed=args.seed,
                pause_s=args.pause,
            )
        )
    finally:
        stop_stack(config)
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps({"bench": "faults", **result, "targets": "every check true"}))
    return 0 if result["meets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
