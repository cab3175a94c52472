"""`lemma stack up|down|status`: the local stack that `make run` / `make stop` drive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.local.broker import kafka_version
from deploy.local.config import MAX_BROKERS, MAX_REPLICAS
from deploy.local.prometheus import url as prometheus_url
from deploy.local.stack import (
    StackConfig,
    StackError,
    all_running,
    process_names,
    running_processes,
    stack_status,
    start_stack,
    stop_stack,
)
from deploy.local.status import COLUMNS, status_json, table_rows

app = typer.Typer(help="Start, stop and inspect the local stack (state in var/ by default).")
console = Console(highlight=False, soft_wrap=True)

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Folder of the stack's state (default: LEMMA_STATE_DIR or var/)."),
]


def _say(message: str) -> None:
    console.print(f"  [dim]{message}[/dim]")


def _print_urls(config: StackConfig) -> None:
    gw = config.gateway_url
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("service")
    table.add_column("direct (API docs)" if config.replicas == 1 else "replicas (API docs)")
    table.add_column("through the gateway")
    for name in config.services:
        direct = "\n".join(f"{config.service_url(name, n)}/docs" for n in range(1, config.replicas + 1))
        table.add_row(name, direct, f"{gw}/{name}/docs")
    console.print()
    console.print(
        f"[bold green]Lemma is running.[/bold green] Gateway: [bold]{gw}[/bold]  (links to every API's docs)"
    )
    from deploy.local.seed import sample_passport

    sample = sample_passport(config) or f"{gw}/passports/<handle>"
    console.print(f"Pages: {gw}/skills/machine-learning (skill page, waitlist form), {sample} (a passport)")
    console.print(table)
    if config.brokers == 1:
        where = f"its log: {config.kafka_home / 'data'}"
    else:
        where = (
            f"{config.brokers} KRaft nodes, topics replicated {config.replication_factor}x "
            f"with min ISR {config.min_insync_replicas}; logs in {config.kafka_home}/node-<n>/data"
        )
    console.print(f"Kafka (Apache Kafka {kafka_version()}): {config.kafka_bootstrap}   {where}")
    if config.prometheus:
        prom = prometheus_url(config)
        console.print(
            f"Prometheus: {prom}  (alerts: {prom}/alerts; consumer lag: {prom}/graph?g0.expr="
            "sum%20by%20(service%2C%20consumer)%20(lemma_consumer_lag)&g0.tab=0)"
        )
    console.print(f"Logs: {config.log_dir}/<process>.log   State: {config.state_dir}")
    console.print(
        "A supervisor restarts any process that exits; "
        "[bold].venv/bin/lemma stack status[/bold] (--json) shows each with its restarts"
    )
    console.print("Token for a learner: [bold].venv/bin/lemma token <learner_id>[/bold] (add --role ops)")
    console.print("Stop everything: [bold]make stop[/bold]")


@app.command()
def up(
    state_dir: StateDirOption = None,
    gateway_port: Annotated[
        int | None,
        typer.Option(
            help="Gateway port (default: LEMMA_GATEWAY_PORT, else the one in stack.json, else 8000)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be ready.")] = 60.0,
    seed: Annotated[
        bool,
        typer.Option("--seed/--no-seed", help="Seed a demo population on an empty store (or LEMMA_SEED=0)."),
    ] = True,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_BROKERS,
            help="Kafka nodes: 1, or 3 for a KRaft cluster with topics replicated 3x, min ISR 2 "
            "(default: as in stack.json, else 1).",
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_REPLICAS,
            help="Processes of every service behind the gateway (default: as in stack.json, else 1).",
        ),
    ] = None,
    prometheus: Annotated[
        bool | None,
        typer.Option(
            "--prometheus/--no-prometheus",
            help="Start Prometheus beside the stack, scraping every replica with the alert rules "
            "production ships (default: as in stack.json, else not).",
        ),
    ] = None,
) -> None:
    """Start Apache Kafka, the services and the gateway (and Prometheus, when asked); wait
    until all are ready; then a supervisor that restarts any of them that exits.

    Ports, brokers and replicas are kept in <state>/stack.json: edit it to move a port,
    delete it for the defaults.
    """
    config = StackConfig.resolve(
        state_dir, gateway_port, brokers=brokers, replicas=replicas, prometheus=prometheus
    )
    live = all_running(config)
    if live:
        saved = StackConfig.load(config.state_dir) or config
        if saved.reshaped(brokers, replicas, prometheus) != saved:
            with_prometheus = "with" if saved.prometheus else "without"
            console.print(
                f"[bold red]A stack of {saved.brokers} broker(s) and {saved.replicas} replica(s), "
                f"{with_prometheus} Prometheus, runs from {saved.state_dir}.[/bold red] Stop it first "
                "(make stop), then start the new shape."
            )
            raise typer.Exit(1)
        live = running_processes(saved)
        if len(live) == len(process_names(saved)):
            console.print(f"The stack is already running (state in {saved.state_dir}).")
            _print_urls(saved)
            return
        missing = [n for n in process_names(saved) if n not in live]
        console.print(f"Part of the stack runs; starting the rest: {', '.join(missing)}")
        config = saved
    shape = f"{config.brokers} Kafka node(s), {config.replicas} replica(s) of each service"
    console.print(f"Starting the local stack ({shape}; state in {config.state_dir}) ...")
    try:
        start_stack(config, ready_timeout=timeout, say=_say)
    except StackError as exc:
        console.print(f"[bold red]The stack did not start:[/bold red] {exc}")
        if exc.log_tail:
            log = config.log_dir / f"{exc.process}.log"
            console.print(f"[bold]Last lines of {log}:[/bold]")
            console.print(exc.log_tail, markup=False, highlight=False)
        console.print("Everything this command started has been stopped.")
        raise typer.Exit(1) from exc
    _print_urls(config)
    if seed:
        _seed_if_empty(config)


def _seed_if_empty(config: StackConfig) -> None:
    """Seed a demo population through the gateway when the store is empty (see deploy/local/seed.py)."""
    import httpx

    from cli.simulate_commands import drive_with_progress, summary
    from deploy.local import seed as demo

    if demo.seeding_disabled():
        return
    try:
        if not demo.is_empty(config):
            return
        plan = demo.demo_plan()
        console.print()
        console.print(
            f"Empty store: seeding a demo population ({len(plan.learners)} learners, "
            f"{len(plan.rounds())} rounds of matching, ~{len(plan.sessions)} sessions; "
            "skip with --no-seed or LEMMA_SEED=0) ..."
        )
        result = drive_with_progress(plan, config.gateway_url, demo.secret(config), demo.CONCURRENCY)
        demo.record(config, plan, result)
        console.print(f"Seeded: {summary(result)}")
        page = demo.wait_for_figures(config, demo.SKILL, demo.completed_in(result, demo.SKILL), timeout=20)
        console.print(
            f"Skill page: {config.gateway_url}/skills/{demo.SKILL}  "
            f"({page['learners_verifying']} learners, {page['sessions_completed']} sessions, "
            f"average SCI {page['avg_sci']}, tiers {page['tier_distribution']}; "
            f"JSON at /v1/skills/{demo.SKILL})"
        )
        console.print(f"A seeded Skill Passport: {demo.sample_passport(config)}")
    except httpx.HTTPError as exc:
        console.print(f"[yellow]Seeding stopped: {exc!r}. The stack runs; data so far stays.[/yellow]")


@app.command()
def down(state_dir: StateDirOption = None) -> None:
    """Stop, by pid, every process `up` started: the supervisor, Prometheus, gateway, services,
    brokers."""
    config = StackConfig.resolve(state_dir)
    if not config.run_dir.exists():
        console.print(f"Nothing to stop (no stack ever ran in {config.state_dir}).")
        return
    stopped = stop_stack(config, say=_say)
    if stopped:
        console.print(f"Stopped {len(stopped)} processes. Data stays in {config.state_dir}.")
    else:
        console.print("Nothing was running.")


@app.command()
def status(
    state_dir: StateDirOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON: the shape, and per process its name, pid, role, service, instance, "
            "port, alive, ready and restarts.",
        ),
    ] = False,
) -> None:
    """Each process of the stack: role, replica, pid, port, alive, ready, restarts."""
    config = StackConfig.resolve(state_dir)
    rows = stack_status(config)
    if as_json:
        typer.echo(json.dumps(status_json(config, rows), indent=2))
        return
    table = Table(title=f"Lemma local stack ({config.state_dir})")
    for column in COLUMNS:
        table.add_column(column, no_wrap=True)
    colour = {"yes": "[green]yes[/green]", "no": "[red]no[/red]"}
    flags = {COLUMNS.index("alive"), COLUMNS.index("ready")}
    for cells in table_rows(rows):
        table.add_row(*(colour.get(c, c) if i in flags else c for i, c in enumerate(cells)))
    console.print(table)
    if not any(r.alive for r in rows):
        console.print("Not running. Start it with `make run`.")
        return
    console.print(f"Gateway {config.gateway_url}   Kafka {config.kafka_bootstrap}")
    console.print(f"Logs {config.log_dir}/<process>.log   More (JSON): lemma stack status --json")
