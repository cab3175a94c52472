"""How sure a score is: the 90% band around Proof (and so around the SCI) from the evidence behind it.

Only Proof estimates something hidden (the learner's true quality); Practice, Reliability and
Freshness count what happened (sessions, raters, agreement, show-ups, days), so their band is
0 and the SCI's band is Proof's. The band's half-width, in Proof points, is ``Z90`` times the
expected error of Proof/40 against true quality (q - 1)/4, whose square is

    (a W + p k²) / (k + W)²  +  b τ² / (k + W)  +  f  +  d τ² / (n + 1)

- ``W``: the weight of the learner's ratings (more ratings, and more reliable raters, weigh
  more), ``k``: the prior's weight. The first term is the error of a shrunk mean: the ratings'
  noise over their weight, plus the pull of the prior while the weight is small.
- ``τ²``: how much the raters of the skill differ in leniency (the variance of the calibrated
  biases). Each bias is itself an estimate, so the more raters differ, the less a correction can
  be trusted; the more ratings a learner has (``n``), the more these errors average out.
- ``f``: a floor. A learner's quality differs between the specialties they are rated in, so
  even many ratings leave some error about their quality in the skill as a whole.

The constants were fitted on the simulator's seeds 1-3 (every scenario, 4 to 12 sessions per
learner) so that the band holds the true-skill score for 90% of learners; the bench reports its
coverage on seeds the fit never saw (``bench.sci_trust``). Before a
skill's first calibration (every weight 1, no biases known) a second set applies: raters'
leniency is unknown then, so the band is wider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.sci.domain.parts import PROOF_MAX, Stats

Z90 = 1.6448536269514722  # the standard normal's 95th percentile: a two-sided 90% band


@dataclass(frozen=True)
class BandModel:
    """The constants of the error formula above (unit scale: Proof / 40)."""

    noise: float  # a
    prior: float  # p
    bias_spread: float  # b
    floor: float  # f
    bias_per_rating: float  # d


CALIBRATED_BAND = BandModel(noise=0.2, prior=0.1, bias_spread=0.1, floor=0.0006, bias_per_rating=0.05)
UNCALIBRATED_BAND = BandModel(noise=0.05, prior=0.04, bias_spread=0.0, floor=0.002, bias_per_rating=0.0)


def proof_error_sd(stats: Stats) -> float:
    """The expected error of Proof / 40 (a standard deviation on 0..1); 0 without ratings."""
    if stats.ratings == 0:
        return 0.0
    model = CALIBRATED_BAND if stats.calibrated else UNCALIBRATED_BAND
    weight, prior, spread = stats.weight, stats.prior_weight, stats.bias_variance
    total = prior + weight
    variance = (
        (model.noise * weight + model.prior * prior * prior) / (total * total)
        + model.bias_spread * spread / total
        + model.floor
        + model.bias_per_rating * spread / (stats.ratings + 1)
    )
    return math.sqrt(max(0.0, variance))


def proof_band(stats: Stats) -> float:
    """Half-width of the 90% band around Proof, in Proof points (0..40), unrounded."""
    return Z90 * PROOF_MAX * proof_error_sd(stats)
