"""The rules every store applies when several processes share it, pure so they are tested alone.

- **Revisions** (compare-and-set): every write gives the documents it changes a new revision,
  unique across processes and never reused, so a document deleted and created again never
  looks unchanged to a writer that read it before (no ABA).
- **Expectations**: a write lands only if each document it names is still at the revision
  read (``ABSENT``: still missing).
- **Fences**: a write lands only if each partition it names still has the owner epoch given.
- **Outbox claims**: which pending records a relay may take so that, whatever the number of
  relays, each record is held by one at a time and each key's records go out in order.
"""

from __future__ import annotations

import itertools
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.store.base import ABSENT

_counter = itertools.count()
_HOST = f"{zlib.crc32(os.uname().nodename.encode()):08x}"


def new_revision() -> str:
    """A revision no other write (in any process on any host) gives: time, host, pid, counter."""
    return f"{time.time_ns():x}.{_HOST}.{os.getpid():x}.{next(_counter):x}"


def conflicts(
    expect: Mapping[tuple[str, str], str], found: Mapping[tuple[str, str], str]
) -> list[tuple[str, str]]:
    """The documents of ``expect`` whose revision now (``found``; missing: absent) is another."""
    return sorted(ref for ref, rev in expect.items() if found.get(ref, ABSENT) != rev)


def fenced(
    fence: Mapping[tuple[str, str, int], int], epochs: Mapping[tuple[str, str, int], int]
) -> dict[tuple[str, str, int], int]:
    """The partitions of ``fence`` whose epoch now (``epochs``; never claimed: 0) is another,
    with that epoch."""
    return {slot: epochs.get(slot, 0) for slot, epoch in fence.items() if epochs.get(slot, 0) != epoch}


@dataclass(frozen=True)
class Pending:
    """An outbox record as a claim sees it."""

    seq: str
    topic: str
    key: str
    holder: str  # "" when nobody holds it
    until: float  # when the holder's lease runs out (epoch seconds)


def claimable(rows: Iterable[Pending], owner: str, now: float, limit: int) -> list[str]:
    """The seqs ``owner`` takes from ``rows`` (the head of the outbox, in seq order).

    A record is taken when nobody else holds it (or the holder's lease ran out), up to ``limit``
    records, and only while no earlier record of its (topic, key) was left to someone else or
    left behind: another relay may be publishing that one, and the key's order must hold.
    """
    taken: list[str] = []
    blocked: set[tuple[str, str]] = set()
    for row in rows:
        slot = (row.topic, row.key)
        if slot in blocked:
            continue
        if row.holder and row.holder != owner and row.until > now:
            blocked.add(slot)
            continue
        if len(taken) >= limit:
            break
        taken.append(row.seq)
    return taken
