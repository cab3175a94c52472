"""`lemma dlq list|show|redrive`: the dead letters on ``lemma.dlq.v1``, and folding them again.

Reads the dead-letter topic from its start with a plain consumer (no group: nothing is
committed, so reading twice reads the same). ``redrive`` asks the service that owns each
letter's consumer to fold the original records again (``POST /ops/projections/{name}/redrive``
on its own port): each is folded at most once ever, so running it twice is harmless.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from cli.projection_commands import StateDirOption, ops_token, replica_urls
from deploy.local.config import StackConfig
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.settings import Settings

app = typer.Typer(help="Dead letters: list them, show one, fold them again after a fix.")
console = Console(highlight=False, soft_wrap=True)

ConsumerOption = Annotated[str | None, typer.Option("--consumer", help="Only this consumer's letters.")]
TypeOption = Annotated[
    str | None,
    typer.Option("--type", help="Only letters of this event type (e.g. lemma.sessions.RatingSubmitted.v1)."),
]


@dataclass(frozen=True)
class Letter:
    """One dead letter: its event id and time, and what it says of the original record."""

    id: str
    time: str
    consumer: str
    error: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    value_size: int

    @property
    def event_type(self) -> str:
        """The original record's event type, as far as it can be read."""
        try:
            return str(json.loads(self.value).get("type") or "(no type)")
        except (ValueError, AttributeError):
            return "(not JSON)"

    @property
    def reason(self) -> str:
        return self.error.splitlines()[0] if self.error else ""


def _connection_and_prefix(state_dir: Path | None) -> tuple[KafkaConnection, str]:
    """How to reach the cluster as the settings say (its security too); without
    ``LEMMA_KAFKA_BOOTSTRAP``, the local stack's broker."""
    settings = Settings()
    if "LEMMA_KAFKA_BOOTSTRAP" not in os.environ:
        saved = StackConfig.load(StackConfig.resolve(state_dir).state_dir)
        if saved is not None:
            settings = settings.model_copy(update={"kafka_bootstrap": saved.kafka_bootstrap})
    return KafkaConnection.of(settings), settings.kafka_prefix


async def read_letters(kafka: KafkaConnection, topic: str) -> list[Letter]:
    """Every dead letter on ``topic``, oldest first."""
    partitions = [TopicPartition(topic, p) for p in await partitions_of(kafka, topic)]
    if not partitions:
        return []
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    letters: list[Letter] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, end in ends.items():
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    letters.append(_letter(record.value))
    finally:
        await consumer.stop()
    return sorted(letters, key=lambda letter: (letter.time, letter.id))


def _letter(value: bytes | None) -> Letter:
    event = json.loads(value or b"{}")
    data = event.get("data", {})
    return Letter(
        id=str(event.get("id", "")),
        time=str(event.get("time", "")),
        consumer=str(data.get("consumer", "")),
        error=str(data.get("error", "")),
        topic=str(data.get("topic", "")),
        partition=int(data.get("partition", -1)),
        offset=int(data.get("offset", -1)),
        key=data.get("key"),
        value=str(data.get("value", "")),
        value_size=int(data.get("value_size", 0)),
    )


def _selected(state_dir: Path | None, consumer: str | None, event_type: str | None) -> list[Letter]:
    kafka, prefix = _connection_and_prefix(state_dir)
    try:
        letters = asyncio.run(read_letters(kafka, prefix + Topic.DLQ.value))
    except (KafkaError, OSError) as exc:
        console.print(f"[red]cannot read the dead letters[/red] from {kafka.bootstrap}: {exc!r}")
        raise typer.Exit(1) from exc
    return [
        letter
        for letter in letters
        if (consumer is None or letter.consumer == consumer)
        and (event_type is None or letter.event_type == event_type)
    ]


@app.command("list")
def list_letters(
    consumer: ConsumerOption = None, event_type: TypeOption = None, state_dir: StateDirOption = None
) -> None:
    """The dead letters grouped by consumer, event type and reason: how many, first and last."""
    letters = _selected(state_dir, consumer, event_type)
    groups: dict[tuple[str, str, str], list[Letter]] = defaultdict(list)
    for letter in letters:
        groups[(letter.consumer, letter.event_type, letter.reason)].append(letter)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("consumer", "type", "count", "first", "last", "reason", "an id"):
        table.add_column(column)
    for (name, kind, reason), group in sorted(groups.items()):
        table.add_row(name, kind, str(len(group)), group[0].time, group[-1].time, reason, group[0].id)
    console.print(table)
    console.print(f"{len(letters)} dead letters in {len(groups)} groups")


@app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(help="The dead letter's event id (`lemma dlq list`).")],
    state_dir: StateDirOption = None,
) -> None:
    """One dead letter whole: the reason, where the original record is, and its value."""
    found = [letter for letter in _selected(state_dir, None, None) if letter.id == letter_id]
    if not found:
        console.print(f"[red]no dead letter {letter_id}[/red]")
        raise typer.Exit(1)
    letter = found[0]
    console.print_json(json.dumps({**letter.__dict__, "type": letter.event_type}))


@app.command("redrive")
def redrive(
    consumer: ConsumerOption = None, event_type: TypeOption = None, state_dir: StateDirOption = None
) -> None:
    """Fold the selected letters' original records again in their consumer, after a fix. Each
    record is folded at most once ever: a second redrive reports it as already redriven."""
    letters = _selected(state_dir, consumer, event_type)
    if not letters:
        console.print("no dead letters selected")
        return
    urls = replica_urls(state_dir)
    token = ops_token(state_dir)
    by_consumer: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:
        by_consumer[letter.consumer].append(letter)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("consumer", "record", "outcome", "why"):
        table.add_column(column)
    bad = 0
    for name, group in sorted(by_consumer.items()):
        service = name.split("-", 1)[0]
        if not urls.get(service):
            console.print(f"[red]no service owns the consumer {name!r}[/red]")
            bad += len(group)
            continue
        places = sorted({(x.topic, x.partition, x.offset) for x in group})
        try:
            answer = httpx.post(
                f"{urls[service][0]}/ops/projections/{name}/redrive",
                json={"records": [{"topic": t, "partition": p, "offset": o} for t, p, o in places]},
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
        except httpx.HTTPError as exc:
            console.print(f"[red]{name}: {service} does not answer[/red] ({urls[service][0]}): {exc}")
            bad += len(places)
            continue
        if answer.status_code != 200:
            console.print(f"[red]{name}: {answer.status_code}[/red] {answer.text}")
            bad += len(places)
            continue
        for row in answer.json()["records"]:
            ok = row["outcome"] in ("folded", "already-redriven")
            bad += not ok
            table.add_row(
                name,
                f"{row['topic']}[{row['partition']}]@{row['offset']}",
                row["outcome"] if ok else f"[red]{row['outcome']}[/red]",
                row.get("why", ""),
            )
    console.print(table)
    if bad:
        raise typer.Exit(1)
