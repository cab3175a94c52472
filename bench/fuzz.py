"""Schemathesis against every service's OpenAPI document, on a stack of its own.

    .venv/bin/python -m bench.fuzz                         # 200 examples per operation, seed 1
    .venv/bin/python -m bench.fuzz --max-examples 20 --seed 7

The bench starts its own stack (one broker, one process per service, on free ports in a
temporary folder) and stops it at the end, whatever happens. It seeds a scene through the
gateway (``bench.fuzz_scene``), then runs Schemathesis against each service in turn
(``bench.fuzz_run``: examples, coverage, fuzzing and stateful phases, a fixed seed, derandomized),
then cancels what the fuzzer left waiting and checks every service caught up with what it
wrote. It prints each operation's requests and statuses, every finding with a curl command that
reproduces it, and, last, one JSON line: the figures, the targets (no 5xx, no response breaking
its document, no request without an answer) and whether they are met. The suite runs the same
with a few examples per operation on the end-to-end stack (``tests/e2e/test_service_openapi_fuzz.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fuzz_report import FuzzTally
from bench.fuzz_run import FuzzOptions, fuzz_services
from bench.fuzz_scene import Scene, Settled, describe, seed_scene, settle
from deploy.local.stack import StackConfig, StackError, running_processes, start_stack, stop_stack


@dataclass
class FuzzResult:
    scene: Scene
    tally: FuzzTally
    settled: Settled
    seconds: float

    def to_json(self) -> dict[str, Any]:
        figures = self.tally.to_json()
        checks = {**figures.pop("checks"), "every_service_caught_up": self.settled.caught_up}
        return {
            **figures,
            "scene": describe(self.scene),
            "left_waiting_cancelled": len(self.settled.cancelled),
            "seconds_total": round(self.seconds, 1),
            "findings": [" ".join(f) for f in self.tally.unique_findings()],
            "checks": checks,
            "meets_targets": all(checks.values()),
        }


def fuzz_stack(config: StackConfig, options: FuzzOptions) -> FuzzResult:
    """Seed, fuzz every service of the running ``config`` stack, settle."""
    started = time.monotonic()
    secret = (config.state_dir / "jwt-secret").read_text().strip()
    urls = {service: config.service_url(service) for service in config.services}
    scene = seed_scene(config.gateway_url, urls, secret, run=uuid.uuid4().hex[:6])
    tally, learned = fuzz_services(urls, scene, options)
    settled = settle(config.gateway_url, scene, learned.tickets, learned.tokens)
    return FuzzResult(scene, tally, settled, time.monotonic() - started)


def say(text: str) -> None:
    print(f"[fuzz] {text}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--max-examples", type=int, default=200, help="examples per operation and phase")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=10, help="the most requests of one stateful scenario")
    p.add_argument("--keep", action="store_true", help="keep the stack's state folder (logs) afterwards")
    return p.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the bench as Ctrl-C does: the stack is stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse(argv)
    options = FuzzOptions(max_examples=args.max_examples, seed=args.seed, max_steps=args.max_steps)
    state = Path(tempfile.mkdtemp(prefix="lemma-fuzz-"))
    config = StackConfig.with_free_ports(state)
    line: dict[str, Any] = {"bench": "fuzz", "max_examples": args.max_examples, "seed": args.seed}
    try:
        began = time.monotonic()
        say(f"starting the stack in {state}")
        start_stack(config, ready_timeout=180.0)
        line["stack_start_s"] = round(time.monotonic() - began, 1)
        say(f"up in {line['stack_start_s']} s; fuzzing {len(config.services)} services")
        result = fuzz_stack(config, options)
        for text in result.tally.lines():
            say(text)
        line.update(result.to_json())
    except StackError as exc:
        line.update(
            error=f"the stack did not start: {exc} ({exc.process}) {exc.log_tail[-800:]}", meets_targets=False
        )
    except KeyboardInterrupt:
        line.update(error="interrupted", meets_targets=False)
    except Exception as exc:  # the last line still says what happened; the stack is still stopped
        traceback.print_exc()
        line.update(error=repr(exc), meets_targets=False)
    finally:
        stop_stack(config)
        left = sorted(running_processes(config))
        line["left_running"] = left
        if not left and not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(line), flush=True)
    return 0 if line.get("meets_targets") else 1


if __name__ == "__main__":
    sys.exit(main())
