"""Which payload travels under which versioned type, on which topic, keyed by which field."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shared.events import payloads as p


class Topic(StrEnum):
    PASSPORT = "lemma.passport.v1"
    MATCHING = "lemma.matching.v1"
    SESSIONS = "lemma.sessions.v1"
    EVIDENCE = "lemma.evidence.v1"
    SCI = "lemma.sci.v1"
    DLQ = "lemma.dlq.v1"
    OPS = "lemma.ops.v1"


@dataclass(frozen=True)
class EventSpec:
    model: type[p.Payload]
    topic: Topic
    key_field: str
    version: int = 1
    #: The CloudEvents ``type``, e.g. ``lemma.sessions.RatingSubmitted.v1`` (derived, kept: it is hot).
    type: str = field(init=False)

    def __post_init__(self) -> None:
        domain = self.topic.value.split(".")[1]
        object.__setattr__(self, "type", f"lemma.{domain}.{self.name}.v{self.version}")

    @property
    def name(self) -> str:
        return self.model.__name__

    def key_of(self, payload: p.Payload) -> str:
        value = getattr(payload, self.key_field)
        return "" if value is None else str(value)


_SPECS = [
    EventSpec(p.LearnerRegistered, Topic.PASSPORT, "learner_id"),
    EventSpec(p.LearnerJoined, Topic.PASSPORT, "learner_id"),
    EventSpec(p.LearnerErased, Topic.PASSPORT, "learner_id"),
    EventSpec(p.SkillClaimed, Topic.PASSPORT, "learner_id"),
    EventSpec(p.SkillUnclaimed, Topic.PASSPORT, "learner_id"),
    EventSpec(p.MatchRequested, Topic.MATCHING, "skill"),
    EventSpec(p.MatchCancelled, Topic.MATCHING, "skill"),
    EventSpec(p.MatchExpired, Topic.MATCHING, "skill"),
    EventSpec(p.MatchFound, Topic.MATCHING, "skill"),
    EventSpec(p.SessionScheduled, Topic.SESSIONS, "session_id"),
    EventSpec(p.SessionStarted, Topic.SESSIONS, "session_id"),
    EventSpec(p.SessionCompleted, Topic.SESSIONS, "session_id"),
    EventSpec(p.SessionAbandoned, Topic.SESSIONS, "session_id"),
    EventSpec(p.RatingSubmitted, Topic.SESSIONS, "session_id"),
    EventSpec(p.SessionConfirmed, Topic.SESSIONS, "session_id"),
    EventSpec(p.SessionDisputed, Topic.SESSIONS, "session_id"),
    EventSpec(p.NoShowContested, Topic.SESSIONS, "session_id"),
    EventSpec(p.NoShowUpheld, Topic.SESSIONS, "session_id"),
    EventSpec(p.EvidenceRecorded, Topic.EVIDENCE, "learner_id"),
    EventSpec(p.SciUpdated, Topic.SCI, "learner_id"),
    EventSpec(p.TierChanged, Topic.SCI, "learner_id"),
    EventSpec(p.RatersCalibrated, Topic.SCI, "skill"),
    EventSpec(p.DeadLettered, Topic.DLQ, "key"),
    EventSpec(p.OperatorActed, Topic.OPS, "projection"),
]

REGISTRY: dict[str, EventSpec] = {s.type: s for s in _SPECS}
_BY_MODEL: dict[type[p.Payload], EventSpec] = {s.model: s for s in _SPECS}


def spec_for(model: type[p.Payload]) -> EventSpec:
    return _BY_MODEL[model]
