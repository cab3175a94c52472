"""Waiting tickets binned by level (pure): the index that keeps one decision cheap.

A candidate search only looks at levels within the widest window that can apply, so the
tickets of one (specialty, format) bucket are kept in bins of ``BIN_WIDTH`` level points (1 to 4:
61 bins at most), each bin in waiting order. A search visits the non-empty bins in range
(found by bisection), skips a bin whose longest-waiting ticket is newer than the best found so
far, and stops inside a bin as soon as its tickets are too new for any window to reach it. So
its cost grows with the number of bins in the window, not with the number of tickets waiting.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Final

#: Level points per bin. Narrower bins cost more bins per window, wider ones more tickets
#: scanned at the window's edges; 0.05 was the fastest of 0.01-0.25 in ``bench.matching``.
BIN_WIDTH: Final = 0.05

Order = tuple[datetime, str]  # (requested_at, ticket_id): the waiting order


class LevelBins:
    """The waiting orders of one bucket's tickets, binned by level, each bin in waiting order."""

    __slots__ = ("_bins", "_keys", "_orders", "width")

    def __init__(self, width: float = BIN_WIDTH) -> None:
        self.width = width
        self._bins: dict[int, list[Order]] = {}
        self._keys: list[int] = []  # the non-empty bins, ascending
        self._orders: list[Order] = []  # every ticket, in waiting order

    def __len__(self) -> int:
        return len(self._orders)

    def __bool__(self) -> bool:
        return bool(self._orders)

    def bin_of(self, level: float) -> int:
        return math.floor(level / self.width)

    def bounds(self, key: int) -> tuple[float, float]:
        """The levels bin ``key`` holds, [low, high)."""
        return key * self.width, (key + 1) * self.width

    def add(self, level: float, order: Order) -> None:
        key = self.bin_of(level)
        entries = self._bins.get(key)
        if entries is None:
            entries = self._bins[key] = []
            bisect.insort(self._keys, key)
        bisect.insort(entries, order)
        bisect.insort(self._orders, order)

    def remove(self, level: float, order: Order) -> None:
        key = self.bin_of(level)
        entries = self._bins.get(key)
        if entries is None or not _discard(entries, order):
            return
        _discard(self._orders, order)
        if not entries:
            del self._bins[key]
            del self._keys[bisect.bisect_left(self._keys, key)]

    def oldest(self) -> Order | None:
        """The longest-waiting ticket's order (its window is the widest in the bucket)."""
        return self._orders[0] if self._orders else None

    def orders(self) -> list[Order]:
        return list(self._orders)

    def within(self, low: float, high: float) -> Iterator[tuple[int, list[Order]]]:
        """The non-empty bins that may hold a level in [low, high], with their entries."""
        keys = self._keys
        start = bisect.bisect_left(keys, self.bin_of(low))
        stop = bisect.bisect_right(keys, self.bin_of(high))
        for key in keys[start:stop]:
            yield key, self._bins[key]


def _discard(entries: list[Order], order: Order) -> bool:
    index = bisect.bisect_left(entries, order)
    if index < len(entries) and entries[index] == order:
        del entries[index]
        return True
    return False
