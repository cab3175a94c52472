"""When the calibration job recalibrates a skill, and how it announces the biases (the rules; the job
itself runs in the integration tests)."""

from __future__ import annotations

import math

from services.sci.domain import Correction
from services.sci.recalibration import MAX_AGE_S, announcement_id, announcements, due
from shared.events.envelope import encode, new_event
from shared.events.payloads import RATERS_PER_PART

ML = "machine-learning"


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


def correction(raters: int, ratings: int = 500, digest: str = "d1") -> Correction:
    bias = {f"rater-{n:05d}": (n % 7 - 3) / 10 for n in range(raters)}
    return Correction(bias=bias, ratings=ratings, version="pg1-link-v3", digest=digest)


def test_a_calibration_is_announced_in_parts_of_at_most_2000_raters_sorted_by_id() -> None:
    held = correction(4001)
    parts = announcements(ML, held)
    assert [len(p.bias) for p in parts] == [RATERS_PER_PART, RATERS_PER_PART, 1]
    assert [(p.part, p.parts) for p in parts] == [(0, 3), (1, 3), (2, 3)]
    assert all((p.skill, p.version, p.digest, p.ratings) == (ML, "pg1-link-v3", "d1", 500) for p in parts)
    raters = [r for p in parts for r in p.bias]
    assert raters == sorted(held.bias)  # every rater once, in id order across the parts
    assert {r: b for p in parts for r, b in p.bias.items()} == held.bias
    assert max(len(encode(new_event(p, source="sci"))) for p in parts) < 200_000  # well under 1 MB


def test_a_small_or_empty_calibration_is_one_part() -> None:
    (one,) = announcements(ML, correction(3))
    assert (one.part, one.parts, len(one.bias)) == (0, 1, 3)
    (empty,) = announcements(ML, correction(0, ratings=0, digest=""))
    assert (empty.part, empty.parts, empty.bias) == (0, 1, {})
    assert [len(p.bias) for p in announcements(ML, correction(5), per_part=2)] == [2, 2, 1]


def test_a_bias_json_cannot_hold_is_left_out() -> None:
    held = Correction(bias={"a": 0.2, "b": math.nan, "c": math.inf}, ratings=10, digest="d")
    (one,) = announcements(ML, held)
    assert one.bias == {"a": 0.2}


def test_announcement_ids_derive_from_skill_digest_and_part() -> None:
    assert announcement_id(ML, "d1", 0) == announcement_id(ML, "d1", 0)
    ids = {announcement_id(s, d, p) for s in (ML, "data-engineering") for d in ("d1", "d2") for p in (0, 1)}
    assert len(ids) == 8
