"""The event contract: CloudEvents 1.0 envelopes around frozen pydantic payloads."""

from shared.events.envelope import CloudEvent, decode, encode, new_event
from shared.events.registry import REGISTRY, EventSpec, Topic, spec_for

__all__ = [
    "REGISTRY",
    "CloudEvent",
    "EventSpec",
    "Topic",
    "decode",
    "encode",
    "new_event",
    "spec_for",
]
