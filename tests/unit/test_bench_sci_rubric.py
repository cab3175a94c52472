"""bench.sci_rubric's figures on hand-made inputs with known answers, its averaging, its verdict
(each target can fail) and one tiny population end to end."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sci_rubric_checks import table, verdict
from bench.sci_rubric_figures import (
    ROUNDING_VARIANCE,
    Received,
    depth_mae,
    deviation_correlation,
    differences,
    plain_levels,
    posterior_deviation,
    severity_recovery,
    spearman_by_dimension,
)
from bench.sci_rubric_run import MODELS, Task, average, one


def test_depth_mae_is_over_every_learner_and_dimension_of_the_truth() -> None:
    truth = {"a": {"x": 3.0, "y": 4.0}, "b": {"x": 2.0, "y": 2.0}}
    levels = {"a": {"x": 3.5, "y": 3.0}, "b": {"x": 2.0, "y": 2.5}, "c": {"x": 1.0, "y": 1.0}}
    assert depth_mae(levels, truth) == pytest.approx((0.5 + 1.0 + 0.0 + 0.5) / 4)  # c has no truth
    with pytest.raises(ValueError):
        depth_mae({"a": {"x": 3.0}}, truth)  # no level for a/y nor b


def test_rank_correlation_per_dimension() -> None:
    truth = {i: {"x": float(k), "y": float(k)} for k, i in enumerate("abcd")}
    levels = {i: {"x": 10.0 * k, "y": -float(k)} for k, i in enumerate("abcd")}
    assert spearman_by_dimension(levels, truth) == {"x": pytest.approx(1.0), "y": pytest.approx(-1.0)}


def test_deviation_correlation_reads_each_level_less_the_learners_overall() -> None:
    truth = {"a": {"x": 4.0, "y": 2.0}, "b": {"x": 3.0, "y": 3.5}}  # true deviations +1 -1, -0.25 +0.25
    overall = {"a": 3.5, "b": 1.0}  # the model's own overall: only level - overall counts
    levels = {"a": {"x": 4.5, "y": 2.5}, "b": {"x": 0.75, "y": 1.25}}  # deviations +1 -1, -0.25 +0.25
    assert deviation_correlation(levels, overall, truth) == pytest.approx(1.0)
    flat = {"a": {"x": 3.0, "y": 3.0}}
    assert deviation_correlation({"a": {"x": 3.5, "y": 2.5}}, {"a": 3.0}, flat) is None  # nothing to find


def test_the_posterior_deviation_in_closed_form() -> None:
    # 3 dimensions; dimension sd^2 = 2/3 gives a prior variance a = 2/3 * 3/2 = 1 per axis of the
    # centred space; noise variance 1 - 1/12 plus rounding's 1/12 gives v = 1: posterior = y / 2.
    noise = 1.0 - ROUNDING_VARIANCE
    sd = (2.0 / 3.0) ** 0.5
    one_rating = [Received({"x": 5, "y": 3, "z": 1}, {}, noise)]  # residuals +2 0 -2
    assert posterior_deviation(one_rating, sd) == pytest.approx({"x": 1.0, "y": 0.0, "z": -1.0})
    harsh = [Received({"x": 5, "y": 3, "z": 1}, {"x": 1.0, "z": -1.0}, noise)]  # less severity: +1 0 -1
    assert posterior_deviation(harsh, sd) == pytest.approx({"x": 0.5, "y": 0.0, "z": -0.5})
    two = [*one_rating, Received({"x": 3, "y": 3, "z": 3}, {}, noise)]  # (2 + 0) / (1 + 2) = 2/3
    assert posterior_deviation(two, sd)["x"] == pytest.approx(2.0 / 3.0)
    assert posterior_deviation(one_rating, 0.0) == {"x": 0.0, "y": 0.0, "z": 0.0}  # no spread: none
    assert posterior_deviation([], sd) == {}


def test_plain_levels_average_each_dimension() -> None:
    assert plain_levels([{"x": 1, "y": 5}, {"x": 3, "y": 5}]) == {"x": 2.0, "y": 5.0}


def test_severity_recovery() -> None:
    true = {"r1": {"x": 0.4, "y": -0.4}, "r2": {"x": -0.2, "y": 0.2}, "r3": {}}
    halved = {"r1": {"x": 0.2, "y": -0.2}, "r2": {"x": -0.1, "y": 0.1}}
    found = severity_recovery(halved, true, ["r1", "r2", "r3"])
    assert found["severity_correlation"] == pytest.approx(1.0)  # shrunk, but in the right order
    assert found["severity_kept_share"] == pytest.approx(2 / 3)
    none_kept = severity_recovery({}, true, ["r1", "r2", "r3"])
    assert none_kept == {"severity_correlation": 0.0, "severity_kept_share": 0.0}  # nothing recovered
    no_truth = severity_recovery({"r1": {"x": 0.1, "y": 0.0}}, {"r1": {}, "r2": {}}, ["r1", "r2"])
    assert no_truth == {"severity_correlation": None, "severity_kept_share": 0.5}


def test_differences_count_learners_missing_from_one_side() -> None:
    assert differences({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.5, "c": 0.0}) == 2
    assert differences({"a": 1.0}, {"a": 1.0}) == 0


def test_seeds_are_averaged_counts_summed_and_a_missing_figure_skipped() -> None:
    runs: list[dict[str, Any]] = [
        {"models": {"ours": {"mae": 0.2, "deviation_correlation": None}}, "proof_differences": 1},
        {"models": {"ours": {"mae": 0.3, "deviation_correlation": 0.5}}, "proof_differences": 2},
    ]
    assert average(runs) == {
        "models": {"ours": {"mae": 0.25, "deviation_correlation": 0.5}},
        "proof_differences": 3,
    }


def row(mae: dict[str, float], *, correlation: float | None = None, kept: float = 0.0, proof: int = 0) -> Any:
    models = {m: {"mae": mae.get(m, 0.5), "spearman": 0.9, "deviation_correlation": None} for m in MODELS}
    return {
        "models": models,
        "spearman_by_dimension": {m: {"x": 0.9, "y": 0.8} for m in MODELS},
        "severity_correlation": correlation,
        "severity_kept_share": kept,
        "proof_differences": proof,
        "calibration": {"rubric_prior": 1.5, "severity_variance": 0.1},
    }


def test_each_target_is_missed_when_its_figure_misses_it() -> None:
    results = {
        "rubric@4": row({"ours": 0.30, "plain": 0.30}, kept=1.0),  # not below plain; severities kept
        "rubric@8": row({"ours": 0.25, "plain": 0.27}),
        "rubric-severity@8": row(
            {"ours": 0.29, "no_severity": 0.28, "plain": 0.30}, correlation=0.55, kept=1.0
        ),  # worse with severity than without; correlation below 0.6; severities belong here
        "rubric-severity@12": row({"ours": 0.24, "no_severity": 0.25, "plain": 0.26}, correlation=None),
        "rubric-severity@4": row(
            {"ours": 0.38, "no_severity": 0.37, "plain": 0.39}
        ),  # no severity target at 4
        "biased@8": row({"ours": 0.1820, "overall_only": 0.18}, proof=1),  # 1.011 > 1.01; a Proof moved
        "biased@12": row({"ours": 0.1615, "overall_only": 0.16}),  # 1.009: met
    }
    checks = {c.name: c for c in verdict(results)}
    assert {name for name, c in checks.items() if not c.ok} == {
        "rubric@4 depth MAE ours / plain",
        "rubric@4 share of raters given a severity",
        "rubric-severity@8 depth MAE ours / ours without severity",
        "rubric-severity@8 severity correlation",
        "biased@8 depth MAE ours / overall-only",
        "biased@8 Proof differences with / without severity",
    }
    assert "rubric-severity@4 depth MAE ours / ours without severity" not in checks
    assert "rubric-severity@12 severity correlation" not in checks  # the target is at 8 sessions
    assert "rubric-severity@8 share of raters given a severity" not in checks
    missed = checks["biased@8 depth MAE ours / overall-only"]
    assert missed.margin == pytest.approx(1.01 - 0.182 / 0.18)
    assert "missed by 0.0011" in missed.line()
    unmeasured = {c.name: c for c in verdict({"rubric-severity@8": row({}, correlation=None)})}
    assert "nothing measured" in unmeasured["rubric-severity@8 severity correlation"].line()
    assert not unmeasured["rubric-severity@8 severity correlation"].ok
    text = table(results)
    assert text.count("\n") == 2 * (2 + len(results)) and "n/a" in text


def test_one_tiny_population_end_to_end() -> None:
    out = one(Task("rubric-severity", 3, 7, 40))
    assert out["learners"] > 30 and out["raters"] > 30
    assert out["proof_differences"] == 0 and out["score_differences"] == 0
    assert set(out["models"]) == set(MODELS)
    assert out["severity_correlation"] is not None
    ours = out["models"]["ours"]["mae"]
    assert 0.0 < ours < out["models"]["overall_only"]["mae"]
