"""Which partitions a projection's runtime owns, by owner epoch (the fencing of its writes).

When the consumer group gives a replica partitions, it claims them in the store: each one's
owner epoch is advanced and the replica noted as owner, in one write. Every batch it folds is
written naming those epochs (``fence``); a write naming an epoch that another replica's claim
has passed is refused (``shared.store.base.Fenced``) and this replica stops folding that
partition (held ``FENCED``) until the group takes it away or gives it back.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable

from shared.metrics import PARTITIONS_FENCED
from shared.projection.holds import FENCED, PartitionHolds
from shared.projection.order import Partition
from shared.store.base import Fenced, Store

log = logging.getLogger(__name__)

#: (consumer, topic, partition): the slot an owner epoch is kept under
Slot = tuple[str, str, int]


class PartitionFences(PartitionHolds):
    """The owner epochs one runtime holds; needs ``store`` and ``consumer`` of the version folded."""

    store: Store
    consumer: str

    def __init__(self, service: str, owner: str = "") -> None:
        super().__init__()
        #: who claims the partitions this runtime folds (``claim``): the replica, for operators
        self.owner = owner or f"{service}@{socket.gethostname()}/{os.getpid()}"
        #: slot -> the owner epoch this runtime claimed. Once a consumer drives the runtime
        #: (``fenced``), every write names the epochs of its partitions and a partition without
        #: one is not folded: only a partition's last claimant writes it.
        self.epochs: dict[Slot, int] = {}
        self.fenced = False

    async def claim(self, partitions: Iterable[Partition]) -> None:
        """Become the owner of ``partitions`` (assigned to this replica): from now on a write of
        theirs by any other replica is refused (``shared.store.base.Fenced``)."""
        epochs = await self.store.claim_partitions(self.consumer, partitions, self.owner)
        for (topic, partition), epoch in epochs.items():
            self.epochs[(self.consumer, topic, partition)] = epoch
            if self._held.get((topic, partition)) == FENCED:
                self.release((topic, partition))
        self.fenced = True

    def disown(self, partition: Partition) -> None:
        """The partition went to another replica (revoked): write it no more."""
        self.forget(partition)
        for slot in [slot for slot in self.epochs if slot[1:] == partition]:
            del self.epochs[slot]

    def fence(self, partitions: Iterable[Partition]) -> dict[Slot, int]:
        """The epochs a write of ``partitions`` names (those this runtime owns)."""
        return {
            slot: self.epochs[slot]
            for topic, partition in partitions
            if (slot := (self.consumer, topic, partition)) in self.epochs
        }

    def lost(self, fenced: Fenced, used: dict[Slot, int]) -> None:
        """Stop folding the partitions another replica claimed since this one did (unless this
        one claimed them again meanwhile: a rebalance that gave them back)."""
        for slot in fenced.partitions:
            if slot in used and self.epochs.get(slot) == used[slot]:
                del self.epochs[slot]
                self.hold(slot[1:], FENCED)
                PARTITIONS_FENCED.labels(self.service, self.name).inc()
                log.warning("%s stops folding %s[%s]: %s", self.name, slot[1], slot[2], FENCED)
