"""One learner's or one skill's part of the sci projection, folded from the log alone.

The sci fold reads three topics. Evidence and claims are keyed by learner, so one learner's
records sit in one partition of each: only that one is read, and only records with their key are
decoded. Sessions are keyed by session, so a learner's sessions may sit anywhere: every partition
is read, but only SessionScheduled, SessionAbandoned and NoShowUpheld records that name the
learner (or, for a skill, the sessions scheduled in it) are decoded. What is kept is folded by
the service's own
``SciProjection`` (``shared.projection.window_fold``): the documents of the scope come out as the
service's would, since the fold gives the same documents whatever the interleaving of partitions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import TopicPartition

from services.sci.app import projection
from services.sci.consumers import TOPICS
from services.sci.domain import EvidenceItem
from services.sci.projection import RECEIVED, SCORES, SESSION_SKILL, items_of, no_show_of
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    NoShowUpheld,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.log_window import Record, Window, partition_of, window
from shared.projection.fold import Doc, DocRef
from shared.projection.window_fold import Folded, fold_window
from shared.settings import Settings


def _json(text: str) -> bytes:
    """``text`` as it appears, quoted, in an encoded event (a key or an id in the JSON)."""
    return json.dumps(text, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Scope:
    """A learner, a skill, both (one score) or neither (everything)."""

    learner: str | None = None
    skill: str | None = None

    def describe(self) -> str:
        parts = [
            f"learner {self.learner}" if self.learner else "",
            f"skill {self.skill}" if self.skill else "",
        ]
        return " in ".join(p for p in parts if p) or "every learner and skill"

    def holds(self, learner: str, skill: str) -> bool:
        return (self.learner in (None, learner)) and (self.skill in (None, skill))

    def holds_ref(self, ref: DocRef, doc: Doc | None = None) -> bool:
        """Whether a document of the sci projection belongs to this scope (``session_skill``
        documents are shared by both participants: they belong to every scope that folds them)."""
        collection, key = ref
        if collection == SCORES:
            learner, _, skill = key.rpartition("/")
            return self.holds(doc["learner_id"] if doc else learner, doc["skill"] if doc else skill)
        if collection == RECEIVED:
            skill, learner, _ = key.split("/", 2) if key.count("/") >= 2 else (key, "", "")
            return self.holds(learner, skill)
        return collection == SESSION_SKILL


class Selection:
    """Which records the scope needs: ``keep`` looks at a record's key and bytes before it is
    decoded; ``select`` at the event after (it remembers the sessions scheduled in the scope)."""

    def __init__(self, scope: Scope, settings: Settings) -> None:
        self.scope = scope
        self.evidence = settings.topic(Topic.EVIDENCE)
        self.passport = settings.topic(Topic.PASSPORT)
        self.sessions = settings.topic(Topic.SESSIONS)
        self._learner_key = scope.learner.encode() if scope.learner else None
        self._learner = _json(scope.learner) if scope.learner else None
        self._skill = _json(scope.skill) if scope.skill else None
        #: sessions scheduled in the scope, as folded so far (a no-show names no skill)
        self.in_scope: set[str] = set()

    def keep(self, record: Record) -> bool:
        value = record.value or b""
        if record.topic == self.sessions:
            scheduled = b"SessionScheduled" in value
            if not scheduled and b"SessionAbandoned" not in value and b"NoShowUpheld" not in value:
                return False
            if self._learner is not None and self._learner not in value:
                return False
            return not (self._skill is not None and scheduled and self._skill not in value)
        if self._learner_key is not None and record.key != self._learner_key:
            return False
        if record.topic == self.passport and b"SkillClaimed" not in value and b"SkillUnclaimed" not in value:
            return False
        return self._skill is None or self._skill in value

    def select(self, event: CloudEvent) -> bool:
        data, scope = event.data, self.scope
        if isinstance(data, EvidenceRecorded | SkillClaimed | SkillUnclaimed):
            return scope.holds(data.learner_id, data.skill)
        if isinstance(data, SessionScheduled):
            chosen = (scope.learner is None or scope.learner in data.participants) and (
                scope.skill is None or scope.skill == data.skill
            )
            if chosen:
                self.in_scope.add(data.session_id)
            return chosen
        if isinstance(data, SessionAbandoned | NoShowUpheld) and (learner := no_show_of(data)) is not None:
            if scope.learner is not None and learner != scope.learner:
                return False
            return scope.skill is None or data.session_id in self.in_scope
        return False


@dataclass
class ScopeFold:
    """A scope folded from a window of the log."""

    scope: Scope
    folded: Folded
    span: Window
    #: per topic, the partitions read
    partitions: dict[str, list[int]] = field(default_factory=dict)
    #: records read from the log, and kept by the filters (decoded), over every window folded
    read: int = 0
    decoded: int = 0
    #: the received items per (learner, skill), once asked for
    _items: dict[tuple[str, str], list[EvidenceItem]] | None = field(default=None, repr=False)

    def scores(self) -> list[Doc]:
        """The scope's ``scores`` documents, in key order."""
        return [
            doc
            for (collection, key), doc in sorted(self.folded.docs.items())
            if collection == SCORES and self.scope.holds(doc["learner_id"], doc["skill"])
        ]

    def items(self, learner: str, skill: str) -> list[EvidenceItem]:
        """The evidence items the learner received in the skill."""
        if self._items is None:
            self._items = {}
            for (collection, key), doc in sorted(self.folded.docs.items()):
                if collection == RECEIVED:
                    of, who, _ = key.split("/", 2)
                    self._items.setdefault((who, of), []).extend(items_of(doc))
        return self._items.get((learner, skill), [])


async def scope_partitions(settings: Settings, scope: Scope) -> list[TopicPartition]:
    """The partitions that can hold the scope's records (a learner's keys: one of evidence and
    of claims; every partition of sessions)."""
    chosen: list[TopicPartition] = []
    for topic in TOPICS:
        name = settings.topic(topic)
        partitions = await partitions_of(KafkaConnection.of(settings), name)
        if scope.learner is not None and topic in (Topic.EVIDENCE, Topic.PASSPORT) and partitions:
            partitions = [partitions[partition_of(scope.learner, len(partitions))]]
        chosen += [TopicPartition(name, p) for p in partitions]
    return chosen


async def fold_scope(
    settings: Settings,
    scope: Scope,
    until: datetime | None,
    *,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> ScopeFold:
    """Fold what the log held of the scope at ``until`` (None: now)."""
    partitions = await scope_partitions(settings, scope)
    span = await window(KafkaConnection.of(settings), partitions, until)
    return await fold_more(settings, ScopeFold(scope, Folded(), span), span, on_batch=on_batch)


async def fold_more(
    settings: Settings,
    done: ScopeFold,
    span: Window,
    *,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> ScopeFold:
    """Fold ``span`` (the records past what ``done`` folded) into ``done``."""
    selection = Selection(done.scope, settings)
    selection.in_scope = {key for collection, key in done.folded.docs if collection == SESSION_SKILL}
    await fold_window(
        KafkaConnection.of(settings),
        projection(settings),
        span,
        keep=selection.keep,
        select=selection.select,
        into=done.folded,
        on_batch=on_batch,
    )
    for tp in span.bounds:
        done.partitions.setdefault(tp.topic, [])
        if tp.partition not in done.partitions[tp.topic]:
            done.partitions[tp.topic].append(tp.partition)
    done.span = span
    done._items = None
    done.read += span.read
    done.decoded += span.kept
    return done
