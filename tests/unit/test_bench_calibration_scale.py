"""The calibration scale bench (bench/calibration_scale.py) at a tiny size, in process."""

from __future__ import annotations

import json

from bench.calibration_scale import bias_check, run, simulated
from bench.calibration_scale_fit import fit
from services.sci.calibration import calibrate


async def test_the_last_line_has_every_figure_at_a_tiny_size() -> None:
    out = await run([40, 80], sessions=4, seed=3, moved_at=80, in_process=True)
    line = json.loads(json.dumps(out))  # one JSON line, as printed
    assert line["benchmark"] == "calibration_scale"
    assert [s["learners"] for s in line["sizes"]] == [40, 80]
    for size in line["sizes"]:
        assert size["ratings"] > size["raters"] > 0
        assert size["calibrate"]["cpu_s"] > 0 and size["rescore"]["learners"] > 0
        assert set(size["checks"]) == {"bias_correlates_with_leniency", "rescored_under_new"}
    assert line["sizes"][0]["calibrate"]["per_rating_vs_smallest"] == 1.0
    recalibrations = line["sizes"][1]["recalibration"]
    assert [r["growth"] for r in recalibrations] == [0.0005, 0.002, 0.02]
    assert all(0 <= r["moved_share"] <= 1 for r in recalibrations)
    assert line["extrapolation"]["raters"] == 1_000_000 and line["extrapolation"]["job_cpu_s"] > 0
    assert set(line["targets"]) == {
        "within_job_interval",
        "calibration_doc_fits_mongodb",
        "within_2pct_growth",
    }
    assert line["event_bytes"]["value"]["RatingSubmitted"] > 0
    assert line["event_bytes"]["gzip_ratio"] > 1
    assert line["event_bytes"]["documents_per_session"]["evidence"]["evidence"]["documents"] == 2
    assert isinstance(line["meets_targets"], bool) and isinstance(line["checks_failed"], list)


def test_the_bias_check_fails_against_the_wrong_truth() -> None:
    skill = simulated(150, 6, seed=2)
    bias = dict(calibrate(skill.ratings).bias)
    assert bias_check(bias, skill.leniency)["met"]
    flipped = {rater: -leniency for rater, leniency in skill.leniency.items()}
    check = bias_check(bias, flipped)
    assert not check["met"] and check["value"] < 0


def test_the_growth_fit_finds_a_power_law() -> None:
    a, b = fit([(1000, 2.0), (10000, 20.0 * 10**0.2), (100000, 200.0 * 100**0.2)])
    assert abs(b - 1.2) < 1e-9 and abs(a * 1000**1.2 - 2.0) < 1e-9
