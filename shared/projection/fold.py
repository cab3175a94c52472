"""The pure side of a projection: which documents an event touches, and how it changes them.

No I/O here. The runtime loads the documents named by ``refs``, calls ``apply`` and
writes what it returns; tests and the simulator call ``fold_events`` in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shared.events.envelope import CloudEvent
from shared.events.payloads import Payload
from shared.events.registry import Topic

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


Changes = Mapping[DocRef, Doc | None]


@dataclass(frozen=True)
class CatchUpPhase:
    """Topics a rebuild folds together, after the phases before (``CatchUp.catch_up_phases``).

    ``apart``: their partitions may be folded by separate processes, partition number p of
    every topic of the phase in one of them. That holds when every document an event of the
    phase touches is touched only by events of the same partition number among those topics
    (they are keyed alike, so one key lands on one number when their partition counts agree;
    the rebuild checks that they do), except for ``deferred`` events.

    ``deferred``: per topic, collections its events share with other partition numbers. An
    event of that topic naming a document of one of them (``refs``) is not folded with its
    partition: it is kept, with that partition's offsets, and folded once the phase is done,
    in one process, in log order per partition (``CatchUpRuntime.fold_deferred``).

    Folding by phases, or deferring, asks that the projection's documents and its refusals come
    out the same whatever order its topics are folded in.
    """

    topics: tuple[Topic, ...]
    apart: bool = False
    deferred: Mapping[Topic, frozenset[str]] = field(default_factory=dict)


@runtime_checkable
class CatchUp(Protocol):
    """A projection that can fold facts alone: what a rebuild far behind the head asks of it.

    ``fold`` returns the document changes ``apply`` makes for the event, and nothing else (no
    score, no payload); a rebuild emits nothing until it is live, so that work would be
    thrown away (``shared.projection.catchup``). The changes must be exactly ``apply``'s. It
    may be handed more documents than ``refs`` named (the rebuild's whole cache): it reads
    only those.

    ``catch_up_phases`` (optional; none: every topic in one phase, in one process) lets a
    rebuild fold the log in parallel processes (``shared.rebuild_workers``).
    """

    name: str

    def refs(self, event: CloudEvent) -> Iterable[DocRef]: ...

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome: ...

    def fold(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Changes:
        """``apply(docs, event).changes``, without working out what to emit."""
        ...


@runtime_checkable
class Settling(CatchUp, Protocol):
    """A projection whose announcements follow from its documents after a batch, not from each
    event: the live runtime folds a batch with ``fold`` and asks ``settle`` once what to
    announce, so a learner rated three times in one batch gets one update, not three.

    ``settle`` gets, for every document the batch changed, its state before the batch and
    after (with every other document the batch read, in ``after``); it returns per changed
    document the payloads to emit for it, in order. The runtime gives them the ids and the
    cause of the last event that changed that document."""

    def settle(
        self,
        before: Mapping[DocRef, Doc | None],
        after: Mapping[DocRef, Doc | None],
        changed: Iterable[DocRef],
    ) -> list[tuple[DocRef, tuple[Payload, ...]]]: ...


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
