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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.metrics import largest_component_share, mae, spearman
from services.sci import domain
from sim.inprocess import Folded, fold, stats
from sim.population import Population, scenario, simulate

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


@dataclass(frozen=True)
class Scored:
    proof: float  # 0..40
    sci: float
    tier: int
    true_tier: int


Results = dict[str, dict[str, Any]]
Model = Callable[[Population, Folded], dict[str, Scored]]


def _scored(
    stats_by_learner: dict[str, domain.Stats], population: Population, plain: bool
) -> dict[str, Scored]:
    out: dict[str, Scored] = {}
    for learner_id, s in stats_by_learner.items():
        base = domain.score_from_stats(s, population.end)
        proof = round(domain.PROOF_MAX * s.weighted_sum / s.weight, 2) if plain and s.weight else base.proof
        others = base.practice + base.reliability + base.freshness
        sci = round(others + proof, 2)
        true_proof = domain.PROOF_MAX * population.learners[learner_id].true_unit
        out[learner_id] = Scored(
            proof=proof,
            sci=sci,
            tier=domain.tier_for(sci, s.sessions, s.distinct_raters),
            true_tier=domain.tier_for(round(others + true_proof, 2), s.sessions, s.distinct_raters),
        )
    return out


def plain_mean(population: Population, folded: Folded) -> dict[str, Scored]:
    return _scored(stats(folded), population, plain=True)


def shrunk(population: Population, folded: Folded) -> dict[str, Scored]:
    return _scored(stats(folded), population, plain=False)


def oracle(population: Population, folded: Folded) -> dict[str, Scored]:
    """The bound for any rater correction: each rater's true leniency removed, careless raters ignored.

    A plain mean of the corrected ratings (no prior). Collusion is not undone (a rating does not
    name its ratee here), nor are noise, rounding, clipping or specialty differences.
    """

    def correct(item: domain.EvidenceItem) -> domain.Corrected:
        rater = population.learners[item.rater_id]
        weight = 1e-9 if rater.careless else 1.0
        return domain.Corrected(value=domain.rating_to_unit(item.mean - rater.leniency), weight=weight)

    return _scored(stats(folded, correct), population, plain=True)


def models() -> dict[str, Model]:
    found: dict[str, Model] = {"plain": plain_mean, "shrunk": shrunk, "oracle": oracle}
    try:
        from sim.calibrated import calibrated_model
    except ImportError:  # the calibration is not there yet
        return found
    found["calibrated"] = calibrated_model
    return found


def figures(population: Population, scored: dict[str, Scored]) -> dict[str, float]:
    rated = [i for i in sorted(scored) if scored[i].tier > domain.TIER_CLAIMED]
    truth = [population.learners[i].quality for i in rated]
    shown_top = [i for i in rated if scored[i].tier == domain.TIER_PEER_ENDORSED]
    false_top = [i for i in shown_top if scored[i].true_tier <= domain.TIER_PRACTICING]
    return {
        "spearman_sci": spearman([scored[i].sci for i in rated], truth),
        "spearman_proof": spearman([scored[i].proof for i in rated], truth),
        "proof_mae": mae([scored[i].proof / domain.PROOF_MAX for i in rated], [(q - 1) / 4 for q in truth]),
        "tier_accuracy": sum(scored[i].tier == scored[i].true_tier for i in rated) / len(rated),
        "shown_peer_endorsed": len(shown_top) / len(rated),
        "false_peer_endorsed": len(false_top) / len(shown_top) if shown_top else 0.0,
    }


def tier_steps(folded: Folded, population: Population, model: str) -> dict[str, float]:
    """Replay each learner's evidence session by session (time order): the largest tier move on one session.

    ``ours`` replays with the calibration of the whole period (a hindsight approximation: the
    service would recalibrate as the rating set grows); ``plain`` with the plain mean.
    """
    correct: domain.Corrector = domain.uncalibrated
    prior = domain.DEFAULT_PRIOR
    if model == "calibrated":
        from services.sci.calibration import corrector
        from sim.calibrated import calibration

        found = calibration(folded)
        correct, prior = corrector(found), found.prior()
    worst, jumped, learners = 0, 0, 0
    for items in folded.items.values():
        ordered = domain.canonical(items)
        sessions: list[str] = []
        for item in ordered:
            if item.session_id not in sessions:
                sessions.append(item.session_id)
        tier, biggest = domain.TIER_CLAIMED, 0
        for k in range(1, len(sessions) + 1):
            seen = set(sessions[:k])
            prefix = [i for i in ordered if i.session_id in seen]
            s = domain.summarize(prefix, 0, correct, prior)
            base = domain.score_from_stats(s, prefix[-1].occurred_at)
            proof = round(domain.PROOF_MAX * s.weighted_sum / s.weight, 2) if model == "plain" else base.proof
            sci = round(base.practice + base.reliability + base.freshness + proof, 2)
            now = domain.tier_for(sci, s.sessions, s.distinct_raters)
            biggest, tier = max(biggest, abs(now - tier)), now
        learners += 1
        worst = max(worst, biggest)
        jumped += biggest > 1
    return {"max_tier_step": float(worst), "tier_jump_share": jumped / learners if learners else 0.0}


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
