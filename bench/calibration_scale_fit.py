"""The growth fit of ``bench.calibration_scale`` and the skill of a million raters it gives.

The calibration's CPU time is fitted as ``a * ratings^b`` over the measured sizes (least squares
in logs), the re-scoring's over learners, and both extrapolated at the largest size's ratings
per rater; beside the fit, the largest size's cost per rating times the ratings (a floor, since
the cost per rating grows with the set). Memory and the calibration document scale linearly
from the largest size. The targets are judged on the larger of the two calibration estimates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from services.sci.recalibration import GROWTH

BSON_LIMIT = 16 * 2**20  # MongoDB's largest document


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(a, b) of y = a * x^b, least squares in logs."""
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    slope, intercept = statistics.linear_regression(xs, ys)
    return math.exp(intercept), slope


def extrapolate(
    sizes: list[dict[str, Any]], raters: int, skill_rate: float, interval_s: float
) -> dict[str, Any]:
    """The fits over the sizes, and the one skill of ``raters`` raters they give, with the targets."""
    last = sizes[-1]
    per_rater = last["ratings"] / last["raters"]
    ratings = raters * per_rater
    a, b = fit([(s["ratings"], s["calibrate"]["cpu_s"]) for s in sizes])
    ra, rb = fit([(s["rescore"]["learners"], s["rescore"]["cpu_s"]) for s in sizes])
    learners = raters * last["rescore"]["learners"] / last["raters"]
    calibrate_s = a * ratings**b
    linear_s = last["calibrate"]["cpu_s"] / last["ratings"] * ratings
    rescore_s = ra * learners**rb
    job_s = max(calibrate_s, linear_s) + rescore_s
    mib_per_rating = (last["worker_mib"]["peak"] - last["worker_mib"]["base"]) / last["ratings"]
    growth_s = GROWTH * ratings / skill_rate
    doc_per_rater = last["calibration_doc_bytes"]["uuid_ids"] / last["raters"]
    return {
        "fit_calibrate": {"a": a, "exponent": round(b, 3)},
        "fit_rescore": {"a": ra, "exponent": round(rb, 3)},
        "raters": raters,
        "ratings": round(ratings),
        "calibrate_cpu_s": round(calibrate_s, 1),
        "calibrate_cpu_s_linear": round(linear_s, 1),
        "rescore_cpu_s": round(rescore_s, 1),
        "job_cpu_s": round(job_s, 1),
        "worker_peak_gib": round((mib_per_rating * ratings + last["worker_mib"]["base"]) / 1024, 2),
        "calibration_doc_mib": round(doc_per_rater * raters / 2**20, 1),
        "calibration_doc_16mib_at_raters": round(BSON_LIMIT / doc_per_rater),
        "targets": {
            "within_job_interval": {
                "value_s": round(job_s, 1),
                "target_s": interval_s,
                "met": job_s <= interval_s,
            },
            "calibration_doc_fits_mongodb": {
                "value_mib": round(doc_per_rater * raters / 2**20, 1),
                "limit_mib": BSON_LIMIT / 2**20,
                "met": doc_per_rater * raters <= BSON_LIMIT,
            },
            "within_2pct_growth": {
                "value_s": round(job_s, 1),
                "target_s": round(growth_s, 1),
                "skill_ratings_per_s": skill_rate,
                "met": job_s <= growth_s,
            },
        },
    }
