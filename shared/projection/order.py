"""Which records of a consumed batch may be folded now: each partition's, without a gap.

Our topics have dense offsets (no compaction, no transactions), so a record past the next
offset a projection expects means the broker skipped records. Tansu 0.6.0 does this at the
head of a partition that several producers write: it serves a later batch before an earlier
one becomes visible, and a consumer that moves on never sees the earlier one. The records
before the gap are folded; the rest of that partition's batch is dropped and the consumer
seeks back to the missing offset (``InOrder.resume``), where the broker serves them once they
are visible.

A gap that is still there after ``patience_s`` of refetching is taken as offsets that do not
exist (a log with transaction markers or compaction) and passed, with a warning: a stuck
partition would be worse than a hole that the broker insists on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

Partition = tuple[str, int]


class Positioned(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=Positioned)


@dataclass(frozen=True)
class InOrder(Generic[R]):
    """The records to fold now, and the partitions to fetch again from an offset."""

    records: list[R]
    resume: dict[Partition, int]


def in_order(
    records: Sequence[R], done: Mapping[Partition, int], accept_gap: Collection[Partition] = ()
) -> InOrder[R]:
    """Per partition, the records after ``done`` (the stored last offset) up to the first gap.

    A partition with nothing stored takes its first record as its start (the log's start
    offset is not known here). In the partitions of ``accept_gap`` a gap before the first
    record is passed over.
    """
    expected: dict[Partition, int] = {tp: last + 1 for tp, last in done.items()}
    resume: dict[Partition, int] = {}
    taken: list[R] = []
    passes = set(accept_gap)
    for record in records:
        tp = (record.topic, record.partition)
        if tp in resume:
            continue
        want = expected.get(tp)
        if want is not None and record.offset < want:
            continue  # folded already
        if want is not None and record.offset > want and tp not in passes:
            resume[tp] = want
            continue
        passes.discard(tp)
        taken.append(record)
        expected[tp] = record.offset + 1
    return InOrder(taken, resume)


@dataclass
class GapWatch:
    """Since when each partition has waited for the same missing offset."""

    patience_s: float = 10.0
    since: dict[Partition, tuple[int, float]] = field(default_factory=dict)

    def overdue(self, now: float) -> set[Partition]:
        """Partitions whose gap has outlasted the patience: pass it."""
        return {tp for tp, (_, first) in self.since.items() if now - first >= self.patience_s}

    def saw(self, resume: Mapping[Partition, int], now: float) -> None:
        for tp, want in resume.items():
            if tp not in self.since or self.since[tp][0] != want:
                self.since[tp] = (want, now)

    def moved(self, folded_to: Mapping[Partition, int]) -> None:
        """Partitions folded to or past their awaited offset wait no more."""
        for tp, last in folded_to.items():
            if tp in self.since and last >= self.since[tp][0]:
                del self.since[tp]
