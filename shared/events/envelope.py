"""The CloudEvents 1.0 envelope (structured JSON mode) and its encoding on the wire."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    create_model,
)

from shared.events.payloads import Payload
from shared.events.registry import REGISTRY, spec_for

SCHEMA_BASE = "https://schemas.lemma.dev/events/"
_NAMESPACE = uuid.UUID("6f1c7a1e-4a55-4a43-9d0b-4c1f2c7a8b10")
_NAMESPACE_BYTES = _NAMESPACE.bytes


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

    def __eq__(self, other: object) -> bool:
        """Equal fields make equal events, whether decoded (a typed subclass) or built here."""
        if not isinstance(other, CloudEvent):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def topic(self) -> str:
        return REGISTRY[self.type].topic.value

    @property
    def key(self) -> str:
        return self.subject


def deterministic_id(*parts: str) -> str:
    """An id that is the same every time the same inputs are seen (replay-safe).

    Exactly ``str(uuid.uuid5(namespace, "|".join(parts)))`` (RFC 4122 name-based, SHA-1), built
    without the ``UUID`` object: it is made for every event a projection emits.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "|".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


class _Envelope(CloudEvent):
    """What a reader requires of an envelope; extension attributes it does not know are ignored.

    A subclass of ``CloudEvent``, so a decoded envelope is the event itself: no second model
    is built (that copy cost as much as the validation).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    specversion: Literal["1.0"]


def _typed_envelope(type_: str, payload: type[Payload]) -> type[_Envelope]:
    """An envelope model whose ``type`` is one constant and whose ``data`` is its payload."""
    return create_model(
        f"Envelope_{payload.__name__}",
        __base__=_Envelope,
        type=(Literal[type_], ...),  # type: ignore[arg-type]
        data=(payload, ...),
    )


# One validation pass from JSON to the typed payload: pydantic picks the envelope by ``type``.
_ENVELOPES = tuple(_typed_envelope(t, spec.model) for t, spec in REGISTRY.items())
_ANY_EVENT: TypeAdapter[Any] = TypeAdapter(
    cast(Any, Annotated[Union[_ENVELOPES], Discriminator("type")])  # noqa: UP007
)


def _reason(error: ValidationError) -> str:
    """One readable line per problem, e.g. ``data.scores.a: Input should be ... 5``."""
    lines = []
    for e in error.errors(include_url=False):
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            ctx = e.get("ctx") or {}
            lines.append(f"unknown event type {ctx.get('tag', '(none)')!r}")
            continue
        loc = ".".join(str(part) for part in e["loc"][1:])  # drop the union member's name
        lines.append(f"{loc or 'record'}: {e['msg']}")
    return "; ".join(lines)


def decode(value: bytes | str) -> CloudEvent:
    """Parse a record value; raises ``ValueError`` (with the reason) for anything malformed."""
    try:
        envelope = _ANY_EVENT.validate_json(value)
    except ValidationError as exc:
        raise ValueError(_reason(exc)) from None
    spec = REGISTRY[envelope.type]
    if spec.key_of(envelope.data) != envelope.subject:
        raise ValueError(f"subject {envelope.subject!r} does not match the payload key")
    event: CloudEvent = envelope
    return event
