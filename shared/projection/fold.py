"""The pure side of a projection: which documents an event touches, and how it changes them.

No I/O here. The runtime loads the documents named by ``refs``, calls ``apply`` and
writes what it returns; tests and the simulator call ``fold_events`` in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.events.envelope import CloudEvent
from shared.events.payloads import Payload

Doc = dict[str, Any]
DocRef = tuple[str, str]  # (collection, key)


@dataclass(frozen=True)
class Outcome:
    """What folding one event produced: changed documents (``None`` deletes) and events to emit."""

    changes: Mapping[DocRef, Doc | None] = field(default_factory=dict)
    emit: tuple[Payload, ...] = ()


NOTHING = Outcome()


class Projection(Protocol):
    name: str

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        """The documents ``apply`` needs to see for this event."""
        ...

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        """Fold one event; must not mutate ``docs``. Raise to dead-letter the event."""
        ...


def fold_events(
    projection: Projection,
    events: Iterable[CloudEvent],
    state: Mapping[DocRef, Doc] | None = None,
) -> tuple[dict[DocRef, Doc], list[Payload]]:
    """Fold events in memory; returns the final documents and everything emitted."""
    docs: dict[DocRef, Doc] = dict(state or {})
    emitted: list[Payload] = []
    for event in events:
        view = {ref: docs.get(ref) for ref in projection.refs(event)}
        outcome = projection.apply(view, event)
        for ref, doc in outcome.changes.items():
            if doc is None:
                docs.pop(ref, None)
            else:
                docs[ref] = doc
        emitted.extend(outcome.emit)
    return docs, emitted
