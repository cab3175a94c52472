"""Load bench: the whole stack driven through its gateway from a second process, as clients would.

    .venv/bin/python -m bench.load                        # 3 brokers, 2 replicas, 20 s phases; ~5 min
    .venv/bin/python -m bench.load --quick                # a smoke run, well under a minute
    .venv/bin/python -m bench.load --brokers 1 --replicas 1 --duration 10 --seed 3

The bench starts its own stack (``deploy.local``: a temporary state folder, free ports) and
stops it at the end whatever happens. Phases, each measured open-loop (arrivals at fixed
times, latency from the due time: ``bench.load_gen``):

1. population (``bench.load_setup``): learners register, claim every skill and are paired by
   the matching engine in rounds; sessions are completed (not rated) or left scheduled;
2. the generator's own ceiling: the highest rate it keeps to schedule against a trivial
   endpoint (a page the gateway answers itself), so no figure below is the client's limit;
3. the rating path (``bench.load_rating``): ratings at 200/s, each followed from its 201 to
   the ratee's passport showing the SCI it made; target p99 < 500 ms;
4. passport reads at 1,000/s, through the gateway and straight to the passport replicas'
   ports (split evenly over them); target p99 < 20 ms at the service;
5. the step-up search (``bench.load_mix``): the mixed workload at rising rates; the highest
   rate with p99 < 100 ms (no 5xx, every request answered, the client on time);
6. checks (``bench.load_checks``): every accepted rating once in its ratee's evidence trail,
   the skill pages' counts, no 5xx.

CPU use per phase (stack by role, generator, the rest of the machine) is reported beside each
figure: the generator and the stack share the machine's cores. The last line is one JSON
object with the figures, the targets and whether each is met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bench.load_checks import run_checks
from bench.load_cpu import CpuMeter, cores, role
from bench.load_gen import Call, FixedCalls, Generator
from bench.load_http import Pool
from bench.load_mix import Lifecycle, MixState, MixWorkload
from bench.load_rating import PlannedRating, RatingPath, RatingResult
from bench.load_report import Report, step_passes
from bench.load_setup import Population, build_population, one_address_for_every_learner
from deploy.local import seed as demo
from deploy.local.stack import StackConfig, StackError, running_processes, start_stack, stop_stack
from shared.catalog import get_catalog

T = TypeVar("T")
TRIVIAL_PATH = "/passport/docs"  # answered by the gateway itself (a fixed page), no service behind it


@dataclass(frozen=True)
class Plan:
    learners: int
    rated_rounds: int
    rating_rate: float
    rating_s: float
    read_rate: float
    read_s: float
    step_s: float
    steps: tuple[float, ...]
    calibration: tuple[float, ...]
    calibration_s: float
    pause_s: float


def make_plan(args: argparse.Namespace) -> Plan:
    """Sizes for ``--duration`` seconds per measured phase (the population yields enough ratings)."""
    duration = float(args.duration)
    rated_rounds = 2 if args.quick else 3
    ratings = int(args.rating_rate * duration)
    learners = max(20, -(-ratings // (3 * rated_rounds)))
    learners += learners % 2
    rate = float(args.rating_rate)
    if args.quick:
        return Plan(
            learners, rated_rounds, rate, duration, 1000, duration, duration, (100, 200), (2000,), 1.0, 0.5
        )
    return Plan(
        learners=learners,
        rated_rounds=rated_rounds,
        rating_rate=rate,
        rating_s=duration,
        read_rate=1000,
        read_s=duration,
        step_s=duration,
        steps=(50, 100, 200, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000),
        calibration=(1000, 2000, 4000, 8000, 12000),
        calibration_s=3.0,
        pause_s=3.0,
    )


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, config: StackConfig, plan: Plan, args: argparse.Namespace) -> None:
        self.config, self.plan, self.args = config, plan, args
        self.report = Report(config, args)
        self.generator: Generator | None = None
        self.meter = CpuMeter({})

    def refresh_groups(self) -> None:
        """Name every stack process (a restarted replica has a new pid) and the generator's."""
        groups = {h.pid: role(name) for name, h in running_processes(self.config).items()}
        groups[os.getpid()] = "generator"
        if self.generator is not None:
            groups.update(dict.fromkeys(self.generator.pids, "generator"))
        self.meter.groups = groups

    def measure(self, phase: str, work: Callable[[], T]) -> T:
        """Run ``work()`` and keep the CPU use by group during it under ``phase``."""
        self.refresh_groups()
        before = self.meter.sample()
        out = work()
        self.refresh_groups()
        self.report.cpu[phase] = cores(before, self.meter.sample())
        return out

    # --- phases ------------------------------------------------------------------------------

    def population(self) -> tuple[Population, Any]:
        say(f"population: {self.plan.learners} learners, {self.plan.rated_rounds} rated rounds + 1 open")
        secret = demo.secret(self.config)
        run_id = f"ld{self.args.seed}"
        return self.measure(
            "population",
            lambda: asyncio.run(
                build_population(
                    self.config.gateway_url,
                    secret,
                    run_id=run_id,
                    learners=self.plan.learners,
                    rated_rounds=self.plan.rated_rounds,
                    say=say,
                )
            ),
        )

    def calibrate(self) -> None:
        """The generator's ceiling: the highest rate it sends on time against a trivial page."""
        gen = self.generator
        assert gen is not None
        pool = Pool.of(self.config.gateway_url)
        call = Call("GET trivial", 0, pool.build("GET", TRIVIAL_PATH))
        ceiling = 0.0
        for rate in self.plan.calibration:
            res = self.measure(
                f"generator {rate:g}/s",
                partial(
                    gen.run,
                    [self.config.gateway_url],
                    rate,
                    self.plan.calibration_s,
                    [FixedCalls([call])] * gen.workers,
                ),
            )
            self.report.add_run("generator", res)
            fig = self.report.generator[-1]
            say(
                f"  generator {rate:>6g}/s: sent on time {res.on_time}, lag p99 "
                f"{fig['lag_p99_ms']} ms, latency p99 {fig['p99_ms']} ms, cpu {res.cpu_s:.1f}s"
            )
            if not res.on_time:
                break
            ceiling = rate
        self.report.generator_ceiling = ceiling
        self.report.ceiling_lower_bound = ceiling == self.plan.calibration[-1]

    def rating_path(self, pop: Population, api: Any) -> RatingResult:
        rng = random.Random(self.args.seed)
        rubric = {s.id: [r.id for r in s.rubric] for s in get_catalog().skills}
        planned: list[PlannedRating] = []
        for sessions in pop.rated_rounds:
            batch = [
                PlannedRating(
                    s.session_id, rater, ratee, s.skill, {d: rng.randint(1, 5) for d in rubric[s.skill]}
                )
                for s in sessions
                for rater, ratee in ((s.a, s.b), (s.b, s.a))
            ]
            rng.shuffle(batch)
            planned.extend(batch)
        planned = planned[: int(self.plan.rating_rate * self.plan.rating_s)]
        tokens = {learner: api.token(learner) for learner in pop.learners}
        say(f"rating path: {len(planned)} ratings at {self.plan.rating_rate:g}/s")
        path = RatingPath(self.config.gateway_url, tokens, self.plan.rating_rate)
        result = self.measure("rating path", lambda: asyncio.run(path.run(planned)))
        self.report.rating(result)
        return result

    def passport_reads(self, pop: Population) -> None:
        gen = self.generator
        assert gen is not None
        learners = list(pop.learners)
        random.Random(self.args.seed).shuffle(learners)
        direct = [f"http://127.0.0.1:{port}" for port in self.config.replica_ports("passport")]
        for name, urls in (("gateway", [self.config.gateway_url]), ("direct", direct)):
            pools = [Pool.of(u) for u in urls]
            calls = [
                Call(
                    "GET /v1/passports/{id}",
                    i % len(urls),
                    pools[i % len(urls)].build("GET", f"/v1/passports/{who}"),
                )
                for i, who in enumerate(learners)
            ]
            workloads = [FixedCalls(calls[w :: gen.workers]) for w in range(gen.workers)]
            res = self.measure(
                f"passport reads {name}",
                partial(gen.run, urls, self.plan.read_rate, self.plan.read_s, workloads),
            )
            self.report.passport(name, res)
            fig = self.report.reads[name]
            say(
                f"  passport reads {name} ({len(urls)} port(s)) at {self.plan.read_rate:g}/s: "
                f"p50 {fig['p50_ms']} p99 {fig['p99_ms']} ms, client limited {res.client_limited}"
            )

    def step_up(self, pop: Population, api: Any) -> MixState:
        gen = self.generator
        assert gen is not None
        catalog = get_catalog()
        state = MixState(
            host=Pool.of(self.config.gateway_url).host_header,
            secret=demo.secret(self.config),
            run_id=f"ld{self.args.seed}",
            seed=self.args.seed,
            learners=list(pop.learners),
            skills=[s.id for s in catalog.skills],
            rubric={s.id: [r.id for r in s.rubric] for s in catalog.skills},
            tickets_known=list(pop.tickets),
            sessions_known=[(s.session_id, s.a) for r in pop.rated_rounds for s in r],
        )
        for info in pop.open_sessions:
            state.lifecycle.append(Lifecycle(info.session_id, info.skill, info.a, info.b))
        say("step-up search (mixed workload)")
        passed: float = 0.0
        failed: float | None = None
        rates = list(self.plan.steps)
        while rates:
            rate = rates.pop(0)
            res = self.measure(
                f"mix {rate:g}/s",
                partial(gen.run, [self.config.gateway_url], rate, self.plan.step_s, [MixWorkload(state)]),
            )
            state = res.outcomes[0]["state"]
            ok, why = step_passes(res)
            self.report.step(rate, res, ok, why, self.report.cpu[f"mix {rate:g}/s"])
            fig = self.report.steps[-1]
            say(
                f"  {rate:>6g}/s: p50 {fig['p50_ms']} p99 {fig['p99_ms']} ms, "
                f"answered {fig['answered_share']}, {'pass' if ok else 'FAIL: ' + why}"
            )
            if ok:
                passed = max(passed, rate)
            else:
                failed = rate if failed is None else min(failed, rate)
                if res.client_limited:
                    self.report.step_up_client_limited = True
                    break
                # one bisection between the last rate met and the first missed, then stop
                middle = round((passed + rate) / 2 / 25) * 25
                if rates and middle not in (passed, rate) and not self.args.quick and middle > passed:
                    rates = [middle]
                else:
                    break
            time.sleep(self.plan.pause_s)
        self.report.max_sustained = passed
        self.report.first_failed = failed
        self.report.mix_state(state)
        return state


