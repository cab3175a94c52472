"""`lemma replay PROJECTION`: rebuild a projection from the log beside the live one.

It folds the whole log into a new version of the service's store (``shared.rebuild``) with a
progress bar (events/s, lag per partition, time left), hands it over once caught up with the
head, and waits for the service to switch its readers to it. Killed and run again, it goes on
where it stopped; run while another rebuild of the projection is alive, it refuses.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.projection_commands import StateDirOption
from deploy.local.config import StackConfig
from shared.handover import read_versions
from shared.projection.verify import differences
from shared.projection.versions import VersionError, consumer_of
from shared.rebuild import Progress as RebuildProgress
from shared.rebuild import Rebuild, RebuildStopped
from shared.settings import Settings
from shared.store import Store, open_store
from shared.store.versioned import VersionStore

console = Console(highlight=False, soft_wrap=True)
#: The services whose projection a rebuild knows (each projection is named after its service).
SERVICES = ("evidence", "sci", "sessions", "passport", "matching")


def service_settings(state_dir: Path | None) -> Settings:
    """The settings the local stack gives its services (its state folder and broker), unless
    the environment names others (``LEMMA_STORE_URL``, ``LEMMA_KAFKA_BOOTSTRAP``)."""
    settings = Settings()
    config = StackConfig.resolve(state_dir)
    saved = StackConfig.load(config.state_dir)
    update: dict[str, Any] = {}
    if "LEMMA_STATE_DIR" not in os.environ:
        update["state_dir"] = str(config.state_dir)
    if "LEMMA_KAFKA_BOOTSTRAP" not in os.environ and saved is not None:
        update["kafka_bootstrap"] = saved.kafka_bootstrap
    return settings.model_copy(update=update)


def replay_command(
    projection: Annotated[str, typer.Argument(help="evidence, sci, sessions, passport or matching.")],
    wait_s: Annotated[
        float, typer.Option("--wait", help="How long to wait for the service to switch readers over.")
    ] = 120.0,
    by: Annotated[str, typer.Option(help="Who runs it (recorded on lemma.ops.v1).")] = os.environ.get(
        "USER", "operator"
    ),
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Build a version only to compare it with the live one, document by document; print "
            "the differences, delete it, and exit 1 if there are any.",
        ),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="sci only: audit, read-only, the scores as of TIME (ISO 8601; a date alone is the end "
            "of that day, UTC): the facts the log held then, under the calibration in force then.",
        ),
    ] = None,
    learner: Annotated[
        str | None,
        typer.Option(help="sci only: this learner's documents (reads only the partitions of their keys)."),
    ] = None,
    skill: Annotated[str | None, typer.Option(help="sci only: this skill's documents.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --as-of: print JSON.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --learner/--skill alone: show what differs, write nothing."),
    ] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Rebuild PROJECTION from the start of the log into a new version beside the live one;
    readers switch to it atomically once it has caught up. The old version stays until
    `lemma projections drop`. With --verify, compare instead of switching. For sci, --as-of
    audits the scores at a past time from the log, read-only; --learner or --skill alone
    rebuild that learner's or skill's documents in the live version (with sci stopped)."""
    if projection not in SERVICES:
        console.print(f"[red]no projection {projection!r}[/red]: one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    settings = service_settings(state_dir)
    if as_of is not None or learner is not None or skill is not None:
        from cli.audit_commands import scoped_replay

        scoped_replay(
            settings,
            projection,
            as_of,
            learner,
            skill,
            verify=verify,
            as_json=as_json,
            by=by,
            dry_run=dry_run,
        )
        return
    if dry_run or as_json:
        console.print("[red]--dry-run and --json go with --learner, --skill or --as-of[/red]")
        raise typer.Exit(2)
    try:
        drift = asyncio.run(_replay(settings, projection, by, wait_s, verify))
    except VersionError as exc:
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    except RebuildStopped as exc:
        console.print(f"[red]stopped:[/red] {exc}")
        raise typer.Exit(1) from exc
    except NotCompared as exc:
        console.print(f"[yellow]not compared:[/yellow] {exc}")
        raise typer.Exit(NOT_COMPARED) from exc
    except (KafkaError, OSError) as exc:
        console.print(
            f"[red]cannot reach the log or the store[/red] ({settings.kafka_bootstrap}, "
            f"{settings.store_url_for(projection)}): {exc!r}. Run it again when they answer: it resumes"
        )
        raise typer.Exit(1) from exc
    if drift:
        raise typer.Exit(1)


async def _replay(settings: Settings, service: str, by: str, wait_s: float, verify: bool) -> bool:
    """Rebuild (or, with ``verify``, compare); returns whether a comparison found drift."""
    app = importlib.import_module(f"services.{service}.app")
    consumers = importlib.import_module(f"services.{service}.consumers")
    store = open_store(settings.store_url_for(service))
    try:
        finish = getattr(app, "finish_rebuild", None)
        rebuild = Rebuild(
            settings,
            store,
            app.projection(settings),
            consumers.TOPICS,
            service=service,
            by=by,
            finish=(lambda version: finish(version, settings)) if finish else None,
        )
        version = await rebuild.begin()
        verb = "resuming" if rebuild.resumed else "building"
        console.print(f"{service}: {verb} version {version.number} from the log (the live one stays)")
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9} ev/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[lag]}"),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(f"{service} v{version.number}", total=None, rate="-", lag="")

            def show(progress: RebuildProgress) -> None:
                total = sum(progress.ends.values())
                done = sum(min(progress.positions.get(tp, 0), end) for tp, end in progress.ends.items())
                lag = " ".join(f"{t.rsplit('.', 2)[-2]}[{p}]:{n}" for (t, p), n in progress.lag.items() if n)
                bar.update(task, total=total or None, completed=done, rate=f"{progress.rate:,.0f}", lag=lag)

            if verify:
                own = frozenset(settings.topic(t) for t in getattr(consumers, "OWN_TOPICS", ()))
                return await _verify(rebuild, store, getattr(app, "VERIFY_IGNORE", {}), show, own)
            progress = await rebuild.run(show)
        carried = f"; {progress.redriven} redriven records carried over" if progress.redriven else ""
        console.print(
            f"{service}: version {version.number} caught up ({progress.folded:,} events folded by this run"
            f"{carried}); handed over to the service"
        )
        live = await rebuild.wait_live(wait_s)
        if live is None:
            console.print(
                f"[yellow]{service} has not switched yet[/yellow]: it does once it runs and has folded past "
                "where the live version stands (`lemma projections list`)"
            )
            raise typer.Exit(3)
        console.print(
            f"[green]{service}: version {version.number} is live[/green]; the old one stays until dropped"
        )
        return False
    finally:
        await store.close()


