"""Rater calibration (pure): each rater's leniency and reliability, from all ratings in a skill.

A PG1-like model from the Piech et al. 2013 family ("Tuned Models of Peer Assessment in
MOOCs"): a rating (mean rubric score, 1..5) is ``true(ratee) + bias(rater) + noise``, with the
noise variance a property of the rater. A fixed number of alternating steps estimates:

- each ratee's true score: the precision-weighted mean of their ratings less each rater's
  bias, with a prior at the mean of all ratings (weight: the spread of true scores);
- each rater's bias: the mean of (rating - true) over what they rated, leaving the rating's own
  ratee estimate out of it, shrunk toward 0 by an empirical-Bayes factor (how much biases
  really vary beyond what noise alone explains), so honest data is left nearly as it was;
- each rater's noise variance: their mean squared residual, shrunk toward the pooled one.

The result depends only on the SET of ratings: inputs are deduplicated and sorted before any
float is summed, the number of steps is fixed, and no step depends on arrival order.

``corrector(calibration)`` plugs the result into ``domain.Corrector``: a rating becomes
``rating - bias`` on 0..1, weighted by ``PROOF_PRIOR_WEIGHT x (true-score variance / rater noise
variance)``, so the Proof prior (3 pseudo-ratings) keeps its Bayesian meaning: a prior on true
skill with the population's spread, and each rating counted by its precision (see docs/sci.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.sci.domain import PROOF_PRIOR_WEIGHT, Corrected, Corrector, EvidenceItem, rating_to_unit

VERSION = "pg1-alt-v1"
ITERATIONS = 12
VARIANCE_PRIOR_RATINGS = 6.0  # a rater's noise variance counts the pooled one as this many ratings
MIN_VARIANCE = 0.01  # on the 1..5 scale; no rater is ever taken as noiseless
MIN_TRUE_VARIANCE = 0.05
MAX_WEIGHT = 12.0  # no single rating outweighs four times the Proof prior


@dataclass(frozen=True, order=True)
class Rating:
    """One rating in the skill: ``rater_id`` gave ``ratee_id`` a mean rubric score ``value`` (1..5)."""

    ratee_id: str
    rater_id: str
    rating_id: str
    value: float


@dataclass(frozen=True)
class Calibration:
    """Per-rater bias (1..5 scale) and weight, and the version of the method that produced them."""

    version: str
    bias: Mapping[str, float]
    weight: Mapping[str, float]
    default_weight: float  # for a rater the calibration never saw
    ratings: int


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return math.fsum(listed) / len(listed) if listed else 0.0


def _variance(values: list[float]) -> float:
    mean = _mean(values)
    return _mean((v - mean) ** 2 for v in values)


def _left_out(
    r: Rating,
    num: dict[str, float],
    den: dict[str, float],
    bias: dict[str, float],
    variance: dict[str, float],
) -> float:
    """The ratee's true-score estimate without this rating (so a rater is not judged against itself)."""
    own = 1.0 / variance[r.rater_id]
    return (num[r.ratee_id] - (r.value - bias[r.rater_id]) * own) / (den[r.ratee_id] - own)


def calibrate(ratings: Iterable[Rating], *, iterations: int = ITERATIONS) -> Calibration:
    """Estimate every rater's bias and weight from all ``ratings`` in one skill."""
    ordered = sorted(set(ratings))
    if not ordered:
        return Calibration(VERSION, {}, {}, default_weight=1.0, ratings=0)
    raters = sorted({r.rater_id for r in ordered})
    by_rater: dict[str, list[Rating]] = {r: [] for r in raters}
    by_ratee: dict[str, list[Rating]] = {}
    for r in ordered:
        by_rater[r.rater_id].append(r)
        by_ratee.setdefault(r.ratee_id, []).append(r)
    prior_mean = _mean(r.value for r in ordered)
    pooled = _variance([r.value for r in ordered])
    bias = dict.fromkeys(raters, 0.0)
    variance = dict.fromkeys(raters, pooled)
    true_variance = max(MIN_TRUE_VARIANCE, pooled)
    for _ in range(iterations):
        # True scores: sums kept so a rating's own contribution can be left out below.
        num: dict[str, float] = {}
        den: dict[str, float] = {}
        for ratee, received in by_ratee.items():
            num[ratee] = prior_mean / true_variance + math.fsum(
                (r.value - bias[r.rater_id]) / variance[r.rater_id] for r in received
            )
            den[ratee] = 1.0 / true_variance + math.fsum(1.0 / variance[r.rater_id] for r in received)
        true = {ratee: num[ratee] / den[ratee] for ratee in by_ratee}
        true_variance = max(MIN_TRUE_VARIANCE, _variance([true[k] for k in sorted(true)]))

        residuals = {
            rater: [r.value - _left_out(r, num, den, bias, variance) for r in by_rater[rater]]
            for rater in raters
        }
        raw = {rater: _mean(residuals[rater]) for rater in raters}
        # Empirical Bayes: the spread of biases beyond what each rater's noise explains.
        noise_share = _mean(variance[rater] / len(by_rater[rater]) for rater in raters)
        bias_variance = max(0.0, _variance([raw[k] for k in raters]) - noise_share)
        for rater in raters:
            n = len(by_rater[rater])
            shrink = bias_variance / (bias_variance + variance[rater] / n) if bias_variance else 0.0
            bias[rater] = shrink * raw[rater]
        squared = {rater: [(e - bias[rater]) ** 2 for e in residuals[rater]] for rater in raters}
        pooled = max(MIN_VARIANCE, _mean(s for rater in raters for s in squared[rater]))
        for rater in raters:
            total = VARIANCE_PRIOR_RATINGS * pooled + math.fsum(squared[rater])
            variance[rater] = max(MIN_VARIANCE, total / (VARIANCE_PRIOR_RATINGS + len(squared[rater])))

    def weight_for(noise_variance: float) -> float:
        return min(MAX_WEIGHT, PROOF_PRIOR_WEIGHT * true_variance / noise_variance)

    return Calibration(
        version=VERSION,
        bias={rater: bias[rater] for rater in raters},
        weight={rater: weight_for(variance[rater]) for rater in raters},
        default_weight=weight_for(pooled),
        ratings=len(ordered),
    )


def corrector(calibration: Calibration) -> Corrector:
    """The ``domain.Corrector`` for this calibration: bias removed, weighted by reliability."""

    def correct(item: EvidenceItem) -> Corrected:
        bias = calibration.bias.get(item.rater_id, 0.0)
        weight = calibration.weight.get(item.rater_id, calibration.default_weight)
        return Corrected(value=rating_to_unit(item.mean - bias), weight=weight)

    return correct
