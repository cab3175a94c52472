"""The retry rules of a partition stopped at a failed record (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.projection.faults import RetryPolicy, next_fault

P = ("lemma.sessions.v1", 2)


def test_the_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(tries=9, first_delay_s=1.0, max_delay_s=30.0)
    assert [policy.delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


@given(st.integers(min_value=1, max_value=12), st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_tries_count_only_at_the_same_record_and_park_at_the_limit(limit: int, offsets: list[int]) -> None:
    policy = RetryPolicy(tries=limit)
    fault = None
    streak = 0
    previous = None
    for offset in offsets:
        streak = streak + 1 if offset == previous else 1
        previous = offset
        fault = next_fault(fault, P, offset, "boom", policy)
        assert fault.tries == streak and fault.offset == offset
        assert fault.parked == (streak >= limit)
        assert fault.state == ("parked" if fault.parked else "retrying")
        assert f"{P[0]}[{P[1]}]@{offset}" in fault.describe() and "boom" in fault.describe()
