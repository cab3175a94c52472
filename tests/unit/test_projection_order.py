"""A batch's records past each partition's stored offset are folded, whatever offsets skip."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from shared.projection.order import unfolded


@dataclass(frozen=True)
class R:
    topic: str
    partition: int
    offset: int


def test_records_at_or_below_the_stored_offset_are_dropped_and_gaps_are_passed() -> None:
    batch = [R("t", 0, 3), R("t", 0, 4), R("t", 1, 40), R("t", 0, 7), R("t", 1, 41), R("t", 0, 9)]
    taken = unfolded(batch, {("t", 0): 3})
    assert [(r.partition, r.offset) for r in taken] == [(0, 4), (1, 40), (0, 7), (1, 41), (0, 9)]


def test_a_redelivery_within_the_batch_is_dropped() -> None:
    taken = unfolded([R("t", 0, 5), R("t", 0, 6), R("t", 0, 5), R("t", 0, 6), R("t", 0, 8)], {})
    assert [r.offset for r in taken] == [5, 6, 8]


@given(
    log=st.lists(st.integers(0, 3), min_size=1, max_size=60),
    deliveries=st.lists(st.tuples(st.integers(0, 10), st.integers(0, 12)), min_size=1, max_size=30),
)
def test_folding_redelivered_runs_of_a_sparse_log_takes_each_record_once_in_order(
    log: list[int], deliveries: list[tuple[int, int]]
) -> None:
    """A log whose offsets skip anywhere (markers, aborts, compaction), served from the stored
    offset + 1 or from up to ``back`` records before it (a redelivery after a crash or a
    rebalance), ``length`` records at a time: every record is folded exactly once, in order."""
    offsets: list[int] = []
    at = 0
    for skip in log:
        at += skip
        offsets.append(at)
        at += 1
    done: dict[tuple[str, int], int] = {}
    folded: list[int] = []
    for back, length in [*deliveries, (0, len(offsets))]:
        position = sum(1 for o in offsets if o <= done.get(("t", 0), -1))  # index of the next record
        start = max(0, position - back)
        taken = unfolded([R("t", 0, o) for o in offsets[start : start + length]], done)
        folded += [r.offset for r in taken]
        if taken:
            done[("t", 0)] = taken[-1].offset
    assert folded == offsets
