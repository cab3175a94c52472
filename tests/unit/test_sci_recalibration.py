"""When the calibration job recalibrates a skill (the rule; the job itself runs in the integration tests)."""

from __future__ import annotations

from services.sci.recalibration import MAX_AGE_S, due


def test_never_below_the_minimum_of_ratings() -> None:
    """On a handful of ratings bias and noise are not identifiable: no calibration at all."""
    assert not due(1, 0, minimum=100, age_s=None)
    assert not due(99, 0, minimum=100, age_s=None)
    assert due(100, 0, minimum=100, age_s=None)


def test_on_two_percent_growth_or_any_growth_once_a_minute_old() -> None:
    assert not due(1000, 1000, minimum=100, age_s=MAX_AGE_S * 10)  # nothing new
    assert not due(1019, 1000, minimum=100, age_s=1.0)
    assert due(1020, 1000, minimum=100, age_s=1.0)
    assert due(1001, 1000, minimum=100, age_s=MAX_AGE_S)  # a rebuilt or quiet skill ends complete
    assert not due(900, 1000, minimum=100, age_s=MAX_AGE_S)  # never replaced by a smaller set
