"""The record a consumer reads, and the dead letter made of one whose data cannot be folded."""

from __future__ import annotations

import logging
import traceback
from typing import Protocol

from shared.events.payloads import DEAD_LETTER_VALUE_LIMIT, DeadLettered

log = logging.getLogger(__name__)


class Record(Protocol):
    """What we read of a Kafka consumer record (aiokafka's ``ConsumerRecord`` fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(consumer: str, record: Record, exc: Exception) -> DeadLettered:
    """``record`` refused by ``consumer`` for ``exc``: where it sat, why, and (up to a limit) its
    bytes, so an operator can read, fix and redrive it (``lemma dlq``)."""
    reason = "".join(traceback.format_exception_only(exc)).strip()
    log.warning("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
    raw = record.value or b""
    return DeadLettered(
        consumer=consumer,
        error=reason[:4000],
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        value=raw[:DEAD_LETTER_VALUE_LIMIT].decode(errors="replace"),
        value_size=len(raw),
    )
