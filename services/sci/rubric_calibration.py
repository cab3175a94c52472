"""Rater severity per rubric dimension (pure), from a skill's ratings' rubric scores.

The model of ``services.sci.domain.rubric``: a rating's residual on dimension ``d`` (its score
less its own mean) is ``depth(ratee, d) + severity(rater, d) + noise``. A fixed number of
alternating steps estimates both, each shrunk toward zero by an empirical-Bayes factor:

- ``depth``: per ratee, the mean of their residuals less their raters' severity, shrunk by
  ``k_depth = noise variance / variance of true depths`` pseudo-ratings;
- ``severity``: per rater, the mean of the residuals they gave less each ratee's depth
  *without* that rating (a ratee's depth seen through one rater would otherwise absorb that
  rater's lean), shrunk by ``k_severity``, then centred per dimension over the raters: a
  severity is relative to the other raters, so what every rater does alike stays the learners'.

The variances come from the data: the noise variance from the residuals' spread around each
ratee's own mean (less the severity found so far: what a rater's lean explains is not noise),
the variance of true depths (and severities) from how much the ratees' (and raters') mean
residuals spread beyond what that noise explains (for the raters, beyond that noise and the
error of the ratee depths their residuals are read against). Where the data carries no
severity (raters who all lean alike on every dimension), ``k_severity`` is infinite and every
severity is 0, so the model costs nothing when it has nothing to find.

The result depends only on the SET of ratings: they are sorted before any float is summed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.sci.domain import DEFAULT_RUBRIC_PRIOR

ITERATIONS = 6
#: Learners whose depths spread less than this (sd 0.1 of a rubric point) differ by none: no depth.
MIN_VARIANCE = 0.01
#: Raters whose severities spread less than this (sd 0.1 of a rubric point) lean alike: none is kept.
MIN_SEVERITY_VARIANCE = 0.01
SEVERITY_DIGITS = 3  # severities are kept to the thousandth (the calibration document's size)


@dataclass(frozen=True, order=True)
class RubricRating:
    """One rating's residuals: ``scores`` less their own mean, per dimension (1..5 scale)."""

    ratee_id: str
    rater_id: str
    rating_id: str
    residuals: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class RubricCalibration:
    """Per rater and dimension, their severity; and the pseudo-ratings depth is shrunk by."""

    severity: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    prior: float = DEFAULT_RUBRIC_PRIOR
    noise_variance: float = 0.0
    depth_variance: float = 0.0
    severity_variance: float = 0.0


NO_RUBRIC = RubricCalibration()


def residuals_of(scores: Mapping[str, int] | Iterable[tuple[str, int]]) -> tuple[tuple[str, float], ...]:
    """A rating's rubric scores less their mean, sorted by dimension."""
    pairs = sorted(dict(scores).items())
    mean = math.fsum(v for _, v in pairs) / len(pairs)
    return tuple((d, v - mean) for d, v in pairs)


def _grouped(ratings: list[RubricRating], by_rater: bool) -> dict[str, list[RubricRating]]:
    groups: dict[str, list[RubricRating]] = {}
    for r in ratings:
        groups.setdefault(r.rater_id if by_rater else r.ratee_id, []).append(r)
    return groups


def _means(
    group: list[RubricRating], less: Mapping[str, Mapping[str, float]], by_rater: bool
) -> dict[str, float]:
    """Per dimension, the sum of a group's residuals less the other side's estimate."""
    sums: dict[str, list[float]] = {}
    for r in group:
        other = less.get(r.ratee_id if by_rater else r.rater_id, {})
        for d, value in r.residuals:
            sums.setdefault(d, []).append(value - other.get(d, 0.0))
    return {d: math.fsum(values) for d, values in sums.items()}


def _between(
    groups: dict[str, list[RubricRating]],
    sums: Mapping[str, Mapping[str, float]],
    noise: float,
    leak: Mapping[str, float] | None = None,
) -> float:
    """The variance of the groups' true effects: their raw means' spread less what noise explains
    (``leak``: per group, the variance its sums take on besides, summed over its ratings)."""
    squares: list[float] = []
    excess: list[float] = []
    for key in sorted(groups):
        n = len(groups[key])
        extra = leak.get(key, 0.0) if leak else 0.0
        for value in sums[key].values():
            squares.append((value / n) ** 2)
            excess.append((n * noise + extra) / (n * n))
    if not squares:
        return 0.0
    return max(0.0, (math.fsum(squares) - math.fsum(excess)) / len(squares))


