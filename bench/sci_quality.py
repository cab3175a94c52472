"""SCI quality on simulated populations with known true skill: ours beside a plain mean and the bound.

    .venv/bin/python -m bench.sci_quality [--seeds 101 102 103] [--learners 1000]
        [--sessions 16 12 8 4] [--path-at 16 12 8 4] [--jobs 2]
    .venv/bin/python -m bench.sci_quality --tune     # seeds 1-3, the ones the constants were tuned on

For each scenario (biased, careless, colluding, unbiased control), sessions per learner and
seed, the simulator (in-process mode) folds a population through the sci domain rules and each
model scores every learner (``sim.evaluation``): ours (``calibrated``: the service's score with
the calibration over all ratings), ``plain`` (Proof = 40 x the plain mean) and ``bound`` (Proof
from the posterior median of true quality given the ratings, under the simulator's own model
and true parameters: ``sim.bound``); ``shrunk`` (uncalibrated) is in the JSON. At ``--path-at``
(default: every horizon) the population's events are also replayed through the fold and the
calibration job, as the service runs them, for the tier moves a reader sees (``sim.tier_path``);
every move of more than one tier is printed with its seed, learner and cause.

Figures are averaged over the seeds (the largest tier step: the largest). By default the seeds
are 101-103, which no constant was tuned on (those were tuned on 1-3: ``--tune``). The table is
printed in markdown, each target as met or MISSED, and the last line is one JSON object with
every figure, the targets, the checks, the missed ones and ``meets_targets``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from bench.sci_quality_checks import OURS, TARGETS, not_measured, path_settings, table, verdict
from bench.sci_quality_run import run
from bench.seeded import add_seed_arguments, chosen_seeds, seeds_line


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_seed_arguments(parser)
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[16, 12, 8, 4])
    parser.add_argument(
        "--path-at",
        type=int,
        nargs="*",
        default=None,
        help="replay the tier path here (default: every --sessions)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="populations run side by side (processes)")
    args = parser.parse_args()
    seeds, held_out = chosen_seeds(parser, args)
    path_at = args.sessions if args.path_at is None else args.path_at
    started = time.perf_counter()
    results = run(seeds, args.learners, args.sessions, path_at, args.jobs)
    seconds = round(time.perf_counter() - started, 1)
    checks = verdict(results)
    notes = not_measured(results, path_at)
    print(f"ours: {OURS}; " + seeds_line(args.learners, seeds, held_out, seconds, args.jobs))
    print(table(results))
    for check in checks:
        print(check.line())
    for note in notes:
        print(f"not measured: {note}")
    for key, row in results.items():
        for seed, learner, before, after, on_recalibration in row.get("path", {}).get("jumps", []):
            cause = "a recalibration" if on_recalibration else "a fold event"
            print(f"tier jump: {key} seed {seed}: {learner} {before} -> {after} on {cause}")
    print(
        json.dumps(
            {
                "bench": "sci_quality",
                "ours": OURS,
                "learners": args.learners,
                "seeds": seeds,
                "held_out": held_out,
                "sessions": args.sessions,
                "tier_path": path_settings(path_at),
                "jobs": args.jobs,
                "machine": f"{platform.machine()} Python {platform.python_version()}",
                "seconds": seconds,
                "results": results,
                "targets": TARGETS,
                "checks": {c.name: c.to_json() for c in checks},
                "not_measured": notes,
                "missed": [c.name for c in checks if not c.ok],
                "meets_targets": all(c.ok for c in checks),
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
