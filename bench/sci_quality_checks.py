"""Targets, verdict and table of ``bench.sci_quality``.

Each check is counted only where it can fail: Proof error against the bound at the horizons the
target names; false Peer-endorsed only where Peer-endorsed is reachable (a learner has at most one
session a round, so at fewer sessions than Peer-endorsed asks for nobody can be shown it), and
counted as missed if nobody is shown it there after all (nothing measured is no pass); the tier
step where the tier path was replayed and Peer-endorsed is reachable (below that a learner is
Claimed, then Practicing from their first rating, then perhaps Practitioner: no move can exceed
one tier, so the figure is shown but not counted). What is not measured is said, not scored 0.
"""

from __future__ import annotations

from typing import Any

from bench.seeded import Check, split
from services.sci import domain
from services.sci.recalibration import GROWTH as SERVICE_GROWTH
from sim.tier_path import GROWTH, MINIMUM

OURS = "calibrated"
PEER_ENDORSED_FROM = domain.PEER_ENDORSED.min_sessions  # sessions per learner where it is reachable

#: Proof MAE of ours at most this multiple of the bound's, per scenario, at ``MAE_AT`` sessions.
MAE_OVER_BOUND = {"biased": 1.10, "careless": 1.10, "colluding": 1.20}
MAE_AT = (8, 12)
UNBIASED_OVER_PLAIN = 1.02  # unbiased control: Proof MAE of ours at most this multiple of plain's
SPEARMAN_SCI_MIN = {8: 0.93, 4: 0.80}  # at these sessions per learner, every scenario
FALSE_PEER_ENDORSED_MAX = 0.02
MAX_TIER_STEP = 1

TARGETS: dict[str, Any] = {
    "proof_mae_over_bound_max": MAE_OVER_BOUND,
    "proof_mae_over_bound_at": list(MAE_AT),
    "unbiased_proof_mae_over_plain_max": UNBIASED_OVER_PLAIN,
    "spearman_sci_min": {str(k): v for k, v in SPEARMAN_SCI_MIN.items()},
    "false_peer_endorsed_max": FALSE_PEER_ENDORSED_MAX,
    "false_peer_endorsed_from_sessions": PEER_ENDORSED_FROM,
    "max_tier_step": MAX_TIER_STEP,
}


def verdict(results: dict[str, dict[str, Any]]) -> list[Check]:
    checks: list[Check] = []
    for key, row in results.items():
        name, sessions = split(key)
        ours, plain, best = row[OURS], row["plain"], row["bound"]
        if name in MAE_OVER_BOUND and sessions in MAE_AT:
            ratio = ours["proof_mae"] / best["proof_mae"]
            checks.append(Check(f"{key} Proof MAE / bound", ratio, MAE_OVER_BOUND[name], True))
        if name == "unbiased":
            ratio = ours["proof_mae"] / plain["proof_mae"]
            checks.append(Check(f"{key} Proof MAE / plain", ratio, UNBIASED_OVER_PLAIN, True))
        if sessions in SPEARMAN_SCI_MIN:
            checks.append(
                Check(f"{key} Spearman SCI", ours["spearman_sci"], SPEARMAN_SCI_MIN[sessions], False)
            )
        if sessions >= PEER_ENDORSED_FROM:
            false = ours.get("false_peer_endorsed")
            checks.append(Check(f"{key} false Peer-endorsed", false, FALSE_PEER_ENDORSED_MAX, True))
        if "path" in row and sessions >= PEER_ENDORSED_FROM:
            checks.append(Check(f"{key} max tier step", row["path"]["max_tier_step"], MAX_TIER_STEP, True))
    return checks


def not_measured(results: dict[str, dict[str, Any]], path_at: list[int]) -> list[str]:
    """What the run does not measure, and why."""
    notes: list[str] = []
    low = sorted({s for s in (split(k)[1] for k in results) if s < PEER_ENDORSED_FROM}, reverse=True)
    if low:
        notes.append(
            f"false Peer-endorsed at {', '.join(map(str, low))} sessions: not measurable (Peer-endorsed "
            f"asks for {PEER_ENDORSED_FROM} sessions, a learner has at most one a round)"
        )
    skipped = sorted({s for s in (split(k)[1] for k in results) if s not in path_at}, reverse=True)
    if skipped:
        notes.append(
            f"tier path at {', '.join(map(str, skipped))} sessions: not replayed (its calibrations are the "
            "bulk of the run)"
        )
    replayed_low = sorted({s for s in path_at if s < PEER_ENDORSED_FROM}, reverse=True)
    if replayed_low:
        notes.append(
            f"max tier step at {', '.join(map(str, replayed_low))} sessions: shown, not counted (nobody can "
            "reach Peer-endorsed there and a first rating makes a learner Practicing, so no move can "
            "exceed one tier)"
        )
    return notes


def _three(row: dict[str, Any], figure: str, models: tuple[str, ...] = (OURS, "plain", "bound")) -> str:
    return " / ".join(f"{row[m][figure]:.4f}" if figure in row[m] else "n/a" for m in models)


def _peer_endorsed(key: str, ours: dict[str, float]) -> str:
    if split(key)[1] < PEER_ENDORSED_FROM:
        return f"{ours['shown_peer_endorsed']:.3f} / n/a (< {PEER_ENDORSED_FROM} sessions)"
    false = ours.get("false_peer_endorsed")
    return f"{ours['shown_peer_endorsed']:.3f} / " + (
        "n/a (nobody shown)" if false is None else f"{false:.3f}"
    )


def _path(row: dict[str, Any]) -> str:
    if "path" not in row:
        return "not replayed"
    p = row["path"]
    return (
        f"{p['max_tier_step']:.0f} ({p['max_recalibration_step']:.0f}) / {p['tier_jump_share']:.4f} / "
        f"{p['recalibration_moves']:.0f} of {p['tier_moves']:.0f} / {p['calibrations']:.0f}"
    )


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| scenario@sessions | conn. | Proof MAE ours / plain / bound | ours ÷ bound | ours ÷ plain "
        "| Spearman SCI ours / plain / bound | Spearman Proof ours / plain / bound "
        "| tier accuracy ours / plain | Peer-endorsed shown / false (ours) "
        "| tier path: max step (on a recalibration) / share > 1 / moves by recalibrations / calibrations |",
        "|" + " --- |" * 10,
    ]
    for key, row in results.items():
        ours = row[OURS]
        cells = [
            key,
            f"{row['connectivity']:.3f}",
            _three(row, "proof_mae"),
            f"{ours['proof_mae'] / row['bound']['proof_mae']:.3f}",
            f"{ours['proof_mae'] / row['plain']['proof_mae']:.3f}",
            _three(row, "spearman_sci"),
            _three(row, "spearman_proof"),
            _three(row, "tier_accuracy", (OURS, "plain")),
            _peer_endorsed(key, ours),
            _path(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def path_settings(path_at: list[int]) -> dict[str, Any]:
    return {
        "at": path_at,
        "growth": GROWTH,
        "service_growth": SERVICE_GROWTH,
        "first_at_ratings": MINIMUM,
        "note": "fold one event at a time; recalibrate (calibrate, seniors, rescore everyone) when the "
        f"rating set has grown by {GROWTH:.0%} (the service: {SERVICE_GROWTH:.0%}, and on any growth "
        "once its calibration is a minute old)",
    }