def calibrate_rubric(ratings: Iterable[RubricRating], iterations: int = ITERATIONS) -> RubricCalibration:
    """Each rater's severity per dimension and the depth prior, from ratings with rubric scores."""
    ordered = sorted(set(r for r in ratings if r.residuals))
    if not ordered:
        return NO_RUBRIC
    ratees, raters = _grouped(ordered, by_rater=False), _grouped(ordered, by_rater=True)
    severity: dict[str, dict[str, float]] = {}
    noise, depth_variance, k_depth = _spread(ratees, severity)
    if noise <= 0.0:
        return NO_RUBRIC
    severity_variance = 0.0
    for _ in range(iterations):
        seen = {i: _means(g, severity, False) for i, g in ratees.items()} if math.isfinite(k_depth) else {}
        raw = {r: _loo_sums(g, ratees, seen, severity, k_depth) for r, g in raters.items()}
        severity_variance = _between(raters, raw, noise, _depth_error(raters, ratees, noise, k_depth))
        if severity_variance < MIN_SEVERITY_VARIANCE:
            severity = {}
            noise, depth_variance, k_depth = _spread(ratees, severity)
            break
        severity = _centred(raters, raw, noise / severity_variance)
        # the severity found is no longer noise: the spreads are taken again without it
        noise, depth_variance, k_depth = _spread(ratees, severity)
    rounded = {
        r: {d: round(v, SEVERITY_DIGITS) for d, v in sorted(lean.items()) if round(v, SEVERITY_DIGITS)}
        for r, lean in sorted(severity.items())
    }
    return RubricCalibration(
        severity={r: lean for r, lean in rounded.items() if lean},
        prior=round(k_depth, 3) if math.isfinite(k_depth) else 1e6,
        noise_variance=noise,
        depth_variance=depth_variance,
        severity_variance=severity_variance,
    )


def _spread(
    ratees: dict[str, list[RubricRating]], severity: Mapping[str, Mapping[str, float]]
) -> tuple[float, float, float]:
    """The noise variance, the variance of true depths and the depth prior (pseudo-ratings,
    infinite when learners do not differ between dimensions), with ``severity`` taken out."""
    noise = _noise(ratees, severity)
    if noise <= 0.0:
        return 0.0, 0.0, math.inf
    depth_variance = _between(ratees, {i: _means(g, severity, False) for i, g in ratees.items()}, noise)
    return noise, depth_variance, noise / depth_variance if depth_variance > MIN_VARIANCE else math.inf


def _noise(ratees: dict[str, list[RubricRating]], severity: Mapping[str, Mapping[str, float]]) -> float:
    """The pooled variance of residuals (less their rater's severity) around each ratee's own
    mean, per dimension."""
    total: list[float] = []
    freedom = 0
    for key in sorted(ratees):
        group = ratees[key]
        if len(group) < 2:
            continue
        sums = _means(group, severity, False)
        n = len(group)
        for d, s in sums.items():
            mean = s / n
            total.append(
                math.fsum(
                    (dict(r.residuals).get(d, mean) - severity.get(r.rater_id, {}).get(d, 0.0) - mean) ** 2
                    for r in group
                )
            )
            freedom += n - 1
    return math.fsum(total) / freedom if freedom else 0.0


def _depth_error(
    raters: dict[str, list[RubricRating]], ratees: dict[str, list[RubricRating]], noise: float, k: float
) -> dict[str, float]:
    """Per rater, the variance the ratees' depths estimated without their ratings add to the sums
    of their residuals: a depth read from ``m`` other ratings errs by about noise / (m + k). Left
    out, it reads as severity where there is none when learners have few ratings each."""
    if not math.isfinite(k):
        return {}
    return {
        r: math.fsum(noise / (len(ratees[x.ratee_id]) - 1 + k) for x in group if len(ratees[x.ratee_id]) > 1)
        for r, group in sorted(raters.items())
    }


def _loo_sums(
    group: list[RubricRating],
    ratees: dict[str, list[RubricRating]],
    seen: Mapping[str, Mapping[str, float]],
    severity: Mapping[str, Mapping[str, float]],
    k: float,
) -> dict[str, float]:
    """Per dimension, the sum of a rater's residuals less each ratee's depth without this rating
    (``seen``: per ratee and dimension, their residuals less their raters' severity, summed)."""
    sums: dict[str, list[float]] = {}
    lean = severity.get(group[0].rater_id, {}) if group else {}
    for r in group:
        others = len(ratees[r.ratee_id])
        sum_of = seen.get(r.ratee_id, {})
        for d, value in r.residuals:
            depth = 0.0
            if sum_of:
                depth = (sum_of.get(d, 0.0) - (value - lean.get(d, 0.0))) / (others - 1 + k)
            sums.setdefault(d, []).append(value - depth)
    return {d: math.fsum(values) for d, values in sums.items()}


def _centred(
    raters: dict[str, list[RubricRating]], sums: Mapping[str, Mapping[str, float]], k: float
) -> dict[str, dict[str, float]]:
    """Shrunk severities, less their rating-weighted mean per dimension over the raters."""
    shrunk = {r: {d: s / (len(raters[r]) + k) for d, s in sums[r].items()} for r in sorted(raters)}
    centre: dict[str, float] = {}
    for d in sorted({d for lean in shrunk.values() for d in lean}):
        weighted = [(len(raters[r]), lean[d]) for r, lean in shrunk.items() if d in lean]
        centre[d] = math.fsum(n * v for n, v in weighted) / sum(n for n, _ in weighted)
    return {r: {d: v - centre[d] for d, v in lean.items()} for r, lean in shrunk.items()}
