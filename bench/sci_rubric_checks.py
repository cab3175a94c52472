"""Targets, verdict and tables of ``bench.sci_rubric``.

Each check is counted where it can fail and says by how much it is met or missed. A figure
that was not measured (a scenario or horizon left out of the run) is no check; a check whose
figure is missing in a run that has its row (no severity to correlate where one was expected)
is missed: nothing measured is no pass.
"""

from __future__ import annotations

from typing import Any

from bench.sci_rubric_run import MODELS
from bench.seeded import Check, split

RUBRIC = ("rubric", "rubric-severity")  # scenarios with per-dimension truth: ours must beat plain
CONTROL = "biased"  # no per-dimension truth: the model must cost nothing
SEVERITY = "rubric-severity"  # the scenario whose raters have a severity per dimension
NO_SEVERITY = ("rubric", CONTROL)  # raters lean alike on every dimension: no severity may be kept
SEVERITY_HELPS_AT = (8, 12)  # ours at most ours without severity there
CONTROL_OVER_OVERALL_MAX = 1.01  # control: ours at most this multiple of overall-only's error
SEVERITY_CORRELATION_MIN = 0.6
SEVERITY_CORRELATION_AT = 8

TARGETS: dict[str, Any] = {
    "mae_ours_over_plain_below": {"value": 1.0, "scenarios": list(RUBRIC), "at": "every horizon"},
    "mae_ours_over_no_severity_max": {"value": 1.0, "scenario": SEVERITY, "at": list(SEVERITY_HELPS_AT)},
    "control_mae_ours_over_overall_only_max": {"value": CONTROL_OVER_OVERALL_MAX, "scenario": CONTROL},
    "severity_correlation_min": {
        "value": SEVERITY_CORRELATION_MIN,
        "scenario": SEVERITY,
        "at": SEVERITY_CORRELATION_AT,
    },
    "severity_kept_share_max": {"value": 0.0, "scenarios": list(NO_SEVERITY)},
    "proof_differences_max": 0,
}


def _ratio(row: dict[str, Any], model: str, over: str) -> float:
    return float(row["models"][model]["mae"]) / float(row["models"][over]["mae"])


def verdict(results: dict[str, dict[str, Any]]) -> list[Check]:
    checks: list[Check] = []
    for key, row in results.items():
        name, sessions = split(key)
        if name in RUBRIC:
            checks.append(
                Check(f"{key} depth MAE ours / plain", _ratio(row, "ours", "plain"), 1.0, True, True)
            )
        if name == SEVERITY and sessions in SEVERITY_HELPS_AT:
            ratio = _ratio(row, "ours", "no_severity")
            checks.append(Check(f"{key} depth MAE ours / ours without severity", ratio, 1.0, True))
        if name == CONTROL:
            ratio = _ratio(row, "ours", "overall_only")
            checks.append(
                Check(f"{key} depth MAE ours / overall-only", ratio, CONTROL_OVER_OVERALL_MAX, True)
            )
        if name == SEVERITY and sessions == SEVERITY_CORRELATION_AT:
            found = row.get("severity_correlation")
            checks.append(Check(f"{key} severity correlation", found, SEVERITY_CORRELATION_MIN, False))
        if name in NO_SEVERITY:
            checks.append(
                Check(f"{key} share of raters given a severity", row["severity_kept_share"], 0.0, True)
            )
        checks.append(
            Check(f"{key} Proof differences with / without severity", row["proof_differences"], 0, True)
        )
    return checks


def _cell(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _models(row: dict[str, Any], figure: str, models: tuple[str, ...]) -> str:
    return " / ".join(_cell(row["models"][m][figure]) for m in models)


def table(results: dict[str, dict[str, Any]]) -> str:
    """Per scenario and horizon: the depth error of every model and the ratios the targets read;
    the rank and deviation correlations; what the calibration found."""
    lines = [
        "| scenario@sessions | depth MAE ours / no severity / plain / overall-only / reference "
        "| ours ÷ plain | ours ÷ no severity | ours ÷ overall-only | ours ÷ reference |",
        "|" + " --- |" * 6,
    ]
    for key, row in results.items():
        cells = [
            key,
            _models(row, "mae", MODELS),
            f"{_ratio(row, 'ours', 'plain'):.3f}",
            f"{_ratio(row, 'ours', 'no_severity'):.3f}",
            f"{_ratio(row, 'ours', 'overall_only'):.3f}",
            f"{_ratio(row, 'ours', 'reference'):.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| scenario@sessions | Spearman per dimension, mean (min) ours / plain / reference "
        "| deviation corr. ours / plain / reference | severity corr. / raters given one "
        "| Proof differences | depth prior k / severity variance |",
        "|" + " --- |" * 6,
    ]
    trio = ("ours", "plain", "reference")
    for key, row in results.items():
        spearman = " / ".join(
            f"{row['models'][m]['spearman']:.3f} ({min(row['spearman_by_dimension'][m].values()):.3f})"
            for m in trio
        )
        calibration = row["calibration"]
        cells = [
            key,
            spearman,
            " / ".join(_cell(row["models"][m]["deviation_correlation"], 3) for m in trio),
            f"{_cell(row['severity_correlation'], 3)} / {row['severity_kept_share']:.3f}",
            str(row["proof_differences"]),
            f"{calibration['rubric_prior']:.3g} / {calibration['severity_variance']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
