"""Waiting tickets binned by level (pure): the index that keeps one decision cheap.

A candidate search only looks at levels within the widest window that can apply, so the
tickets of one (specialty, format) bucket are kept in bins of a few hundredths of a level point
(levels 1 to 4: 61 bins of 0.05 at most), each bin in waiting order. A search visits the
non-empty bins in range (found by bisection), skips a bin whose longest-waiting ticket is newer
than the best found so far, tries the bin's tickets whose window is wider than the newcomer's in
waiting order (stopping at the first too new to have one), and finds those within the
newcomer's own window by bisecting the bin's tickets by level.

Its cost does not grow with the tickets waiting because of the rule itself: two tickets of a
bin are closer than the narrowest window (the bin is no wider, ``width_for``), so they would
have been paired on arrival unless they cannot be (recent partners of each other): a bin of a
book's queue holds a handful of tickets, and a search costs a peek per bin in reach. A queue
filled without decisions (``SkillQueue.add`` of thousands close together) stays cheap too
where the newcomer's window ends (a bisection); ``bench.matching`` measures such queues.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

#: Level points per bin at most. Narrower bins cost more bins per window; a bin wider than the
#: narrowest window could hold tickets the rule would pair, so it is never wider than that.
BIN_WIDTH: Final = 0.05
#: The narrowest bin, whatever the rules (a window of 0 still pairs equal levels).
MIN_WIDTH: Final = 0.01


def width_for(narrowest_window: float) -> float:
    return max(MIN_WIDTH, min(BIN_WIDTH, narrowest_window))


Order = tuple[datetime, str]  # (requested_at, ticket_id): the waiting order


class LevelBins:
    """The waiting orders of one bucket's tickets, binned by level, each bin in waiting order."""

    __slots__ = ("_bins", "_keys", "_levels", "_orders", "width")

    def __init__(self, width: float = BIN_WIDTH) -> None:
        self.width = width
        self._bins: dict[int, list[Order]] = {}
        self._levels: dict[int, list[tuple[float, Order]]] = {}  # each bin's tickets by level
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
            self._levels[key] = []
            bisect.insort(self._keys, key)
        bisect.insort(entries, order)
        bisect.insort(self._levels[key], (level, order))
        bisect.insort(self._orders, order)

    def remove(self, level: float, order: Order) -> None:
        key = self.bin_of(level)
        entries = self._bins.get(key)
        if entries is None or not _discard(entries, order):
            return
        _discard(self._orders, order)
        _discard(self._levels[key], (level, order))
        if not entries:
            del self._bins[key], self._levels[key]
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

    def between(self, key: int, low: float, high: float) -> list[Order]:
        """The orders of bin ``key``'s tickets whose level is in [low, high]."""
        by_level = self._levels.get(key, [])
        start = bisect.bisect_left(by_level, (low,))
        stop = bisect.bisect_left(by_level, (high, _AFTER))
        return [order for _, order in by_level[start:stop]]


_AFTER = (datetime.max, "")  # sorts after every order of a level


def _discard(entries: list[Any], order: Any) -> bool:
    index = bisect.bisect_left(entries, order)
    if index < len(entries) and entries[index] == order:
        del entries[index]
        return True
    return False
