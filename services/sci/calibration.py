"""Rater calibration (pure): each rater's leniency, reliability and informativeness, from a skill's ratings.

A PG1-like model from the Piech et al. 2013 family ("Tuned Models of Peer Assessment in
MOOCs"), made aware of the 1..5 bounds. A rating (mean rubric score) is the mean of rubric
scores ``clip(round(true(ratee) + bias(rater) + e), 1, 5)``, so its expected value is
``link(true + bias)``, with ``link(x) = 1 + sum_k P(x + e > k + 0.5)`` for k = 1..4 and
``e ~ N(0, LINK_SD^2)``: the identity in the middle of the scale, flattening toward 1 and 5
(a censored model; a plain mean reads a 4.8 learner rated mostly 5s as about 4.5). A fixed
number of alternating steps estimates:

- each ratee's true score (latent, 1..5 scale): one Gauss-Newton (IRLS) step per round on
  the ratings less their raters' bias through the link, with a population prior (mean and
  variance of the true scores, estimated from the set: empirical Bayes);
- each rater's bias: the mean residual of their ratings against the ratee's estimate
  *without* that rating, shrunk toward 0 by an empirical-Bayes factor (how much biases vary
  beyond what noise explains), so honest data is left nearly as it was;
- each rater's noise variance: their mean squared residual, shrunk toward the pooled one;
- each rater's informativeness: a careless rater gives (nearly) the same rating to everyone,
  so the spread of their ratings across ratees is far below what the ratees' spread plus
  their own noise predicts. Informativeness = min(1, observed / expected spread / knee),
  with at least 3 ratings to judge; it multiplies the rater's weight.

The result depends only on the SET of ratings: inputs are deduplicated and sorted before any
float is summed, the number of steps is fixed, and no step depends on arrival order.

``Calibration.correction()`` is what the score uses (``domain.Correction``): per rater a bias
and a weight ``PROOF_PRIOR_WEIGHT x true variance x informativeness / noise variance``, and the
population prior (mean of the true scores, ``PROOF_PRIOR_WEIGHT`` x ``PRIOR_STRENGTH``
pseudo-ratings). A per-rater correction keeps every sum the score needs a function of the
per-rater tallies, so the fold never re-reads items. ``digest`` names the exact rating set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from services.sci.collusion import NONE as NO_SUSPICION
from services.sci.collusion import Suspicion, suspect
from services.sci.domain import (
    DEFAULT_PRIOR,
    PROOF_PRIOR_WEIGHT,
    Correction,
    Prior,
    rating_to_unit,
)
from services.sci.rubric_calibration import NO_RUBRIC, RubricCalibration, RubricRating, calibrate_rubric

VERSION = "pg1-link-v3"  # v3: the score applies it per rater (bias and weight), not per rating
ITERATIONS = 16
LINK_SD = 0.8  # per-rubric-score spread assumed by the link (1..5 scale)
MIN_SLOPE = 0.5  # the link's slope is never taken as flatter than this (a rating always says something)
VARIANCE_PRIOR_RATINGS = 100.0  # a rater's noise variance counts the pooled one as this many ratings
MIN_VARIANCE = 0.01  # on the 1..5 scale; no rater is ever taken as noiseless
MIN_TRUE_VARIANCE = 0.05
MAX_WEIGHT = 30.0  # a cap on any one rating's weight (the Bayesian prior is 3)
INFORMATIVE_MIN_RATINGS = 3
INFORMATIVE_KNEE = 0.15  # observed / expected spread at which a rater counts fully
MIN_INFORMATIVE = 0.02
PRIOR_STRENGTH = 0.5  # the population prior's weight, in units of the Bayesian one (tuned by the bench)


@dataclass(frozen=True, order=True)
class Rating:
    """One rating in the skill: ``rater_id`` gave ``ratee_id`` a mean rubric score ``value`` (1..5)."""

    ratee_id: str
    rater_id: str
    rating_id: str
    value: float
    #: its rubric scores less their mean, per dimension (``rubric_calibration``); empty when the
    #: rating was stored before its scores were kept. Not part of a rating's identity or digest.
    residuals: tuple[tuple[str, float], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Calibration:
    """Per-rater bias (1..5 scale), weight and informativeness, over a rating set named by ``digest``."""

    version: str
    bias: Mapping[str, float]
    weight: Mapping[str, float]
    default_weight: float  # for a rater the calibration never saw
    ratings: int
    digest: str = ""
    informative: Mapping[str, float] = field(default_factory=dict)
    given: Mapping[str, int] = field(default_factory=dict)  # ratings each rater gave in the set
    collusion: Suspicion = NO_SUSPICION  # pairs whose ratings of each other were left out
    prior_mean: float = 3.0  # 1..5 scale
    prior_weight: float = PROOF_PRIOR_WEIGHT
    rubric: RubricCalibration = NO_RUBRIC  # raters' severity per rubric dimension

    def prior(self) -> Prior:
        """The Proof prior this calibration implies (the domain default when it saw nothing)."""
        if not self.ratings:
            return DEFAULT_PRIOR
        return Prior(mean=rating_to_unit(self.prior_mean), weight=self.prior_weight)

    def correction(self) -> Correction:
        """What the score uses: per-rater bias and weight, and the prior."""
        return Correction(
            bias=dict(self.bias),
            weight=dict(self.weight),
            default_weight=self.default_weight,
            prior=self.prior(),
            ratings=self.ratings,
            version=self.version,
            digest=self.digest,
            informative=dict(self.informative),
            given=dict(self.given),
            collusive=frozenset(self.collusion.pairs),
            severity=dict(self.rubric.severity),
            rubric_prior=self.rubric.prior if self.ratings else None,
        )


#: A rater whose ratings say this little about who is better, or who sits this far from their
#: peers (1.5 points on the 1..5 scale), is discounted and shown to operators
#: (``discounted_raters``; never a public label).
DISCOUNT_INFORMATIVE = 0.2
DISCOUNT_BIAS = 1.5


def discounted_raters(calibration: Calibration) -> list[str]:
    """Raters the calibration (nearly) silences: careless (the same rating for everyone, such as
    a 1 to every partner) or biased by 1.5 points or more. Their ratings still count, at their
    weight, corrected by their bias: this list is what operators watch."""
    found = {r for r, value in calibration.informative.items() if value < DISCOUNT_INFORMATIVE}
    found |= {r for r, value in calibration.bias.items() if abs(value) >= DISCOUNT_BIAS}
    return sorted(found)


def digest_of(ordered: Iterable[Rating]) -> str:
    """A short name for a rating set (given deduplicated and sorted)."""
    h = hashlib.sha256()
    for r in ordered:
        h.update(f"{r.ratee_id}\x1f{r.rater_id}\x1f{r.rating_id}\x1f{r.value!r}\x1e".encode())
    return h.hexdigest()[:16]


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return math.fsum(listed) / len(listed) if listed else 0.0


def _variance(values: list[float]) -> float:
    mean = _mean(values)
    return _mean((v - mean) ** 2 for v in values)


_SQRT2 = math.sqrt(2.0)
_DENSITY_SCALE = LINK_SD * math.sqrt(2.0 * math.pi)
_fsum, _erfc, _exp = math.fsum, math.erfc, math.exp


def _upper(x: float) -> float:
    """P(N(0, 1) > x)."""
    return 0.5 * _erfc(x / _SQRT2)


# link and slope run some twenty million times in a large skill's calibration: their four terms
# are written out (the same floats, summed exactly by fsum, as a loop over k = 1..4 gives).


def link(x: float) -> float:
    """Expected rubric score (1..5) of a rater whose unrounded, unclipped score would be ``x``."""
    return 1.0 + _fsum(
        (
            0.5 * _erfc(((1.5 - x) / LINK_SD) / _SQRT2),
            0.5 * _erfc(((2.5 - x) / LINK_SD) / _SQRT2),
            0.5 * _erfc(((3.5 - x) / LINK_SD) / _SQRT2),
            0.5 * _erfc(((4.5 - x) / LINK_SD) / _SQRT2),
        )
    )


def slope(x: float) -> float:
    """d link / dx, held at or above ``MIN_SLOPE``."""
    a, b, c, d = (1.5 - x) / LINK_SD, (2.5 - x) / LINK_SD, (3.5 - x) / LINK_SD, (4.5 - x) / LINK_SD
    density = (
        _fsum((_exp(-0.5 * a**2), _exp(-0.5 * b**2), _exp(-0.5 * c**2), _exp(-0.5 * d**2))) / _DENSITY_SCALE
    )
    return max(MIN_SLOPE, density)


def calibrate(
    ratings: Iterable[Rating], *, iterations: int = ITERATIONS, detect_collusion: bool = True
) -> Calibration:
    """Estimate every rater's bias and weight from all ``ratings``; pairs suspected of collusion
    (``services.sci.collusion``) are found on a first estimate, and the estimate is made again
    without their ratings of each other. Counts and the digest are of the whole set."""
    ordered = sorted(set(ratings))
    first = _estimate(ordered, iterations)
    if not detect_collusion:  # what the calibration was without the defence (the bench compares)
        return replace(first, rubric=_rubric(ordered))
    suspicion = suspect(ordered, first.bias, first.weight, first.default_weight)
    if not suspicion.pairs:
        return replace(first, rubric=_rubric(ordered))
    kept = [r for r in ordered if not suspicion.is_discounted(r.rater_id, r.ratee_id)]
    again = _estimate(kept, iterations)
    given: dict[str, int] = {}
    for r in ordered:
        given[r.rater_id] = given.get(r.rater_id, 0) + 1
    return replace(
        again,
        ratings=len(ordered),
        digest=digest_of(ordered),
        given=given,
        collusion=suspicion,
        rubric=_rubric(kept),
    )


def _rubric(ordered: list[Rating]) -> RubricCalibration:
    """The raters' severity per rubric dimension, from the ratings that kept their scores."""
    return calibrate_rubric(
        RubricRating(r.ratee_id, r.rater_id, r.rating_id, r.residuals) for r in ordered if r.residuals
    )


