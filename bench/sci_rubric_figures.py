"""The figures of ``bench.sci_rubric`` (pure): depth error per rubric dimension, rank correlation,
the reference posterior, the severity the calibration recovers and Proof with and without it.

A *level* is a learner's depth on one dimension, on the rubric's 1..5 scale; a model's levels
are ``{learner: {dimension: level}}`` and are compared with the true ones
(``Learner.dimension_quality``) over every learner and dimension both have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sim.metrics import pearson, spearman

Levels = Mapping[str, Mapping[str, float]]  # learner -> dimension -> level (1..5)
Lean = Mapping[str, Mapping[str, float]]  # rater -> dimension -> severity (rubric points)

#: The variance rounding a score to a whole point adds, taken as uniform error independent of
#: the rest (the reference's one concession to rounding; clipping to 1..5 it ignores).
ROUNDING_VARIANCE = 1.0 / 12.0


def _pairs(levels: Levels, truth: Levels) -> list[tuple[float, float]]:
    return [
        (levels[i][d], truth[i][d]) for i in sorted(truth) for d in sorted(truth[i]) if d in levels.get(i, {})
    ]


def depth_mae(levels: Levels, truth: Levels) -> float:
    """Mean absolute error over every (learner, dimension) of ``truth`` (each must have a level)."""
    pairs = _pairs(levels, truth)
    if len(pairs) != sum(len(t) for t in truth.values()):
        raise ValueError("a model has no level for some learner and dimension of the truth")
    return math.fsum(abs(a - b) for a, b in pairs) / len(pairs)


def spearman_by_dimension(levels: Levels, truth: Levels) -> dict[str, float]:
    """Per dimension, the rank correlation of the levels with the true ones over the learners."""
    dimensions = sorted({d for t in truth.values() for d in t})
    out: dict[str, float] = {}
    for d in dimensions:
        learners = [i for i in sorted(truth) if d in truth[i]]
        out[d] = spearman([levels[i][d] for i in learners], [truth[i][d] for i in learners])
    return out


def deviation_correlation(levels: Levels, overall: Mapping[str, float], truth: Levels) -> float | None:
    """Pearson correlation, over every (learner, dimension), of the level less the learner's own
    ``overall`` with the true level less the learner's true mean level: does the model see which
    dimensions a learner is stronger on? None when the truth has no such differences."""
    found: list[float] = []
    true: list[float] = []
    for i in sorted(truth):
        centre = math.fsum(truth[i].values()) / len(truth[i])
        for d in sorted(truth[i]):
            found.append(levels[i][d] - overall[i])
            true.append(truth[i][d] - centre)
    if not found or max(abs(t) for t in true) < 1e-9:
        return None
    return pearson(found, true)


@dataclass(frozen=True)
class Received:
    """One rating as the reference sees it: its rubric scores, and the true severity per dimension
    and noise variance (1..5 scale, before rounding) of the rater who gave it."""

    scores: Mapping[str, int]
    severity: Mapping[str, float]
    noise_variance: float


def posterior_deviation(received: Sequence[Received], dimension_sd: float) -> dict[str, float]:
    """Per dimension, the posterior mean of a learner's true deviation from their overall level,
    given the ratings received, the raters' TRUE severities and noise, and the TRUE spread of
    deviations (the simulator's ``dimension_sd``), under the simulator's model without its
    rounding and clipping.

    A rating's residual (score less the rating's own mean) less its rater's severity is the
    deviation plus the rater's noise, both centred over the D dimensions; in that centred space
    both are isotropic, the deviation with variance ``a = dimension_sd^2 D / (D - 1)`` per axis
    (the simulator scales its centred draws so each dimension's sd is ``dimension_sd``) and the
    noise with ``v = noise variance + 1/12``. So the posterior mean is

        sum_j y_j / v_j  /  (1 / a + sum_j 1 / v_j)

    for every dimension alike (0 everywhere with no spread of deviations or no ratings).
    """
    if not received:
        return {}
    dimensions = sorted({d for r in received for d in r.scores})
    if dimension_sd <= 0:
        return dict.fromkeys(dimensions, 0.0)
    prior = dimension_sd**2 * len(dimensions) / (len(dimensions) - 1)
    seen = dict.fromkeys(dimensions, 0.0)
    precision = 1.0 / prior
    for r in received:
        v = r.noise_variance + ROUNDING_VARIANCE
        mean = math.fsum(r.scores.values()) / len(r.scores)
        for d in dimensions:
            seen[d] += (r.scores[d] - mean - r.severity.get(d, 0.0)) / v
        precision += 1.0 / v
    return {d: s / precision for d, s in seen.items()}


def plain_levels(scores: Iterable[Mapping[str, int]]) -> dict[str, float]:
    """Per dimension, the plain mean of the rubric scores received."""
    given = list(scores)
    dimensions = sorted({d for s in given for d in s})
    return {d: math.fsum(s[d] for s in given if d in s) / sum(d in s for s in given) for d in dimensions}


def clipped(value: float) -> float:
    return min(5.0, max(1.0, value))


def severity_recovery(estimated: Lean, true: Lean, raters: Iterable[str]) -> dict[str, float | None]:
    """How the calibration's severities compare with the raters' true ones, over ``raters`` (those
    who gave rubric scores):

    - ``severity_correlation``: Pearson over every (rater, dimension) with a true severity, a rater
      given none counted as 0 (so none kept anywhere is 0; None when no rater has a true severity);
    - ``severity_kept_share``: the share of ``raters`` given any severity at all.
    """
    every = sorted(set(raters))
    found: list[float] = []
    actual: list[float] = []
    for r in every:
        for d, value in sorted(true.get(r, {}).items()):
            found.append(estimated.get(r, {}).get(d, 0.0))
            actual.append(value)
    kept = sum(1 for r in every if any(estimated.get(r, {}).values()))
    correlation = pearson(found, actual) if len(found) > 2 else None
    return {
        "severity_correlation": correlation,
        "severity_kept_share": kept / len(every) if every else 0.0,
    }


def differences(with_severity: Mapping[str, float], without: Mapping[str, float]) -> int:
    """How many learners' figure differs between the two (a learner missing from one counts)."""
    return sum(1 for i in with_severity.keys() | without.keys() if with_severity.get(i) != without.get(i))
