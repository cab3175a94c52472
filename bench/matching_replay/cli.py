"""The options, and one run: broker, matchers, drive, verify, (rebuild), report, the JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.matching_replay
from bench.broker_process import started_broker
from bench.matching_replay.driver import drive
from bench.matching_replay.matchers import INSTANCES, Matcher, busy_on, start_matcher, worst_loop_lag
from bench.matching_replay.report import TARGET, figures, report
from bench.matching_replay.verification import rebuild, verify
from tests.support.processes import stop_process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=bench.matching_replay.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=400.0, help="ticket requests per second (steady)")
    parser.add_argument("--learners", type=int, default=5_000)
    parser.add_argument("--max-open", type=int, default=1_000, help="open tickets at most (a closed loop)")
    parser.add_argument("--ttl", type=float, default=30.0, help="LEMMA_MATCHING_TTL_S of the matchers")
    parser.add_argument("--session-s", type=float, default=1.0, help="mean simulated session length")
    parser.add_argument("--cancel-within", type=float, default=0.2, help="a cancel follows in 0..this s")
    parser.add_argument("--stall-s", type=float, default=90.0, help="give up when nothing closes this long")
    parser.add_argument(
        "--rebuild", action="store_true", help="then fold the whole log into a third, empty store"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs, stores)")
    args = parser.parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    workdir = Path(tempfile.mkdtemp(prefix="lemma-matching-replay-"))
    matchers: list[Matcher] = []
    ok = False
    try:
        with started_broker(workdir) as kafka:
            bootstrap = kafka.bootstrap
            try:
                for name in INSTANCES:
                    matchers.append(
                        start_matcher(name, bootstrap, workdir / name, args.ttl, workdir / "store")
                    )
                run = asyncio.run(drive(args, bootstrap, matchers))
                check = asyncio.run(verify(bootstrap, matchers, run["driver"]))
                for m in matchers:
                    check["busy_on_not_ended"][m.instance] = busy_on(
                        m.db, check["not_ended_in_store"][m.instance]
                    )
                broker_figures: dict[str, Any] = kafka.figures()
                loop_lag = {m.instance: asyncio.run(worst_loop_lag(m)) for m in matchers}
                for m in matchers:  # the rebuild folds the whole log alone in the one group
                    stop_process(m.proc)
                rebuilt = asyncio.run(rebuild(bootstrap, workdir, args, check)) if args.rebuild else None
            finally:
                for m in matchers:
                    stop_process(m.proc)
        checks = check["checks"] | {"drained": not run["stalled"] and not run["driver"].anomalies}
        out = figures(args, run, check)
        out["learners_refused_as_busy_in_store"] = check["busy_on_not_ended"]
        out["matcher_worst_loop_lag_s"] = loop_lag
        out["broker"] = broker_figures
        if rebuilt is not None:
            out["rebuild"] = rebuilt
            checks["rebuilt_store_agrees_with_log"] = rebuilt["agree"]
            checks["rebuilt_store_saw_every_session_end"] = rebuilt["not_ended"] == 0
        report(args, out, checks)
        for anomaly in run["driver"].anomalies[:10]:
            print(f"  driver anomaly: {anomaly}")
        missed = [name for name, passed in checks.items() if not passed]
        ok = not missed
        print(
            json.dumps(
                {"benchmark": "matching_replay", **out, "checks": checks, "target": TARGET}
                | {"meets_targets": ok, "missed": missed}
            )
        )
        return 0
    except KeyboardInterrupt:
        print("interrupted: the broker and the matching processes are stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep or not ok:
            print(f"state kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
