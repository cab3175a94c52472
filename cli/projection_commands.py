"""`lemma projections list|resume|drop`: each service's projections as its ops route reports
them, a parked partition resumed, a retired version deleted.

Talks to every replica of every service on its own port (the gateway does not route ``/ops``):
the local stack's, or those ``LEMMA_OPS_URLS`` names in a deployment (``cli/service_urls.py``),
with an operator's token: ``LEMMA_OPS_TOKEN`` if set (a deployment's identity provider issues
it), else one signed with the local stack's secret.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli.service_urls import ENV as OPS_URLS_ENV
from cli.service_urls import service_urls
from shared.events.envelope import new_event
from shared.events.payloads import OperatorActed
from shared.outbox import outbox_records
from shared.projection.versions import VERSIONS, VersionError, Versions, consumer_of
from shared.settings import Settings
from shared.store import Change, open_store
from shared.store.versioned import VersionStore

app = typer.Typer(help="The projections of every service: state, lag, parked partitions.")
console = Console(highlight=False, soft_wrap=True)

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Folder of the stack's state (default: LEMMA_STATE_DIR or var/)."),
]
STYLE = {"folding": "green", "checking": "yellow", "retrying": "yellow", "parked": "red", "refused": "red"}


def ops_token(state_dir: Path | None) -> str:
    """``LEMMA_OPS_TOKEN``; else, on the local stack only, one signed with its secret."""
    from_env = os.environ.get("LEMMA_OPS_TOKEN")
    if from_env:
        return from_env
    if os.environ.get(OPS_URLS_ENV, "").strip():
        console.print(
            f"[red]{OPS_URLS_ENV} names a deployment: set LEMMA_OPS_TOKEN to an operator's token "
            "from its identity provider[/red]"
        )
        raise typer.Exit(2)
    from cli.main import local_jwt_secret
    from shared.auth import mint_token
    from shared.settings import Settings

    return mint_token(Settings(jwt_secret=local_jwt_secret(state_dir)), "lemma-cli", role="ops", ttl_s=300)


def replica_urls(state_dir: Path | None) -> dict[str, list[str]]:
    """Every service's replicas (``cli/service_urls.py``), or a clear error and exit 2."""
    try:
        return service_urls(state_dir)
    except (ValueError, OSError) as exc:
        console.print(f"[red]cannot tell where the services answer: {exc}[/red]")
        raise typer.Exit(2) from exc


def _label(service: str, n: int, urls: list[str]) -> str:
    return service if len(urls) == 1 else f"{service}-{n}"


