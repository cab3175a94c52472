"""Records past a gap in a partition's offsets wait until the broker serves the missing ones."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from shared.projection.order import GapWatch, in_order


@dataclass(frozen=True)
class R:
    topic: str
    partition: int
    offset: int


def offsets(records: list[R]) -> list[int]:
    return [r.offset for r in records]


def test_a_gap_stops_its_partition_only() -> None:
    batch = [R("t", 0, 5), R("t", 1, 0), R("t", 0, 7), R("t", 1, 1), R("t", 0, 8)]
    out = in_order(batch, {("t", 0): 4})
    assert [(r.partition, r.offset) for r in out.records] == [(0, 5), (1, 0), (1, 1)]
    assert out.resume == {("t", 0): 6}


def test_folded_records_are_dropped_and_a_new_partition_starts_anywhere() -> None:
    out = in_order([R("t", 0, 3), R("t", 0, 4), R("t", 1, 40), R("t", 1, 41)], {("t", 0): 3})
    assert [(r.partition, r.offset) for r in out.records] == [(0, 4), (1, 40), (1, 41)]
    assert out.resume == {}


def test_a_gap_to_accept_is_passed_once() -> None:
    out = in_order([R("t", 0, 9), R("t", 0, 11)], {("t", 0): 4}, accept_gap={("t", 0)})
    assert offsets(out.records) == [9]
    assert out.resume == {("t", 0): 10}


@given(
    size=st.integers(1, 60),
    batches=st.lists(st.lists(st.integers(0, 59), max_size=12), min_size=1, max_size=40),
)
def test_refetching_from_the_resume_offset_folds_every_offset_once_in_order(
    size: int, batches: list[list[int]]
) -> None:
    """Whatever subsets the broker serves (each batch ascending, gaps anywhere), folding what
    ``in_order`` takes and fetching again from ``resume`` never takes an offset twice or out of
    order; a final complete fetch takes the rest."""
    done: dict[tuple[str, int], int] = {("t", 0): -1}
    folded: list[int] = []
    for served in [*batches, list(range(size))]:
        position = done[("t", 0)] + 1
        batch = [R("t", 0, o) for o in sorted(set(served)) if position <= o < size]
        out = in_order(batch, done)
        folded += offsets(out.records)
        if out.records:
            done[("t", 0)] = out.records[-1].offset
    assert folded == list(range(size))


def test_a_gap_waited_on_past_the_patience_is_overdue() -> None:
    watch = GapWatch(patience_s=10)
    watch.saw({("t", 0): 6}, now=100)
    watch.saw({("t", 0): 6}, now=105)  # the same gap: the clock is not reset
    assert watch.overdue(now=109) == set()
    assert watch.overdue(now=110) == {("t", 0)}
    watch.saw({("t", 0): 8}, now=111)  # a new gap waits afresh
    assert watch.overdue(now=112) == set()
    watch.moved({("t", 0): 8})
    assert watch.since == {}
