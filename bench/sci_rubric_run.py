"""The runs of ``bench.sci_rubric``: one population per scenario, sessions per learner and seed,
every learner's depth per rubric dimension by each model; figures averaged over the seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from bench.sci_rubric_figures import (
    Received,
    clipped,
    depth_mae,
    deviation_correlation,
    differences,
    plain_levels,
    posterior_deviation,
    severity_recovery,
    spearman_by_dimension,
)
from bench.seeded import run_all
from services.sci import domain
from services.sci.domain.rubric import LEVEL_DIGITS
from sim.evaluation import calibration, facts
from sim.inprocess import Folded, fold
from sim.population import Population, scenario, simulate

SCENARIOS = ("rubric", "rubric-severity", "biased")  # biased: the control, no per-dimension truth
#: ours first; ``reference``: the posterior mean under the true parameters (not a model the service could run)
MODELS = ("ours", "no_severity", "plain", "overall_only", "reference")
SUMMED = frozenset({"proof_differences", "score_differences"})  # counts: summed over the seeds, not averaged

Levels = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Task:
    scenario: str
    sessions: int
    seed: int
    learners: int

    @property
    def key(self) -> str:
        return f"{self.scenario}@{self.sessions}"


def received(population: Population, items: list[domain.EvidenceItem]) -> list[Received]:
    """What the reference knows of a learner's ratings: each rater's true severity and noise
    (careless raters' ratings left out: they say nothing)."""
    out: list[Received] = []
    for item in items:
        rater = population.learners[item.rater_id]
        if item.scores and not rater.careless:
            out.append(Received(item.scores, rater.severity, rater.noise_sd**2))
    return out


def levels(population: Population, folded: Folded, correction: domain.Correction) -> dict[str, Any]:
    """Every rated learner's true level per dimension, each model's, and Proof with and without
    severity (``ours`` uses ``correction``, ``no_severity`` the same without any severity)."""
    without = replace(correction, severity={})
    dimension_sd = population.settings.dimension_sd
    by_model: dict[str, Levels] = {m: {} for m in MODELS}
    truth: Levels = {}
    overall: dict[str, float] = {}
    proof: dict[str, dict[str, float]] = {"with": {}, "without": {}}
    rest: dict[str, dict[str, Any]] = {"with": {}, "without": {}}
    for i, f in facts(folded).items():
        if not f.rubric:
            continue
        learner = population.learners[i]
        ours = domain.score(f, population.end, correction, learner_id=i)
        bare = domain.score(f, population.end, without, learner_id=i)
        proof["with"][i], proof["without"][i] = ours.proof, bare.proof
        rest["with"][i], rest["without"][i] = replace(ours, rubric=()), replace(bare, rubric=())
        overall[i] = 1.0 + 4.0 * ours.proof / domain.PROOF_MAX
        truth[i] = {d.dimension: learner.dimension_quality(d.dimension) for d in ours.rubric}
        deviation = posterior_deviation(received(population, folded.items[i]), dimension_sd)
        by_model["ours"][i] = {d.dimension: d.level for d in ours.rubric}
        by_model["no_severity"][i] = {d.dimension: d.level for d in bare.rubric}
        # plain and overall-only as a service showing them would: to the tenth, as ours is shown
        plain = plain_levels(item.scores for item in folded.items[i] if item.scores)
        by_model["plain"][i] = {d: round(v, LEVEL_DIGITS) for d, v in plain.items()}
        by_model["overall_only"][i] = dict.fromkeys(truth[i], round(overall[i], LEVEL_DIGITS))
        by_model["reference"][i] = {d: clipped(overall[i] + deviation.get(d, 0.0)) for d in truth[i]}
    return {"models": by_model, "truth": truth, "overall": overall, "proof": proof, "rest": rest}


def one(task: Task) -> dict[str, Any]:
    """Every figure of one population."""
    population = simulate(
        scenario(task.scenario, learners=task.learners, sessions_per_learner=task.sessions), task.seed
    )
    folded = fold(population)
    found = calibration(folded)
    correction = found.correction()
    got = levels(population, folded, correction)
    truth, overall = got["truth"], got["overall"]
    models: dict[str, dict[str, float | None]] = {}
    by_dimension: dict[str, dict[str, float]] = {}
    for model, found_levels in got["models"].items():
        by_dimension[model] = spearman_by_dimension(found_levels, truth)
        models[model] = {
            "mae": depth_mae(found_levels, truth),
            "spearman": math.fsum(by_dimension[model].values()) / len(by_dimension[model]),
            "deviation_correlation": deviation_correlation(found_levels, overall, truth),
        }
    raters = {item.rater_id for items in folded.items.values() for item in items if item.scores}
    true_severity = {r: population.learners[r].severity for r in raters}
    rubric = found.rubric
    return {
        "learners": len(truth),
        "models": models,
        "spearman_by_dimension": by_dimension,
        **severity_recovery(correction.severity, true_severity, raters),
        "raters": len(raters),
        "proof_differences": differences(got["proof"]["with"], got["proof"]["without"]),
        "score_differences": differences(got["rest"]["with"], got["rest"]["without"]),
        "calibration": {
            "rubric_prior": rubric.prior,
            "noise_variance": rubric.noise_variance,
            "depth_variance": rubric.depth_variance,
            "severity_variance": rubric.severity_variance,
        },
    }


def average(runs: list[Any], key: str = "") -> Any:
    """The seeds' figures averaged (to 4 decimals), key by key; the counts in ``SUMMED`` summed; a
    figure some seeds lack (None: nothing to measure there) over the seeds that have it."""
    if isinstance(runs[0], dict):
        keys = sorted({k for r in runs for k in r})
        return {k: average([r[k] for r in runs if k in r], k) for k in keys}
    values = [float(v) for v in runs if v is not None]
    if not values:
        return None
    if key in SUMMED:
        return int(sum(values))
    return round(math.fsum(values) / len(values), 4)


def run(seeds: list[int], learners: int, sessions: list[int], jobs: int = 1) -> dict[str, Any]:
    """Every scenario at every sessions per learner, averaged over ``seeds``. ``jobs`` > 1:
    populations in that many processes (the longest first)."""
    tasks = [
        Task(name, per_learner, seed, learners)
        for name in SCENARIOS
        for per_learner in sessions
        for seed in seeds
    ]
    outputs = run_all(tasks, one, jobs, first=lambda task: -task.sessions)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for task, output in zip(tasks, outputs, strict=True):
        grouped.setdefault(task.key, []).append(output)
    return {key: average(group) for key, group in grouped.items()}
