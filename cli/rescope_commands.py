"""`lemma replay sci --learner ID | --skill S [--dry-run]`: one learner's or one skill's documents
rebuilt from the log into the live version (``services.sci.rescope``)."""

from __future__ import annotations

import asyncio

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from services.sci.log_scope import Scope
from services.sci.rescope import Rescoped, rescope
from shared.log_window import Window
from shared.projection.versions import VersionError
from shared.settings import Settings


def run_rescope(settings: Settings, scope: Scope, *, by: str, dry_run: bool, console: Console) -> None:
    """Rebuild the scope's documents (or, ``dry_run``, show how they differ: exit 1 if they do)."""
    err = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("[bold]reading the log"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("read", total=None)

        def show(span: Window) -> None:
            bar.update(task, total=span.records or None, completed=span.read)

        try:
            done = asyncio.run(rescope(settings, scope, by=by, dry_run=dry_run, on_batch=show))
        except VersionError as exc:
            console.print(f"[red]refused:[/red] {exc}")
            raise typer.Exit(1) from exc
        except (KafkaError, OSError) as exc:
            console.print(
                f"[red]cannot reach the log or the store[/red] ({settings.kafka_bootstrap}, "
                f"{settings.store_url_for('sci')}): {exc!r}"
            )
            raise typer.Exit(1) from exc
    show_rescoped(done, dry_run, console)
    if dry_run and done.differences:
        raise typer.Exit(1)
    if not dry_run and not done.check.startswith("verified"):
        raise typer.Exit(1)


def show_rescoped(done: Rescoped, dry_run: bool, console: Console) -> None:
    fold = done.fold
    assert fold is not None
    read = ", ".join(f"{topic}{parts}" for topic, parts in sorted(fold.partitions.items()))
    console.print(
        f"sci: {fold.scope.describe()} rebuilt from the log beside live version {done.version}: read "
        f"{fold.read:,} records of {read}, folded {fold.folded.folded:,} "
        f"({len(fold.folded.refused)} refused) in {done.seconds:.2f} s"
    )
    verdict = f"{len(done.differences)} documents differ" if done.differences else "no document differs"
    console.print(f"  {verdict} from the live version")
    for difference in done.differences[:30]:
        console.print(f"  [yellow]differs[/yellow] {difference.describe()}")
    if len(done.differences) > 30:
        console.print(f"  ... and {len(done.differences) - 30} more")
    if dry_run:
        console.print("  dry run: nothing written")
        return
    again = f", again {done.written - 1} time(s): a batch of the service put old ones back" * (
        done.written > 1
    )
    console.print(
        f"  written into version {done.version}{again}; {done.announced} scores announced; recorded on "
        "lemma.ops.v1 (OperatorActed replay)"
    )
    style = "green" if done.check == "verified" else "yellow"
    console.print(f"  [{style}]{done.check}[/{style}]")