def run(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    state_dir = Path(tempfile.mkdtemp(prefix="lemma-load-"))
    config = StackConfig.with_free_ports(state_dir, brokers=args.brokers, replicas=args.replicas)
    bench = Bench(config, plan, args)
    report = bench.report
    code = 1
    try:
        began = time.monotonic()
        say(f"stack: {args.brokers} broker(s), {args.replicas} replica(s) of every service in {state_dir}")
        one_address_for_every_learner()
        start_stack(config, ready_timeout=180.0)
        report.stack_start_s = round(time.monotonic() - began, 1)
        say(f"  up in {report.stack_start_s}s, gateway {config.gateway_url}")
        bench.generator = Generator(args.workers)
        pop, api = bench.population()
        report.population(pop, api)
        bench.calibrate()
        rated = bench.rating_path(pop, api)
        bench.passport_reads(pop)
        state = bench.step_up(pop, api)
        claims = {skill: set(learners) for skill, learners in pop.claims.items()}
        for learner, skill in state.claims:
            claims.setdefault(skill, set()).add(learner)
        say("checks")
        checks = asyncio.run(
            run_checks(api, rated.accepted + state.ratings, rated.unanswered + state.unanswered, claims)
        )
        report.checks(checks, api)
        api.close()
        code = 0
    except StackError as exc:
        report.error = f"the stack did not start: {exc} ({exc.process}) {exc.log_tail[-800:]}"
        say(report.error)
    except KeyboardInterrupt:
        report.error = "interrupted"
    finally:
        if bench.generator is not None:
            bench.generator.close()
        stop_stack(config)
        left = running_processes(config)
        report.left_running = sorted(left)
        if not left and not args.keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    report.print_figures(say)
    line = report.final()
    print(json.dumps(line))
    return 0 if code == 0 and line["meets_targets"] else 1


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--brokers", type=int, default=None, help="Kafka nodes (default 3; --quick: 1)")
    p.add_argument(
        "--replicas", type=int, default=None, help="replicas of every service (default 2; --quick: 1)"
    )
    p.add_argument("--duration", type=float, default=None, help="seconds of each measured phase (default 20)")
    p.add_argument("--quick", action="store_true", help="a short smoke run (well under a minute)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--rating-rate", type=float, default=200.0, help="ratings/s of the rating path (target: 200)"
    )
    p.add_argument("--workers", type=int, default=2, help="load generator processes (fixed-request phases)")
    p.add_argument("--keep", action="store_true", help="keep the stack's state folder (logs) afterwards")
    args = p.parse_args(argv)
    args.brokers = args.brokers or (1 if args.quick else 3)
    args.replicas = args.replicas or (1 if args.quick else 2)
    args.duration = args.duration or (1.2 if args.quick else 20.0)
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the bench as Ctrl-C does: the stack is stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    return run(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
