"""A consumed Kafka record as the projection runtime reads it, for feeding it without a broker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
