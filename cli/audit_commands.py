"""`lemma replay sci --as-of TIME [--learner ID] [--skill S] [--json]`: what the scores were at a
past time, from the log alone (``services.sci.audit``), printed with what they rest on."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from services.sci.audit import Audit, Audited, Calibration, audit
from services.sci.log_scope import Scope
from shared.catalog import get_catalog
from shared.log_window import Window
from shared.settings import Settings

PARTS = ("practice", "proof", "reliability", "freshness")
#: rows of the table (--json has them all)
ROWS = 40


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (naive means UTC); a date alone means the end of that day (UTC): what the
    log held once the day was over."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day, time.max, UTC).replace(microsecond=999000)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 date or time") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def scoped_replay(
    settings: Settings,
    projection: str,
    as_of: str | None,
    learner: str | None,
    skill: str | None,
    *,
    verify: bool,
    as_json: bool,
    by: str,
    dry_run: bool = False,
) -> None:
    """``lemma replay sci`` with --as-of (an audit), or --learner / --skill alone (their
    documents rebuilt in the live version)."""
    console = Console(highlight=False, soft_wrap=True)
    if projection != "sci" or verify:
        console.print(
            "[red]--as-of, --learner and --skill are options of `lemma replay sci` (not with --verify)[/red]"
        )
        raise typer.Exit(2)
    if skill is not None and (problems := get_catalog().problems(skill)):
        console.print(f"[red]{'; '.join(problems)}[/red]")
        raise typer.Exit(2)
    scope = Scope(learner=learner, skill=skill)
    if as_of is not None:
        run_audit(settings, scope, parse_time(as_of), as_json, console)
        return
    if as_json:
        console.print("[red]--json goes with --as-of[/red]")
        raise typer.Exit(2)
    from cli.rescope_commands import run_rescope

    run_rescope(settings, scope, by=by, dry_run=dry_run, console=console)


def run_audit(settings: Settings, scope: Scope, until: datetime, as_json: bool, console: Console) -> None:
    """Audit ``scope`` as of ``until`` and print it (as JSON with ``as_json``); exit 1 when the
    log held no claim or evidence in the scope then."""
    if until > datetime.now(UTC) + timedelta(minutes=1):
        console.print(f"[red]{until.isoformat()} is in the future[/red]: the log cannot say yet")
        raise typer.Exit(2)
    err = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("[bold]reading the log"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("read", total=None)

        def show(span: Window) -> None:
            bar.update(task, total=span.records or None, completed=span.read)

        try:
            found = asyncio.run(audit(settings, scope, until, on_batch=show))
        except (KafkaError, OSError) as exc:
            console.print(f"[red]cannot read the log[/red] ({settings.kafka_bootstrap}): {exc!r}")
            raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(to_json(found), indent=2))
    else:
        show_audit(found, console)
    if not found.scores:
        raise typer.Exit(1)


def show_audit(found: Audit, console: Console) -> None:
    until = found.until.isoformat() if found.until else "now"
    read = ", ".join(f"{topic}{parts}" for topic, parts in sorted(found.partitions.items()))
    console.print(
        f"sci audit of {found.scope.describe()} as of {until}: the facts the log held then, under the "
        "calibration in force then (read-only; the live store is not read)"
    )
    console.print(
        f"  read {found.read:,} records of {read}, decoded {found.decoded:,}, folded {found.folded:,} "
        f"({len(found.refused)} refused, as the service refuses them) in {found.seconds:.2f} s"
    )
    for line in found.refused[:5]:
        console.print(f"  [yellow]refused[/yellow] {line}")
    if not found.scores:
        console.print(f"[yellow]no claim or evidence of {found.scope.describe()} in the log by then[/yellow]")
        return
    if len(found.scores) == 1:
        _one(found.scores[0], console)
        return
    keys = [("learner", found.scope.learner is None), ("skill", found.scope.skill is None)]
    shown = [name for name, wanted in keys if wanted]
    table = Table(*shown, "SCI", *PARTS, "tier", "facts", "announced then")
    for s in found.scores[:ROWS]:
        d = s.detail
        names = {"learner": d.learner_id, "skill": d.skill}
        table.add_row(
            *(names[name] for name in shown),
            f"{d.sci:.2f}",
            *(f"{d.parts[p].value:.2f}" for p in PARTS),
            str(d.tier),
            str(s.facts),
            f"{s.announced.sci:.2f} (tier {s.announced.tier})" if s.announced else "-",
        )
    console.print(table)
    if len(found.scores) > ROWS:
        sci = [s.detail.sci for s in found.scores]
        tiers = Counter(s.detail.tier for s in found.scores)
        console.print(
            f"  ... {len(found.scores) - ROWS:,} more (--json lists every one): {len(sci):,} scores, average "
            f"SCI {sum(sci) / len(sci):.2f}, tiers {dict(sorted(tiers.items()))}"
        )
    for skill, used in sorted(found.calibrations.items()):
        console.print(f"  {skill}: {describe_calibration(used)}")


def _one(s: Audited, console: Console) -> None:
    d = s.detail
    console.print(f"\n[bold]{d.learner_id} in {d.skill}: SCI {d.sci:.2f}[/bold], tier {d.tier} {d.tier_name}")
    for name in PARTS:
        part = d.parts[name]
        console.print(f"  {name:<12}{part.value:>6.2f}/{part.max:<4.0f} {part.reason}")
    if d.next_tier:
        console.print(f"  next tier: {d.next_tier}")
    rated = f"{d.sessions} sessions, {s.ratings} ratings from {d.distinct_raters} raters"
    newest = s.newest_fact_at.isoformat() if s.newest_fact_at else "-"
    claim = "claimed" if s.claimed else "not claimed"
    console.print(f"  rests on: {s.facts} facts ({rated}, {s.no_shows} no-shows), newest {newest}; {claim}")
    if d.specialties:
        depth = ", ".join(f"{k} {v.sessions} sessions at {v.mean_rating}" for k, v in d.specialties.items())
        console.print(f"  specialties: {depth}")
    console.print(f"  calibration: {describe_calibration(s.calibration)}")
    if s.announced is not None:
        console.print(
            f"  as announced then (Freshness at the newest fact, revision {s.facts}): SCI "
            f"{s.announced.sci:.2f}, parts {' / '.join(f'{v:.2f}' for v in s.announced.parts().values())}, "
            f"tier {s.announced.tier}"
        )


def describe_calibration(used: Calibration | None) -> str:
    if used is None:
        return "none in force (uncalibrated: ratings taken as given)"
    c, logged = used.logged.correction, used.logged
    how = {
        "logged": "as logged",
        "recomputed": "recomputed from the ratings the log held then: same digest",
        "approximate": f"APPROXIMATE: logged biases, the rest recomputed over ratings of digest "
        f"{used.recomputed_digest}",
    }[used.source]
    return (
        f"{c.version} over {c.ratings:,} ratings, digest {c.digest}, {len(c.bias)} raters, "
        f"{len(c.senior)} seniors, logged {logged.logged_at.isoformat()} ({how})"
    )


def _calibration_json(used: Calibration | None) -> dict[str, Any] | None:
    if used is None:
        return None
    c = used.logged.correction
    return {
        "version": c.version,
        "ratings": c.ratings,
        "digest": c.digest,
        "raters": len(c.bias),
        "seniors": len(c.senior),
        "logged_at": used.logged.logged_at.isoformat(),
        "source": used.source,
    }


def to_json(found: Audit) -> dict[str, Any]:
    return {
        "scope": {"learner": found.scope.learner, "skill": found.scope.skill},
        "as_of": found.until.isoformat() if found.until else None,
        "evaluated_at": found.evaluated_at.isoformat(),
        "log": {
            "partitions": found.partitions,
            "records_read": found.read,
            "records_decoded": found.decoded,
            "events_folded": found.folded,
            "refused": found.refused,
            "seconds": round(found.seconds, 3),
        },
        "scores": [
            {
                **s.detail.model_dump(mode="json"),
                "facts": s.facts,
                "ratings": s.ratings,
                "no_shows": s.no_shows,
                "claimed": s.claimed,
                "newest_fact_at": s.newest_fact_at.isoformat() if s.newest_fact_at else None,
                "announced": None
                if s.announced is None
                else {"sci": s.announced.sci, **s.announced.parts(), "tier": s.announced.tier},
                "calibration_logged": _calibration_json(s.calibration),
            }
            for s in found.scores
        ],
    }
