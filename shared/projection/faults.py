"""What a projection does when folding fails for a reason that is not the data (pure).

Two kinds of failure, two answers:

- **the data**: a record that does not decode, or an event the domain rules refuse
  (``shared.errors.EventRefused``, or a command's ``Refused``). Folding it again would fail
  again, so it is dead-lettered with its reason and the partition goes on.
- **anything else**: the store refused a write, a bug raised, a document had a shape the code
  does not know. The data may be fine, so nothing is skipped: the partition stops at the
  record that failed and tries it again after a backoff, while the other partitions go on.
  After ``RetryPolicy.tries`` failures at the same record the partition is **parked**: it
  stays at that record, the service reports not ready, and it resumes when the cause is fixed
  (a restart, or ``lemma projections resume``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.projection.order import Partition

PARKED = "parked"
RETRYING = "retrying"
#: One document per record a version dead-lettered, written with the dead letter: only those
#: may be redriven into it (``shared.projection.redrive``).
DEAD_LETTERED = "_dead_lettered"


def place_key(topic: str, partition: int, offset: int) -> str:
    """A record's place in the log, as a document key."""
    return f"{topic}:{partition}:{offset}"


def parse_place_key(key: str) -> tuple[str, int, int]:
    topic, partition, offset = key.rsplit(":", 2)
    return topic, int(partition), int(offset)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed partition is tried again before it is parked."""

    tries: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay_s(self, tries: int) -> float:
        """The wait before the next try, after ``tries`` failures: doubling, capped."""
        return float(min(self.first_delay_s * 2 ** max(tries - 1, 0), self.max_delay_s))


@dataclass(frozen=True)
class Fault:
    """A partition stopped at ``offset`` (the first record not folded) because of ``reason``."""

    partition: Partition
    offset: int
    reason: str
    tries: int
    parked: bool

    @property
    def state(self) -> str:
        return PARKED if self.parked else RETRYING

    def describe(self) -> str:
        """One line for logs, ``/ops`` and the held-partition list."""
        topic, partition = self.partition
        what = f"parked after {self.tries} tries" if self.parked else f"retrying (try {self.tries})"
        return f"{what} at {topic}[{partition}]@{self.offset}: {self.reason}"


def next_fault(
    previous: Fault | None, partition: Partition, offset: int, reason: str, policy: RetryPolicy
) -> Fault:
    """The fault after one more failure at ``offset``; tries count up only at the same record
    (a failure further on starts again from one: the partition made progress)."""
    tries = previous.tries + 1 if previous is not None and previous.offset == offset else 1
    return Fault(partition, offset, reason, tries, parked=tries >= policy.tries)