#: ``--verify``'s exit status when it could not compare (1: they differ; 0: they do not).
NOT_COMPARED = 4


class NotCompared(Exception):
    """The live version kept moving: no comparison could be made."""


async def _verify(
    rebuild: Rebuild,
    store: Store,
    ignore: Mapping[str, frozenset[str]],
    show: Callable[[RebuildProgress], None],
    own_topics: frozenset[str] = frozenset(),
    tries: int = 20,
) -> bool:
    """Build the version to the head, bring it to the live version's offsets, compare, delete
    it. Returns whether they differ; raises ``NotCompared`` when the live version never stood
    still long enough to be compared.

    A comparison counts only if the live version stood at the same offsets before and after it
    and, for a projection whose service's commands write it (``own_topics``), no event of theirs
    waited in the outbox: a command writes its documents before its event reaches the log."""
    assert rebuild.version is not None
    name, number = rebuild.projection.name, rebuild.version.number
    live = (await read_versions(store, name)).live

    async def standing() -> dict[tuple[str, int], int] | None:
        pending = await store.pending_outbox(500)
        if len(pending) == 500 or any(r.topic in own_topics for r in pending):
            return None
        return await store.offsets(consumer_of(name, live))

    found = None
    try:
        for _ in range(tries):
            await rebuild.run(show, hand_over=False)
            theirs = await standing()
            if theirs is not None and await store.offsets(consumer_of(name, number)) == theirs:
                collections = sorted(
                    set(await VersionStore(store, live).collections())
                    | set(await VersionStore(store, number).collections())
                )
                compared = await differences(
                    VersionStore(store, live), VersionStore(store, number), collections, ignore
                )
                if await standing() == theirs:  # the live version did not move meanwhile
                    found = compared
                    break
            await asyncio.sleep(0.5)  # the live one is behind, or the log moved on: again
    finally:
        deleted = await rebuild.abandon()
    if found is None:
        raise NotCompared(
            f"{name}: the live version never stood still where the rebuilt one did ({tries} tries); "
            f"nothing compared (the rebuilt copy is deleted: {deleted:,} documents). Try when the "
            "service is quieter"
        )
    for difference in found[:50]:
        console.print(f"  [red]drift[/red] {difference.describe()}")
    if len(found) > 50:
        console.print(f"  ... and {len(found) - 50} more")
    verdict = f"[red]{len(found)} documents differ[/red]" if found else "[green]no difference[/green]"
    console.print(
        f"{name}: version {live} (live) against a rebuild from the log at the same offsets: {verdict} "
        f"(the rebuilt copy is deleted: {deleted:,} documents)"
    )
    return bool(found)
