"""The runs of ``bench.sci_quality``: one population per scenario, sessions per learner and seed,
scored by each model, its tier path replayed where asked; figures averaged over the seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.seeded import run_all
from sim.evaluation import bound, calibrated_with, calibration, figures, plain_mean, shrunk
from sim.inprocess import fold
from sim.metrics import largest_component_share
from sim.population import scenario, simulate
from sim.tier_path import tier_path

SCENARIOS = ("biased", "careless", "colluding", "unbiased")
MODELS = ("calibrated", "plain", "bound", "shrunk")  # ours first

#: One averaged row: per model its figures, "path" (tier moves, where replayed), "connectivity".
Row = dict[str, Any]
Results = dict[str, Row]


@dataclass(frozen=True)
class Task:
    scenario: str
    sessions: int
    seed: int
    learners: int
    path: bool  # replay the tier path on the service's real path too

    @property
    def key(self) -> str:
        return f"{self.scenario}@{self.sessions}"


def one(task: Task) -> dict[str, Any]:
    """Every figure of one population."""
    population = simulate(
        scenario(task.scenario, learners=task.learners, sessions_per_learner=task.sessions), task.seed
    )
    folded = fold(population)
    edges = [(r.rater_id, r.ratee_id) for r in population.ratings]
    out: dict[str, Any] = {
        "connectivity": largest_component_share(population.learners, edges),
        "calibrated": figures(population, calibrated_with(population, folded, calibration(folded))),
        "plain": figures(population, plain_mean(population, folded)),
        "bound": figures(population, bound(population, folded)),
        "shrunk": figures(population, shrunk(population, folded)),
    }
    if task.path:
        path = tier_path(population)
        out["path"] = {**path.figures(), "jumps": [[task.seed, *jump] for jump in path.jumps]}
    return out


def _mean(values: list[float]) -> float:
    return round(math.fsum(values) / len(values), 4)


def average(runs: list[dict[str, Any]]) -> Row:
    """The seeds' figures averaged; a figure some seeds lack (nothing to measure there) over the
    seeds that have it; the largest tier step is the largest over the seeds, and every move of
    more than one tier is listed as [seed, learner, tier before, tier after, on a recalibration]."""
    row: Row = {"connectivity": _mean([r["connectivity"] for r in runs])}
    for model in MODELS:
        keys = sorted({k for r in runs for k in r[model]})
        row[model] = {k: _mean([r[model][k] for r in runs if k in r[model]]) for k in keys}
    paths = [r["path"] for r in runs if "path" in r]
    if paths:
        summary: dict[str, Any] = {
            k: _mean([p[k] for p in paths]) for k in paths[0] if k != "jumps" and not k.startswith("max_")
        }
        summary.update({k: max(p[k] for p in paths) for k in paths[0] if k.startswith("max_")})
        summary["jumps"] = [j for p in paths for j in p["jumps"]]
        row["path"] = summary
    return row


def run(seeds: list[int], learners: int, sessions: list[int], path_at: list[int], jobs: int = 1) -> Results:
    """Every scenario at every sessions per learner, averaged over ``seeds``; the tier path replayed
    at ``path_at``. ``jobs`` > 1: populations in that many processes (the slowest first)."""
    tasks = [
        Task(name, per_learner, seed, learners, per_learner in path_at)
        for name in SCENARIOS
        for per_learner in sessions
        for seed in seeds
    ]
    outputs = run_all(tasks, one, jobs, first=lambda task: (not task.path, -task.sessions))
    grouped: dict[str, list[dict[str, Any]]] = {}
    for task, output in zip(tasks, outputs, strict=True):
        grouped.setdefault(task.key, []).append(output)
    return {key: average(runs) for key, runs in grouped.items()}
