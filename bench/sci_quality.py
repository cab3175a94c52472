"""SCI quality on simulated populations with known true skill: our model beside a plain mean.

    .venv/bin/python -m bench.sci_quality [--seeds 3] [--learners 1000] [--sessions 12 8 4]

For each scenario (biased, careless, colluding, unbiased control), sessions per learner and
seed, the simulator (in-process mode) folds a population through the sci domain rules, and
each model scores every learner:

- ``plain``: the baseline, Proof = 40 x the plain mean of the ratings (no prior, no calibration);
- ``shrunk``: the current domain model, uncalibrated (ratings as given, prior of 3 pseudo-ratings);
- ``oracle``: what a perfect rater correction could reach (see ``oracle``), a bound, not a model;
- ``calibrated``: the domain model with the rater calibration of ``services.sci.calibration``
  estimated from all ratings in the skill.

Figures, averaged over seeds: Spearman of SCI and of Proof with true skill, MAE of Proof/40
against (q - 1)/4, tier accuracy against the true tier (the tier the learner would get with
Proof = 40 (q - 1)/4 and the model's other parts), the share of learners shown Peer-endorsed
whose true tier is 2 or lower, and the share of learners in the largest component of the
who-rated-whom graph. The last line is one JSON object with every figure and the verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from typing import Any

from sim.evaluation import figures, models, tier_steps
from sim.inprocess import fold
from sim.metrics import largest_component_share
from sim.population import scenario, simulate

SCENARIOS = ("biased", "careless", "colluding", "unbiased")
BIASED = ("biased", "careless", "colluding")
TARGETS = {
    "spearman_sci_at_8": 0.90,
    "spearman_sci_at_4": 0.80,
    "mae_ratio_biased_max": 0.70,
    "mae_ratio_unbiased_max": 1.05,
    "false_peer_endorsed_max": 0.02,
    "max_tier_step": 1,
}


Results = dict[str, dict[str, Any]]


def run(seeds: int, learners: int, sessions: list[int]) -> Results:
    results: Results = {}
    for name in SCENARIOS:
        for per_learner in sessions:
            runs: dict[str, list[dict[str, float]]] = {}
            connectivity: list[float] = []
            for seed in range(1, seeds + 1):
                population = simulate(
                    scenario(name, learners=learners, sessions_per_learner=per_learner), seed
                )
                folded = fold(population)
                edges = [(r.rater_id, r.ratee_id) for r in population.ratings]
                connectivity.append(largest_component_share(population.learners, edges))
                for model_name, model in models().items():
                    figs = figures(population, model(population, folded))
                    if model_name in ("plain", "calibrated"):
                        figs.update(tier_steps(folded, population, model_name))
                    runs.setdefault(model_name, []).append(figs)
            averaged = {
                m: {k: round(math.fsum(r[k] for r in rs) / len(rs), 4) for k in rs[0]}
                for m, rs in runs.items()
            }
            results[f"{name}@{per_learner}"] = {
                "connectivity": round(math.fsum(connectivity) / len(connectivity), 4),
                **averaged,
            }
    return results


def verdict(results: Results, ours: str) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for key, row in results.items():
        name, per_learner = key.split("@")
        mine, plain = row[ours], row["plain"]
        assert isinstance(mine, dict) and isinstance(plain, dict)
        if per_learner in ("8", "4"):
            checks[f"{key} spearman"] = mine["spearman_sci"] >= TARGETS[f"spearman_sci_at_{per_learner}"]
        limit = TARGETS["mae_ratio_biased_max" if name in BIASED else "mae_ratio_unbiased_max"]
        checks[f"{key} mae"] = mine["proof_mae"] <= limit * plain["proof_mae"]
        checks[f"{key} false peer-endorsed"] = (
            mine["false_peer_endorsed"] <= TARGETS["false_peer_endorsed_max"]
        )
        if "max_tier_step" in mine:
            checks[f"{key} tier step"] = mine["max_tier_step"] <= TARGETS["max_tier_step"]
    return checks


def table(results: Results, names: list[str]) -> str:
    cols = ("spearman_sci", "spearman_proof", "proof_mae", "tier_accuracy", "false_peer_endorsed")
    head = "| scenario@sessions | conn. | " + " | ".join(f"{c} ({'/'.join(names)})" for c in cols)
    head += " | max tier step (share > 1) (plain/calibrated) |"
    lines = [head, "|" + " --- |" * (len(cols) + 3)]
    for key, row in results.items():
        cells = []
        for c in cols:
            values = []
            for m in names:
                figs = row[m]
                assert isinstance(figs, dict)
                values.append(f"{figs[c]:.3f}")
            cells.append(" / ".join(values))
        steps = [
            f"{row[m]['max_tier_step']:.0f} ({row[m]['tier_jump_share']:.3f})"
            for m in names
            if "max_tier_step" in row[m]
        ]
        cells.append(" / ".join(steps))
        lines.append(f"| {key} | {row['connectivity']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[12, 8, 4])
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.seeds, args.learners, args.sessions)
    names = list(models())
    ours = "calibrated" if "calibrated" in names else "shrunk"
    checks = verdict(results, ours)
    print(f"models: {', '.join(names)} (ours: {ours}); {args.learners} learners, {args.seeds} seeds")
    print(table(results, names))
    for check, ok in checks.items():
        if not ok:
            print(f"MISSED: {check}")
    print(
        json.dumps(
            {
                "bench": "sci_quality",
                "ours": ours,
                "learners": args.learners,
                "seeds": args.seeds,
                "machine": f"{platform.machine()} Python {platform.python_version()}",
                "seconds": round(time.perf_counter() - started, 1),
                "results": results,
                "targets": TARGETS,
                "missed": [c for c, ok in checks.items() if not ok],
                "meets_targets": all(checks.values()),
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
