"""SCI depth per rubric dimension on simulated populations whose true level per dimension is known.

    .venv/bin/python -m bench.sci_rubric [--seeds 101 102 103] [--learners 1000]
        [--sessions 4 8 12] [--jobs 2]
    .venv/bin/python -m bench.sci_rubric --tune     # seeds 1-3, the ones the constants were tuned on

Scenarios: ``rubric`` (learners' true quality differs by dimension, sd 0.6), ``rubric-severity``
(also raters harsher on some dimensions than on others, sd 0.4) and the control ``biased`` (no
per-dimension truth: every dimension is the learner's overall quality). For each, sessions per
learner and seed, the simulator folds a population through the sci domain rules, the service's
calibration runs over all its ratings, and every learner with rubric scores gets a level (1..5)
on each dimension from each model:

- ``ours``: the service's ``domain.score(...).rubric`` under the calibration's correction;
- ``no_severity``: the same with every rater's severity dropped;
- ``plain``: the plain mean of the scores received on that dimension;
- ``overall_only``: the learner's calibrated overall level, 1 + 4 Proof / 40, on every dimension;
- ``reference``: ours' overall level plus the posterior mean of the learner's deviation on the
  dimension given the TRUE raters' severity and noise and the TRUE spread of deviations, under
  the simulator's model without its clipping (``bench.sci_rubric_figures.posterior_deviation``).
  Not a model the service could run, and not a bound: it ignores clipping to 1..5, and shares
  ours' overall level, so it measures what estimating the deviations costs, not the overall.

Figures (averaged over the seeds; Proof differences summed): the depth MAE against the true
level (``Learner.dimension_quality``) over every rated learner and dimension; the rank
correlation per dimension; the correlation of each model's deviations (level less overall) with
the true ones; the severity the calibration recovers (correlation with the true severities, and
the share of raters given any); and how many learners' Proof (and anything else of the score but
the depth) differs with and without severity. The tables are printed in markdown, each target
as met or MISSED and by how much, and the last line is one JSON object with every figure, the
targets, the checks, the missed ones and ``meets_targets``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from bench.sci_rubric_checks import TARGETS, table, verdict
from bench.sci_rubric_run import MODELS, SCENARIOS, run
from bench.seeded import add_seed_arguments, chosen_seeds, seeds_line


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_seed_arguments(parser)
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--jobs", type=int, default=2, help="populations run side by side (processes)")
    args = parser.parse_args()
    seeds, held_out = chosen_seeds(parser, args)
    started = time.perf_counter()
    results = run(seeds, args.learners, sorted(args.sessions), args.jobs)
    seconds = round(time.perf_counter() - started, 1)
    checks = verdict(results)
    print(seeds_line(args.learners, seeds, held_out, seconds, args.jobs))
    print(table(results))
    for check in checks:
        print(check.line())
    print(
        json.dumps(
            {
                "bench": "sci_rubric",
                "scenarios": list(SCENARIOS),
                "models": list(MODELS),
                "learners": args.learners,
                "seeds": seeds,
                "held_out": held_out,
                "sessions": sorted(args.sessions),
                "jobs": args.jobs,
                "machine": f"{platform.machine()} Python {platform.python_version()}",
                "seconds": seconds,
                "results": results,
                "targets": TARGETS,
                "checks": {c.name: c.to_json() for c in checks},
                "missed": [c.name for c in checks if not c.ok],
                "meets_targets": all(c.ok for c in checks),
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