def _estimate(ordered: list[Rating], iterations: int) -> Calibration:
    """The calibration of a deduplicated, sorted rating set (no collusion check)."""
    if not ordered:
        return Calibration(VERSION, {}, {}, default_weight=1.0, ratings=0)
    raters = sorted({r.rater_id for r in ordered})
    by_rater: dict[str, list[Rating]] = {r: [] for r in raters}
    by_ratee: dict[str, list[Rating]] = {}
    for r in ordered:
        by_rater[r.rater_id].append(r)
        by_ratee.setdefault(r.ratee_id, []).append(r)
    ratees = sorted(by_ratee)
    pooled = max(MIN_VARIANCE, _variance([r.value for r in ordered]))
    true = {j: _mean(r.value for r in by_ratee[j]) for j in ratees}
    prior_mean = _mean(true[j] for j in ratees)
    true_variance = max(MIN_TRUE_VARIANCE, _variance([true[j] for j in ratees]))
    bias = dict.fromkeys(raters, 0.0)
    variance = dict.fromkeys(raters, pooled)
    informative = dict.fromkeys(raters, 1.0)
    bias_uncertainty = dict.fromkeys(raters, 0.0)  # posterior variance of each bias estimate

    # Each step evaluates ``link`` and ``slope`` once per rating and point, and reuses them
    # wherever the same expression needs them again (the same floats as evaluating them anew).
    def noise(rater: str) -> float:
        return variance[rater] + bias_uncertainty[rater]

    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for _ in range(iterations):
        # True scores: one IRLS step around the current estimate, sums kept for the leave-one-out below.
        for j in ratees:
            at = true[j]
            weights: list[float] = []
            terms: list[float] = []
            for r in by_ratee[j]:
                x = at + bias[r.rater_id]
                s = slope(x)
                weight = informative[r.rater_id] * s**2 / noise(r.rater_id)
                weights.append(weight)
                terms.append(weight * (at + (r.value - link(x)) / s))
            num[j] = prior_mean / true_variance + math.fsum(terms)
            den[j] = 1.0 / true_variance + math.fsum(weights)
        true = {j: num[j] / den[j] for j in ratees}
        prior_mean = _mean(true[j] for j in ratees)
        # Empirical Bayes: the spread of estimates plus their mean posterior variance.
        true_variance = max(
            MIN_TRUE_VARIANCE, _variance([true[j] for j in ratees]) + _mean(1.0 / den[j] for j in ratees)
        )

        def left_out(
            r: Rating, true: dict[str, float] = true, spread: float = true_variance
        ) -> tuple[float, float]:
            """The ratee's estimate and its variance without this rating (a rater is not judged by itself)."""
            at = true[r.ratee_id]
            x = at + bias[r.rater_id]
            s = slope(x)
            own = informative[r.rater_id] * s**2 / noise(r.rater_id)
            rest = den[r.ratee_id] - own
            if rest <= 0:
                return at, spread
            return (num[r.ratee_id] - own * (at + (r.value - link(x)) / s)) / rest, 1.0 / rest

        left = {rater: [left_out(r) for r in by_rater[rater]] for rater in raters}
        anchors = {rater: [a for a, _ in left[rater]] for rater in raters}
        residuals: dict[str, list[float]] = {}
        error: dict[str, float] = {}
        for rater in raters:
            b = bias[rater]
            slopes = [slope(a + b) for a in anchors[rater]]
            residuals[rater] = [
                (r.value - link(a + b)) / s + b
                for r, a, s in zip(by_rater[rater], anchors[rater], slopes, strict=True)
            ]
            # Sampling variance of the raw bias: the rater's noise and the anchors' own error.
            error[rater] = _mean(
                variance[rater] / s**2 + v for s, (_, v) in zip(slopes, left[rater], strict=True)
            ) / len(left[rater])
        raw = {rater: _mean(residuals[rater]) for rater in raters}
        # Careless raters' raw biases (a constant less the ratees' scores) would inflate the spread.
        mass = math.fsum(informative[k] for k in raters)
        centre = math.fsum(informative[k] * raw[k] for k in raters) / mass
        spread = math.fsum(informative[k] * (raw[k] - centre) ** 2 for k in raters) / mass
        bias_variance = max(0.0, spread - math.fsum(informative[k] * error[k] for k in raters) / mass)
        for rater in raters:
            shrink = bias_variance / (bias_variance + error[rater]) if bias_variance else 0.0
            bias[rater] = shrink * raw[rater]
            bias_uncertainty[rater] = shrink * error[rater]
        # A residual against an estimated anchor also carries the anchor's own error: take it out.
        links: dict[str, list[float]] = {}
        squared: dict[str, list[float]] = {}
        for rater in raters:
            b = bias[rater]
            links[rater] = [link(a + b) for a in anchors[rater]]
            squared[rater] = [
                (r.value - lk) ** 2 - slope(a + b) ** 2 * v
                for r, lk, (a, v) in zip(by_rater[rater], links[rater], left[rater], strict=True)
            ]
        # Careless raters' residuals say nothing about honest noise: pool by informativeness.
        pooled = max(
            MIN_VARIANCE,
            math.fsum(informative[k] * math.fsum(squared[k]) for k in raters)
            / math.fsum(informative[k] * len(squared[k]) for k in raters),
        )
        for rater in raters:
            total = VARIANCE_PRIOR_RATINGS * pooled + math.fsum(squared[rater])
            variance[rater] = max(MIN_VARIANCE, total / (VARIANCE_PRIOR_RATINGS + len(squared[rater])))
            given = by_rater[rater]
            if len(given) >= INFORMATIVE_MIN_RATINGS:
                observed = _variance([r.value for r in given])
                expected = _variance(links[rater]) + variance[rater]
                informative[rater] = max(MIN_INFORMATIVE, min(1.0, observed / expected / INFORMATIVE_KNEE))

    scale = PROOF_PRIOR_WEIGHT * true_variance  # the prior (precision 1 / true variance) is 3 pseudo-ratings
    return Calibration(
        version=VERSION,
        bias={rater: bias[rater] for rater in raters},
        weight={rater: min(MAX_WEIGHT, scale * informative[rater] / variance[rater]) for rater in raters},
        default_weight=min(MAX_WEIGHT, scale / pooled),
        ratings=len(ordered),
        digest=digest_of(ordered),
        informative={rater: informative[rater] for rater in raters},
        given={rater: len(by_rater[rater]) for rater in raters},
        prior_mean=prior_mean,
        prior_weight=PROOF_PRIOR_WEIGHT * PRIOR_STRENGTH,
    )
