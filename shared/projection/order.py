"""Which records of a consumed batch are new to a projection: those past its stored offset.

On Apache Kafka a partition's offsets are not always consecutive: a transaction's commit or
abort marker takes an offset no consumer sees, records of an aborted transaction are not
served to a ``read_committed`` consumer, and compaction removes records. So a record past the
next offset is no sign of a lost record, and the runtime never waits on a gap: it folds what
the broker serves, in offset order per partition, and stores the last offset it folded. After
a crash or a rebalance the consumer seeks to that offset + 1 and the broker serves the next
record that exists. The only records dropped are those at or below the stored offset: an
at-least-once redelivery of what the store already holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

Partition = tuple[str, int]


class Positioned(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=Positioned)


def unfolded(records: Sequence[R], done: Mapping[Partition, int]) -> list[R]:
    """The records past ``done`` (each partition's last folded offset), in the order served;
    a record at or below its partition's stored offset, or below one taken earlier in the same
    batch, is a redelivery and is dropped."""
    last: dict[Partition, int] = dict(done)
    taken: list[R] = []
    for record in records:
        tp = (record.topic, record.partition)
        if tp in last and record.offset <= last[tp]:
            continue
        taken.append(record)
        last[tp] = record.offset
    return taken
