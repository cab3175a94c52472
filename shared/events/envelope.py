"""The CloudEvents 1.0 envelope (structured JSON mode) and its encoding on the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from shared.events.payloads import Payload
from shared.events.registry import REGISTRY, spec_for

SCHEMA_BASE = "https://schemas.lemma.dev/events/"
_NAMESPACE = uuid.UUID("6f1c7a1e-4a55-4a43-9d0b-4c1f2c7a8b10")


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event whose ``data`` is one of the registered payloads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    source: str
    type: str
    specversion: str = "1.0"
    time: datetime
    subject: str
    datacontenttype: str = "application/json"
    dataschema: str
    data: SerializeAsAny[Payload]
    correlationid: str
    causationid: str | None = None

    @property
    def topic(self) -> str:
        return REGISTRY[self.type].topic.value

    @property
    def key(self) -> str:
        return self.subject


def deterministic_id(*parts: str) -> str:
    """An id that is the same every time the same inputs are seen (replay-safe)."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def new_event(
    payload: Payload,
    *,
    source: str,
    time: datetime | None = None,
    id: str | None = None,
    cause: CloudEvent | None = None,
    correlationid: str | None = None,
) -> CloudEvent:
    """Wrap a payload. An event caused by another inherits its correlation id."""
    spec = spec_for(type(payload))
    event_id = id or str(uuid.uuid4())
    return CloudEvent(
        id=event_id,
        source=source,
        type=spec.type,
        time=time or datetime.now(UTC),
        subject=spec.key_of(payload),
        dataschema=f"{SCHEMA_BASE}{spec.type}.json",
        data=payload,
        correlationid=correlationid or (cause.correlationid if cause else event_id),
        causationid=cause.id if cause else None,
    )


def encode(event: CloudEvent) -> bytes:
    return event.model_dump_json(by_alias=True).encode()


class _Raw(BaseModel):
    """What a reader requires of an envelope; extension attributes it does not know are ignored."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str
    specversion: str
    time: datetime
    subject: str
    datacontenttype: str = "application/json"
    dataschema: str
    data: dict[str, Any]
    correlationid: str
    causationid: str | None = None


def decode(value: bytes | str) -> CloudEvent:
    """Parse a record value; raises ``ValueError`` (with the reason) for anything malformed."""
    raw = _Raw.model_validate_json(value)
    if raw.specversion != "1.0":
        raise ValueError(f"unsupported specversion {raw.specversion!r}")
    spec = REGISTRY.get(raw.type)
    if spec is None:
        raise ValueError(f"unknown event type {raw.type!r}")
    payload = spec.model.model_validate(raw.data)
    if spec.key_of(payload) != raw.subject:
        raise ValueError(f"subject {raw.subject!r} does not match the payload key")
    return CloudEvent.model_construct(**{**raw.__dict__, "data": payload})