def _get(url: str, token: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/ops/projections", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    answer.raise_for_status()
    return list(answer.json()["projections"])


def _add_rows(table: Table, process: str, report: dict[str, Any]) -> None:
    if not report["partitions"]:
        table.add_row(process, report["projection"], "-", "-", "-", report["state"], "no partitions")
    for row in report["partitions"]:
        style = STYLE.get(row["state"], "")
        table.add_row(
            process,
            report["projection"],
            f"{row['topic']}[{row['partition']}]",
            "-" if row["folded_to"] is None else str(row["folded_to"]),
            "-" if row["lag"] is None else str(row["lag"]),
            f"[{style}]{row['state']}[/{style}]" if style else row["state"],
            row.get("why", ""),
        )


@app.command("list")
def list_projections(state_dir: StateDirOption = None) -> None:
    """Each projection of each service: its state, and per partition the offset folded, the lag,
    the state and why (parked, refused); then its versions (building, handover, live, retired)."""
    urls = replica_urls(state_dir)
    token = ops_token(state_dir)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("service", "projection", "partition", "folded to", "lag", "state", "why"):
        table.add_column(column)
    unreachable = []
    version_lines: list[str] = []
    for service, replicas in urls.items():
        for n, url in enumerate(replicas, start=1):
            process = _label(service, n, replicas)
            try:
                reports = _get(url, token)
            except httpx.HTTPError as exc:
                unreachable.append(f"{process} ({url}): {exc}")
                continue
            for report in reports:
                _add_rows(table, process, report)
                summary = ", ".join(f"v{v['version']} {v['state']}" for v in report.get("versions", []))
                line = f"{process}/{report['projection']}: folding v{report['version']}; {summary}"
                version_lines.append(line)
                if report.get("recovery"):
                    console.print(f"[red]{report['projection']}[/red]: {report['recovery']}")
    console.print(table)
    for line in version_lines:
        console.print(line)
    for line in unreachable:
        console.print(f"[red]not answering[/red] {line}")
    if unreachable:
        raise typer.Exit(1)


@app.command("resume")
def resume(
    projection: Annotated[
        str, typer.Argument(help="The projection (evidence, sci, passport, sessions, matching).")
    ],
    state_dir: StateDirOption = None,
) -> None:
    """Try every parked partition of PROJECTION again now (after fixing the cause)."""
    urls = replica_urls(state_dir)
    token = ops_token(state_dir)
    service = projection.split("-", 1)[0]
    replicas = urls.get(service)
    if replicas is None:
        console.print(f"[red]no service owns a projection {projection!r}[/red] (services: {', '.join(urls)})")
        raise typer.Exit(2)
    resumed: list[dict[str, Any]] = []
    failed = False
    for url in replicas:  # each replica parks the partitions it folds
        try:
            answer = httpx.post(
                f"{url}/ops/projections/{projection}/resume",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            console.print(f"[red]{service} does not answer[/red] ({url}): {exc}")
            failed = True
            continue
        if answer.status_code != 200:
            console.print(f"[red]{answer.status_code}[/red] ({url}) {answer.text}")
            failed = True
            continue
        resumed += answer.json()["resumed"]
    if failed:
        raise typer.Exit(1)
    if not resumed:
        console.print(f"{projection}: no partition was parked")
        return
    parts = ", ".join(f"{r['topic']}[{r['partition']}]" for r in resumed)
    console.print(f"{projection}: resumed {parts}; `lemma projections list` shows whether they fold on")


@app.command("drop")
def drop(
    projection: Annotated[
        str, typer.Argument(help="The projection: evidence, sci, sessions, passport, matching.")
    ],
    version: Annotated[int, typer.Argument(help="The retired version to delete.")],
    by: Annotated[str, typer.Option(help="Who drops it (recorded on lemma.ops.v1).")] = os.environ.get(
        "USER", "operator"
    ),
    state_dir: StateDirOption = None,
) -> None:
    """Delete a retired version of PROJECTION: its documents and offsets. The live version and
    one being built are refused."""
    from cli.replay_commands import service_settings

    settings = service_settings(state_dir)
    try:
        dropped = asyncio.run(drop_version(settings, projection, version, by))
    except VersionError as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    except OSError as exc:
        console.print(f"[red]cannot open the store[/red] of {projection}: {exc!r}")
        raise typer.Exit(1) from exc
    console.print(f"{projection}: version {version} dropped ({dropped:,} documents deleted)")


async def drop_version(settings: Settings, projection: str, version: int, by: str) -> int:
    """Forget ``version`` in the versions document (refused unless retired), then delete its
    collections and offsets; the drop is recorded as ``OperatorActed``. Returns the documents
    deleted."""
    store = open_store(settings.store_url_for(projection.split("-", 1)[0]))
    try:
        versions = Versions.from_doc(projection, await store.get(VERSIONS, projection))
        kept = versions.drop(version)
        old = VersionStore(store, version)
        deleted = 0
        for collection in await old.collections():
            deleted += await old.drop_collection(collection)
        await store.drop_offsets(consumer_of(projection, version))
        acted = OperatorActed(
            action="drop",
            service=projection.split("-", 1)[0],
            projection=projection,
            by=by,
            detail={"version": version, "documents": deleted},
        )
        event = new_event(acted, source="lemma-cli")
        await store.write([Change(VERSIONS, projection, kept.to_doc())], outbox=outbox_records([event]))
        return deleted
    finally:
        await store.close()
