"""`lemma simulate`: a simulated population, scored in process or driven through a running stack."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.local.config import StackConfig
from sim.http_driver import MATCH_WAIT_S, DriveResult, Tick, drive
from sim.plan import HttpPlan, build_plan
from sim.population import SCENARIOS, Population, scenario, simulate

console = Console(highlight=False, soft_wrap=True)


def in_process(population: Population) -> None:
    """Fold the population through the sci rules and print how well the SCI tracks true skill."""
    from sim.evaluation import figures, models
    from sim.inprocess import fold

    folded = fold(population)
    table = Table(
        title=f"SCI quality: {len(population.learners)} learners, {len(population.sessions)} sessions",
        caption="bound: Proof from the posterior median of true skill given the ratings, with the "
        "simulator's true rater parameters; the least error any model can expect, not a model",
    )
    for column in ("model", "Spearman SCI", "Spearman Proof", "Proof MAE", "tier accuracy", "tiers 1/2/3/4"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, model in models().items():
        scored = model(population, folded)
        figs = figures(population, scored)
        tiers = [sum(1 for s in scored.values() if s.tier == t) for t in (1, 2, 3, 4)]
        table.add_row(
            name,
            f"{figs['spearman_sci']:.3f}",
            f"{figs['spearman_proof']:.3f}",
            f"{figs['proof_mae']:.3f}",
            f"{figs['tier_accuracy']:.3f}",
            "/".join(map(str, tiers)),
        )
    console.print(table)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def drive_with_progress(
    plan: HttpPlan, gateway: str, secret: str, concurrency: int = 24, match_wait_s: float = MATCH_WAIT_S
) -> DriveResult:
    with progress_bar() as bar:
        task = bar.add_task("learners and sessions", total=len(plan.learners) + len(plan.sessions))
        tick: Tick = lambda: bar.advance(task)  # noqa: E731
        return asyncio.run(
            drive(plan, gateway, secret, concurrency=concurrency, match_wait_s=match_wait_s, tick=tick)
        )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def summary(result: DriveResult) -> str:
    line = (
        f"{result.learners} learners, {result.sessions} sessions in {result.rounds} rounds "
        f"({result.completed} completed, {result.no_shows} no-shows, {result.ratings} ratings) "
        f"in {result.elapsed_s:.0f} s"
    )
    if result.waits_s:
        line += (
            f"; matched in {_percentile(result.waits_s, 0.5):.1f} s "
            f"(p95 {_percentile(result.waits_s, 0.95):.1f} s)"
        )
    if result.unmatched:
        line += f"; {result.unmatched} tickets unmatched at the end of their round (cancelled)"
    if result.errors:
        line += f"; {result.error_count} failed calls: " + ", ".join(
            f"{k} x{v}" for k, v in result.errors.most_common(5)
        )
    return line


def simulate_command(
    learners: Annotated[int, typer.Option(help="Learners in the population.")] = 300,
    sessions_per_learner: Annotated[int, typer.Option(help="Sessions per learner (rounds).")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same population.")] = 1,
    scenario_name: Annotated[
        str, typer.Option("--scenario", help=f"Rater behaviour: {', '.join(SCENARIOS)}.")
    ] = "biased",
    http: Annotated[bool, typer.Option("--http", help="Drive a running stack through its gateway.")] = False,
    gateway: Annotated[
        str | None, typer.Option(help="Gateway URL (default: the local stack's, else http://127.0.0.1:8000).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Sessions in flight in --http mode.")] = 24,
    match_wait: Annotated[
        float,
        typer.Option(help="--http: how long a round's learners wait for a partner before they cancel (s)."),
    ] = MATCH_WAIT_S,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="The local stack's state folder (for its secret and ports)."),
    ] = None,
) -> None:
    """Simulate learners with hidden true skill, lenient and noisy raters and no-shows.

    Without --http: fold them through the scoring rules in process and print how well the SCI
    tracks true skill. With --http: register them and run their rounds through a running stack,
    with the partners its matching engine chooses.
    """
    if scenario_name not in SCENARIOS:
        raise typer.BadParameter(f"choose one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    population = simulate(
        scenario(scenario_name, learners=learners, sessions_per_learner=sessions_per_learner), seed
    )
    if not http:
        in_process(population)
        return
    from cli.main import local_jwt_secret

    config = StackConfig.resolve(state_dir)
    url = gateway or config.gateway_url
    plan = build_plan(population, run_id=secrets.token_hex(3))
    console.print(
        f"Driving {len(plan.learners)} learners and {len(plan.sessions)} sessions through {url} ..."
    )
    result = drive_with_progress(plan, url, local_jwt_secret(state_dir), concurrency, match_wait)
    console.print(summary(result))
    if result.learners == 0:
        raise typer.Exit(1)
