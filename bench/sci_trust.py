"""How far the SCI can be trusted, on simulated populations with known true skill (held-out seeds).

    .venv/bin/python -m bench.sci_trust [--seeds 101 102 103] [--learners 1000] [--sessions 16 12 8 4]

Per scenario and sessions per learner, averaged over the seeds (none of which the band's
constants were fitted on: those came from seeds 1-3):

- the band: the share of rated learners whose true-skill SCI lies in the shown 90% band, and its
  mean half-width, under the calibration the service computes (``calibrated``) and before a
  skill's first calibration (``uncalibrated``);
- collusion (colluding scenario): colluders caught, honest learners wrongly flagged, and the
  colluders' Proof inflation over their true skill with the defence and without it;
- rater feedback (biased scenario): Proof MAE of the plain mean and of ours when raters are
  shown their bias halfway through and keep half of it, against the same population without.

The last line is one JSON object with every figure, the targets and whether they are met.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import replace
from itertools import pairwise
from typing import Any

from services.sci import domain
from sim.evaluation import calibration, figures, models
from sim.inprocess import fold
from sim.population import scenario, simulate
from sim.trust_figures import band_figures, collusion_figures

SCENARIOS = ("biased", "careless", "colluding", "unbiased")
COVERAGE_AT = (4, 8, 12)  # sessions per learner where the band's coverage is a target
TARGETS: dict[str, float] = {
    "band_coverage_min": 0.87,
    "band_coverage_max": 0.93,
    "collusion_inflation_cut_min": 0.5,
    "honest_flagged_max": 0.01,
}


def mean(values: list[float]) -> float:
    return round(math.fsum(values) / len(values), 4)


def run(seeds: list[int], learners: int, sessions: list[int]) -> dict[str, Any]:
    band: dict[str, dict[str, float]] = {}
    collusion: dict[str, dict[str, float]] = {}
    feedback: dict[str, dict[str, float]] = {}
    for name in SCENARIOS:
        for per_learner in sessions:
            rows: dict[str, list[float]] = {}
            for seed in seeds:
                population = simulate(
                    scenario(name, learners=learners, sessions_per_learner=per_learner), seed
                )
                folded = fold(population)
                calibrated = calibration(folded)
                for label, correction in (
                    ("", calibrated.correction()),
                    ("uncalibrated_", domain.UNCALIBRATED),
                ):
                    for k, v in band_figures(population, folded, correction).items():
                        rows.setdefault(label + k, []).append(v)
                if name == "colluding":
                    for k, v in collusion_figures(population, folded, calibrated).items():
                        rows.setdefault(k, []).append(v)
            key = f"{name}@{per_learner}"
            band[key] = {k: mean(v) for k, v in rows.items() if "band" in k}
            if name == "colluding":
                collusion[key] = {k: mean(v) for k, v in rows.items() if "band" not in k}
    for per_learner in sessions:
        rows = {}
        for seed in seeds:
            for told in (0.0, 0.5):
                settings = replace(
                    scenario("biased", learners=learners, sessions_per_learner=per_learner), feedback=told
                )
                population = simulate(settings, seed)
                folded = fold(population)
                for model in ("plain", "calibrated"):
                    mae = figures(population, models()[model](population, folded))["proof_mae"]
                    rows.setdefault(f"{model}_mae_{'told' if told else 'untold'}", []).append(mae)
        feedback[f"biased@{per_learner}"] = {k: mean(v) for k, v in rows.items()}
    return {"band": band, "collusion": collusion, "feedback": feedback}


def verdict(results: dict[str, Any]) -> dict[str, bool]:
    checks: dict[str, bool] = {}
    for key, row in results["band"].items():
        if int(key.split("@")[1]) in COVERAGE_AT:
            ok = TARGETS["band_coverage_min"] <= row["band_coverage"] <= TARGETS["band_coverage_max"]
            checks[f"{key} band coverage"] = ok
    for name in SCENARIOS:
        widths = [
            row["band_half_width"]
            for key, row in sorted(results["band"].items(), key=lambda kv: int(kv[0].split("@")[1]))
            if key.startswith(name + "@")
        ]
        checks[f"{name} band narrows as sessions grow"] = all(a > b for a, b in pairwise(widths))
    for key, row in results["collusion"].items():
        undefended = row["inflation_undefended"]
        cut = 1 - row["inflation_defended"] / undefended if undefended > 0 else 0.0
        checks[f"{key} collusion inflation cut by half"] = cut >= TARGETS["collusion_inflation_cut_min"]
        checks[f"{key} honest flagged"] = row["honest_flagged"] <= TARGETS["honest_flagged_max"]
    return checks


def tables(results: dict[str, Any]) -> str:
    lines = [
        "| scenario@sessions | band coverage (calibrated / uncalibrated) "
        "| band half-width, SCI points (calibrated / uncalibrated) |",
        "| --- | --- | --- |",
    ]
    for key, row in results["band"].items():
        lines.append(
            f"| {key} | {row['band_coverage']:.3f} / {row['uncalibrated_band_coverage']:.3f} | "
            f"{row['band_half_width']:.1f} / {row['uncalibrated_band_half_width']:.1f} |"
        )
    lines += [
        "",
        "| colluding@sessions | caught | honest flagged | Proof inflation defended / undefended |",
        "| --- | --- | --- | --- |",
    ]
    for key, row in results["collusion"].items():
        lines.append(
            f"| {key} | {row['colluders_caught']:.3f} | {row['honest_flagged']:.4f} | "
            f"{row['inflation_defended']:.2f} / {row['inflation_undefended']:.2f} |"
        )
    lines += [
        "",
        "| biased@sessions | Proof MAE plain untold / told | ours untold / told |",
        "| --- | --- | --- |",
    ]
    for key, row in results["feedback"].items():
        lines.append(
            f"| {key} | {row['plain_mae_untold']:.4f} / {row['plain_mae_told']:.4f} | "
            f"{row['calibrated_mae_untold']:.4f} / {row['calibrated_mae_told']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--sessions", type=int, nargs="+", default=[16, 12, 8, 4])
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.seeds, args.learners, args.sessions)
    checks = verdict(results)
    print(f"{args.learners} learners, seeds {args.seeds} (the band was fitted on seeds 1-3)")
    print(tables(results))
    for check, ok in checks.items():
        if not ok:
            print(f"MISSED: {check}")
    print(
        json.dumps(
            {
                "bench": "sci_trust",
                "learners": args.learners,
                "seeds": args.seeds,
                "machine": f"{platform.machine()} Python {platform.python_version()}",
                "seconds": round(time.perf_counter() - started, 1),
                "results": results,
                "targets": {**TARGETS, "band_coverage_at": list(COVERAGE_AT)},
                "missed": [c for c, ok in checks.items() if not ok],
                "meets_targets": all(checks.values()),
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
