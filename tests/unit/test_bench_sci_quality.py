"""bench.sci_quality's verdict, averaging and table on hand-made figures: each check can fail."""

from __future__ import annotations

from typing import Any

from bench.sci_quality_checks import not_measured, table, verdict
from bench.sci_quality_run import average


def model(mae: float, spearman: float = 0.95, false: float | None = None) -> dict[str, float]:
    figs = {
        "proof_mae": mae,
        "spearman_sci": spearman,
        "spearman_proof": spearman,
        "tier_accuracy": 0.9,
        "shown_peer_endorsed": 0.1 if false is not None else 0.0,
    }
    if false is not None:
        figs["false_peer_endorsed"] = false
    return figs


def row(ours: dict[str, float], plain: float, bound: float, step: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "connectivity": 1.0,
        "calibrated": ours,
        "plain": model(plain),
        "bound": model(bound),
        "shrunk": model(plain),
    }
    if step is not None:
        out["path"] = {
            "max_tier_step": step,
            "max_recalibration_step": step,
            "tier_jump_share": 0.001,
            "tier_moves": 100.0,
            "recalibration_moves": 10.0,
            "calibrations": 40.0,
            "jumps": [],
        }
    return out


def test_each_target_is_missed_when_the_figure_misses_it_and_met_when_it_meets_it() -> None:
    results = {
        "biased@8": row(model(0.045), plain=0.05, bound=0.040),  # 1.125 > 1.10: missed
        "careless@12": row(model(0.043, false=0.0), plain=0.05, bound=0.040),  # 1.075: met
        "colluding@8": row(
            model(0.047, spearman=0.92), plain=0.05, bound=0.040
        ),  # 1.175 <= 1.20; 0.92 < 0.93
        "unbiased@4": row(model(0.0515, spearman=0.81), plain=0.05, bound=0.049),  # 1.03 > 1.02
        "biased@16": row(model(0.04, false=0.03), plain=0.05, bound=0.035, step=2.0),
        "careless@16": row(model(0.04), plain=0.05, bound=0.035, step=1.0),  # nobody shown Peer-endorsed
        "unbiased@16": row(model(0.04, false=0.01), plain=0.038, bound=0.039, step=1.0),  # 1.053 > 1.02
        "careless@4": row(model(0.07), plain=0.08, bound=0.05, step=1.0),  # a step there cannot exceed 1
    }
    checks = {c.name: c for c in verdict(results)}
    assert {name for name, c in checks.items() if not c.ok} == {
        "biased@8 Proof MAE / bound",
        "colluding@8 Spearman SCI",
        "unbiased@4 Proof MAE / plain",
        "biased@16 false Peer-endorsed",
        "biased@16 max tier step",
        "careless@16 false Peer-endorsed",
        "unbiased@16 Proof MAE / plain",
    }
    assert checks["careless@16 false Peer-endorsed"].value is None  # nothing measured is no pass
    # counted only where they can fail: no bound target at 16, no false Peer-endorsed below 10 sessions
    assert "biased@16 Proof MAE / bound" not in checks
    assert "biased@8 false Peer-endorsed" not in checks
    assert "careless@12 max tier step" not in checks  # its path was not replayed
    assert "careless@4 max tier step" not in checks  # replayed, but below 10 sessions it cannot fail
    assert checks["unbiased@4 Spearman SCI"].ok and checks["careless@12 Proof MAE / bound"].ok


def test_seeds_average_but_the_largest_step_is_the_largest_and_a_missing_figure_is_skipped() -> None:
    a = row(model(0.04, false=0.02), plain=0.05, bound=0.03, step=1.0)
    b = row(model(0.06), plain=0.07, bound=0.05, step=2.0)
    b["path"]["jumps"] = [["L1", 2, 4, True]]
    avg = average([a, b])
    assert avg["calibrated"]["proof_mae"] == 0.05
    assert avg["calibrated"]["false_peer_endorsed"] == 0.02  # the one seed that measured it
    assert avg["path"]["max_tier_step"] == 2.0 and avg["path"]["tier_moves"] == 100.0
    assert avg["path"]["jumps"] == [["L1", 2, 4, True]]


def test_the_table_and_the_notes_say_what_was_not_measured() -> None:
    results = {
        "biased@16": row(model(0.04, false=0.0), plain=0.05, bound=0.035, step=1.0),
        "biased@8": row(model(0.045), plain=0.05, bound=0.040),
    }
    text = table(results)
    assert "n/a (< 10 sessions)" in text and "not replayed" in text and "1.143" in text
    notes = not_measured(results, [16])
    assert any("false Peer-endorsed at 8 sessions" in n for n in notes)
    assert any("tier path at 8 sessions: not replayed" in n for n in notes)
    notes = not_measured(results, [16, 8])
    assert any("max tier step at 8 sessions: shown, not counted" in n for n in notes)
    assert not any("not replayed" in n for n in notes)
