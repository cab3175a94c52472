"""Folding a window of the log in memory with a projection's own fold (audits, partial rebuilds).

The same ``refs`` and ``apply`` the service's runtime calls, on a dictionary instead of a store:
nothing is written anywhere and nothing is emitted. An event the fold refuses (bad data, which
the service dead-letters) changes nothing here either, and is counted; any other failure is
raised, as it would stop the service's partition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.errors import EventRefused, Refused
from shared.events.envelope import CloudEvent, decode
from shared.kafka_connection import KafkaConnection
from shared.log_window import Record, Window, read
from shared.projection.fold import Doc, DocRef, Projection

Changes = Mapping[DocRef, Doc | None]

Place = tuple[str, int, int]


@dataclass
class Folded:
    """What a window folded to: the documents, and what was folded, refused or undecodable."""

    docs: dict[DocRef, Doc] = field(default_factory=dict, repr=False)
    folded: int = 0
    refused: list[tuple[Place, str]] = field(default_factory=list, repr=False)
    #: per partition, the last offset read into the fold
    last: dict[tuple[str, int], int] = field(default_factory=dict)

    def fold(self, projection: Projection, event: CloudEvent, place: Place) -> None:
        view = {ref: self.docs.get(ref) for ref in projection.refs(event)}
        # a projection that can fold facts alone (``fold``: ``apply``'s changes, without working
        # out what to emit) spares the scoring nothing here would announce
        facts_only: Callable[[Mapping[DocRef, Doc | None], CloudEvent], Changes] | None = getattr(
            projection, "fold", None
        )
        try:
            changes = facts_only(view, event) if facts_only else projection.apply(view, event).changes
        except (EventRefused, Refused) as exc:
            self.refused.append((place, str(exc)))
            return
        for ref, doc in changes.items():
            if doc is None:
                self.docs.pop(ref, None)
            else:
                self.docs[ref] = doc
        self.folded += 1


async def fold_window(
    kafka: KafkaConnection,
    projection: Projection,
    span: Window,
    *,
    keep: Callable[[Record], bool] = lambda _: True,
    select: Callable[[CloudEvent], bool] = lambda _: True,
    into: Folded | None = None,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> Folded:
    """Fold the records of ``span`` that ``keep`` keeps (undecoded) and whose events ``select``
    selects (decoded), in each partition's order, into ``into`` (default: nothing yet)."""
    folded = into or Folded()
    async for batch in read(kafka, span, keep):
        for record in batch:
            place = (record.topic, record.partition, record.offset)
            folded.last[(record.topic, record.partition)] = record.offset
            try:
                event = decode(record.value or b"")
            except ValueError as exc:
                folded.refused.append((place, f"undecodable: {exc}"))
                continue
            if select(event):
                folded.fold(projection, event, place)
        on_batch(span)
    on_batch(span)
    return folded
