"""Which partitions a projection folds nothing from now, and why (the runtime's bookkeeping).

A partition is held while its position is checked (``CHECKING``), when its log is refused
(``shared.positions``), while it waits to retry a failed record or is parked there
(``shared.projection.faults``), and when another replica claimed it (``FENCED``: this one
stops folding it until the consumer group takes it away or gives it back).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Protocol

from shared.metrics import FOLD_FAULTS, PARTITIONS_PARKED
from shared.projection.faults import Fault, RetryPolicy, next_fault
from shared.projection.fingerprint import CHECKING
from shared.projection.order import Partition

log = logging.getLogger(__name__)

#: Why a partition is held after another replica claimed it (its owner epoch went past ours).
FENCED = "fenced: another replica claimed this partition"

#: Called with each new fault, by whoever owns the consumer (``shared.positions``): it holds
#: the partition, rewinds it to the failed record and resumes it after the backoff.
FaultHook = Callable[[Fault], None]


class Placed(Protocol):
    """Where a record sits in the log."""

    topic: str
    partition: int
    offset: int


class PartitionHolds:
    """The held partitions and the faults of one projection's runtime."""

    service: str
    name: str
    retry: RetryPolicy

    def __init__(self) -> None:
        self.on_fault: FaultHook | None = None
        #: resumes a parked partition on the consumer (``shared.positions``)
        self.on_resume: Callable[[Partition], None] | None = None
        #: partitions nothing is folded from, with why
        self._held: dict[Partition, str] = {}
        #: partitions stopped at a record that failed for a reason other than its data
        self._faults: dict[Partition, Fault] = {}

    def hold(self, partition: Partition, why: str = CHECKING) -> None:
        self._held[partition] = why

    def release(self, partition: Partition) -> None:
        self._held.pop(partition, None)

    def forget(self, partition: Partition) -> None:
        """The partition is no longer ours (revoked) or is resumed by hand: no hold, no fault."""
        self._held.pop(partition, None)
        if self._faults.pop(partition, None) is not None:
            self._count_parked()

    @property
    def held(self) -> dict[Partition, str]:
        """Every partition nothing is folded from now, with why."""
        return dict(self._held)

    @property
    def faults(self) -> dict[Partition, Fault]:
        """The partitions stopped at a failed record, retrying or parked."""
        return dict(self._faults)

    @property
    def refused(self) -> dict[Partition, str]:
        """The partitions that will not move on their own: their log does not fit the store,
        or they are parked. Not those being checked, waiting to retry, or fenced (the group
        hands a fenced partition to its new owner)."""
        refused = {
            tp: why
            for tp, why in self._held.items()
            if why not in (CHECKING, FENCED) and tp not in self._faults
        }
        return refused | {tp: fault.describe() for tp, fault in self._faults.items() if fault.parked}

    @property
    def checking(self) -> list[Partition]:
        return sorted(tp for tp, why in self._held.items() if why == CHECKING)

    def resume_parked(self) -> list[Partition]:
        """Try every parked partition's failed record again now; returns those partitions."""
        parked = sorted(tp for tp, fault in self._faults.items() if fault.parked)
        for partition in parked:
            if self.on_resume is not None:
                self.on_resume(partition)
            else:
                self.forget(partition)
        return parked

    def _stop_all(self, records: Sequence[Placed], exc: Exception) -> None:
        """A failure of the whole batch (the store): each partition stops at its first record."""
        first: dict[Partition, int] = {}
        for record in records:
            at = (record.topic, record.partition)
            if at not in self._held:
                first[at] = min(first.get(at, record.offset), record.offset)
        for partition, offset in sorted(first.items()):
            self._stop(partition, offset, exc)

    def _stop(self, partition: Partition, offset: int, exc: Exception) -> None:
        reason = "".join(traceback.format_exception_only(exc)).strip()
        fault = next_fault(self._faults.get(partition), partition, offset, reason[:2000], self.retry)
        self._faults[partition] = fault
        FOLD_FAULTS.labels(self.service, self.name, partition[0]).inc()
        if fault.parked:
            log.error(
                "%s %s. Fix the cause, then restart the service or run `lemma projections resume %s`",
                self.name,
                fault.describe(),
                self.name,
                exc_info=exc,
            )
        else:
            log.warning(
                "%s %s; next try in %.0f s",
                self.name,
                fault.describe(),
                self.retry.delay_s(fault.tries),
                exc_info=exc,
            )
        self._count_parked()
        if self.on_fault is not None:
            self.on_fault(fault)

    def _count_parked(self) -> None:
        parked = sum(1 for fault in self._faults.values() if fault.parked)
        PARTITIONS_PARKED.labels(self.service, self.name).set(parked)
