"""A rater's own profile: the calibration's figures about them, in words they can act on."""

from __future__ import annotations

from services.sci.calibration import Rating, calibrate
from services.sci.domain import Correction
from services.sci.domain.rater_profile import rater_profile


def test_the_words_follow_the_figures() -> None:
    c = Correction(
        bias={"high": 0.42, "low": -0.8, "fair": 0.05},
        weight={"high": 12.0, "low": 3.0, "fair": 24.0},
        default_weight=12.0,
        informative={"high": 0.95, "low": 0.1, "fair": 0.5},
        given={"high": 12, "low": 3, "fair": 40},
        ratings=55,
    )
    high = rater_profile("ml", "high", c)
    assert high is not None and (high.bias, high.agreement, high.weight, high.ratings) == (
        0.42,
        0.95,
        1.0,
        12,
    )
    assert high.summary[0] == "your ratings run about 0.4 points above your peers' on this rubric"
    assert "as well as your peers'" in high.summary[1] and "1.0 times" in high.summary[2]
    low = rater_profile("ml", "low", c)
    assert low is not None and "0.8 points below" in low.summary[0] and "say little" in low.summary[1]
    assert "0.25 of a typical rater's" in low.summary[2] and "still rough" in low.summary[3]
    fair = rater_profile("ml", "fair", c)
    assert (
        fair is not None and "in line with your peers'" in fair.summary[0] and "2.0 times" in fair.summary[2]
    )
    assert "less clearly" in fair.summary[1] and fair.summary[3] == "this rests on 40 of your ratings"
    assert rater_profile("ml", "stranger", c) is None


def test_a_calibration_finds_the_lenient_rater_and_the_one_who_gives_everyone_the_same() -> None:
    ratings = []
    for j in range(30):
        truth = 1.5 + (j % 7) * 0.5
        ratings.append(Rating(f"L{j}", "fair", f"f{j}", min(5.0, truth)))
        ratings.append(Rating(f"L{j}", "kind", f"k{j}", min(5.0, truth + 1.0)))
        ratings.append(Rating(f"L{j}", "flat", f"x{j}", 4.0))
    correction = calibrate(ratings).correction()
    kind, flat, fair = (rater_profile("ml", r, correction) for r in ("kind", "flat", "fair"))
    assert kind is not None and flat is not None and fair is not None
    assert kind.ratings == flat.ratings == fair.ratings == 30
    assert kind.bias > fair.bias + 0.5 and "above your peers'" in kind.summary[0]
    assert flat.agreement < 0.4 <= kind.agreement and flat.weight < kind.weight
