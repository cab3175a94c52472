"""The `lemma` command: the local stack, tokens, topics and event schemas."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from cli import dlq_commands, projection_commands, replay_commands, simulate_commands, stack_commands
from deploy.local.config import StackConfig
from deploy.local.credentials import JWT_SECRET_FILE
from shared.settings import DEV_SECRET, Settings

app = typer.Typer(
    help="Lemma operations: the local stack, projections, dead letters, tokens, topics, schemas.",
    no_args_is_help=True,
)
app.add_typer(stack_commands.app, name="stack", no_args_is_help=True)
app.add_typer(projection_commands.app, name="projections", no_args_is_help=True)
app.add_typer(dlq_commands.app, name="dlq", no_args_is_help=True)
app.command("simulate")(simulate_commands.simulate_command)
app.command("replay")(replay_commands.replay_command)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schemas of the event payloads.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")

StateDirOption = stack_commands.StateDirOption


def local_jwt_secret(state_dir: Path | None = None) -> str:
    """LEMMA_JWT_SECRET if set, else the stack's ``<state>/jwt-secret``, else the development default."""
    from_env = os.environ.get("LEMMA_JWT_SECRET")
    if from_env:
        return from_env
    path = StackConfig.resolve(state_dir).state_dir / JWT_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    return DEV_SECRET


@app.command()
def token(
    learner_id: Annotated[str, typer.Argument(help="The learner id (the token's subject).")],
    role: Annotated[str, typer.Option(help="learner, or ops for operator routes.")] = "learner",
    ttl_s: Annotated[int | None, typer.Option(help="Lifetime in seconds (default: 24 h).")] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print a bearer token signed with the local secret.

    Use it as `curl -H "Authorization: Bearer $(.venv/bin/lemma token ann)" ...`.
    """
    from shared.auth import mint_token

    try:
        settings = Settings(jwt_secret=local_jwt_secret(state_dir))
    except ValueError as exc:
        typer.echo(f"no signing secret: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(mint_token(settings, learner_id, role=role, ttl_s=ttl_s))


@topics_app.command("create")
def topics_create(
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (default: the local stack's broker).")
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Create the topics that are missing: partitions from shared.bus, events kept forever,
    replication and min.insync.replicas from LEMMA_KAFKA_REPLICATION_FACTOR and
    LEMMA_KAFKA_MIN_INSYNC_REPLICAS (3 and 2 in production; on the local stack, what its broker
    count gives unless they are set), names prefixed with LEMMA_KAFKA_PREFIX."""
    from shared.bus import ensure_topics_for

    settings = Settings()
    saved = StackConfig.load(StackConfig.resolve(state_dir).state_dir)
    if bootstrap is None and "LEMMA_KAFKA_BOOTSTRAP" not in os.environ:
        bootstrap = saved.kafka_bootstrap if saved else None
    if bootstrap is not None:
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    if saved is not None and bootstrap == saved.kafka_bootstrap:
        # the local stack's cluster: its own replication unless the environment says otherwise
        if "LEMMA_KAFKA_REPLICATION_FACTOR" not in os.environ:
            settings = settings.model_copy(update={"kafka_replication_factor": saved.replication_factor})
        if "LEMMA_KAFKA_MIN_INSYNC_REPLICAS" not in os.environ:
            settings = settings.model_copy(update={"kafka_min_insync_replicas": saved.min_insync_replicas})
    created = asyncio.run(ensure_topics_for(settings))
    where = settings.kafka_bootstrap
    typer.echo(f"created: {', '.join(created)}" if created else f"all topics exist on {where}")


@schemas_app.command("export")
def schemas_export(
    folder: Annotated[
        Path | None, typer.Option(help="Where to write them (default: shared/events/schemas/).")
    ] = None,
) -> None:
    """Write the JSON Schema of every event type (the committed contract) to a folder."""
    from shared.events.schemas import SCHEMA_DIR, export

    target = folder or SCHEMA_DIR
    written = export(target)
    typer.echo(f"{len(written)} schemas written to {target}")


if __name__ == "__main__":
    app()
