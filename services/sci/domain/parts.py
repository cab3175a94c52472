"""SCI parts: the sums a score needs (``Stats``) and the Practice, Proof and Reliability points.

Freshness, the fourth part, is ``shared.freshness.freshness_points``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from services.sci.domain.correction import PROOF_PRIOR, PROOF_PRIOR_WEIGHT, UNCALIBRATED, Correction
from services.sci.domain.facts import Facts
from services.sci.domain.micro import MICRO
from shared import sci_scale

# Maxima of the four parts (they add up to 100).
PRACTICE_MAX = sci_scale.PRACTICE_MAX
PROOF_MAX = sci_scale.PROOF_MAX
RELIABILITY_MAX = sci_scale.RELIABILITY_MAX

PRACTICE_SCALE_SESSIONS = 6.0  # Practice = 25 * (1 - exp(-sessions / 6))
RATERS_SCALE = 3.0  # distinct raters term = 1 - exp(-raters / 3)
AGREEMENT_SD_SCALE = 0.25  # agreement = 1 - min(1, sd / 0.25)
SINGLE_ITEM_AGREEMENT = 0.5  # one rating says nothing about consistency yet
RELIABILITY_RATERS_WEIGHT = 0.4
RELIABILITY_AGREEMENT_WEIGHT = 0.4
RELIABILITY_SHOW_UP_WEIGHT = 0.2

_MICRO2_16 = MICRO * MICRO * 16.0


@dataclass(frozen=True)
class Stats:
    """Everything the four parts (and their explanations) are computed from."""

    sessions: int
    distinct_raters: int
    ratings: int
    weight: float  # total weight of the corrected values
    weighted_sum: float
    mean_rating: float  # plain mean rubric score on 1..5 (for explanations); 0 with no ratings
    spread: float  # population standard deviation of the corrected values (0..1 scale)
    no_shows: int
    last_evidence_at: datetime | None
    prior_mean: float = PROOF_PRIOR
    prior_weight: float = PROOF_PRIOR_WEIGHT
    senior_raters: int = 0  # distinct raters at tier 3 or 4 (as the correction knows them)
    calibrated: bool = False  # scored under a rater calibration (not the defaults of a new skill)
    bias_variance: float = 0.0  # how much the skill's raters differ in leniency (``Correction``)


def summarize(facts: Facts, correction: Correction = UNCALIBRATED, learner_id: str | None = None) -> Stats:
    """The sums the parts need, from the tallies: value v = (rating - 1 - bias) / 4, weight per rater
    (a rater suspected of colluding with ``learner_id`` weighs a fraction of theirs).

    The spread of the values is the within-rater part, exact from each tally's integers (a
    bias shifts all of a rater's values alike), plus the between-rater part of the corrected
    rater means. Raters are visited in sorted order, so the same facts give the same bits.
    """
    biases, weights, default = correction.bias, correction.weight, correction.default_weight
    weight = weighted = plain = within = values = 0.0
    count = 0
    means: list[tuple[int, float]] = []  # (count, corrected mean value) per rater
    for rater_id in sorted(facts.raters):
        n, total, squares = facts.raters[rater_id]
        w = weights.get(rater_id, default)
        if correction.collusive and learner_id is not None:
            w = correction.weight_of(rater_id, learner_id)
        sum_v = (total / MICRO - n * (1.0 + biases.get(rater_id, 0.0))) / 4.0
        weight += w * n
        weighted += w * sum_v
        values += sum_v
        within += (n * squares - total * total) / (n * _MICRO2_16)
        plain += total
        count += n
        means.append((n, sum_v / n))
    spread = 0.0
    if count:
        between = 0.0
        if len(means) > 1:
            centre = values / count
            for n, m in means:
                between += n * (m - centre) ** 2
        spread = math.sqrt(max(0.0, (within + between) / count))
    return Stats(
        sessions=facts.sessions,
        distinct_raters=len(facts.raters),
        ratings=count,
        weight=weight,
        weighted_sum=weighted,
        mean_rating=plain / MICRO / count if count else 0.0,
        spread=spread,
        no_shows=max(0, facts.no_shows),
        last_evidence_at=facts.last_evidence_at,
        prior_mean=correction.prior.mean,
        prior_weight=correction.prior.weight,
        senior_raters=len(correction.senior.intersection(facts.raters)) if correction.senior else 0,
        calibrated=correction.ratings > 0,
        bias_variance=correction.bias_variance,
    )


def practice_points(sessions: int) -> float:
    return PRACTICE_MAX * (1.0 - math.exp(-max(0, sessions) / PRACTICE_SCALE_SESSIONS))


def shrunk_mean(stats: Stats) -> float:
    """Posterior mean on 0..1: the prior counts as ``stats.prior_weight`` pseudo-ratings."""
    return (stats.prior_weight * stats.prior_mean + stats.weighted_sum) / (stats.prior_weight + stats.weight)


def proof_points(stats: Stats) -> float:
    """40 x the shrunk mean, held to 0..40 (corrected values may lie past the ends of the scale)."""
    # No evidence, no proof: the prior only tempers ratings that exist.
    return PROOF_MAX * min(1.0, max(0.0, shrunk_mean(stats))) if stats.ratings else 0.0


def agreement(stats: Stats) -> float:
    """1 when ratings agree, 0 when they spread by 0.25 (a full rubric point) or more.

    One rating cannot show consistency: it gets ``SINGLE_ITEM_AGREEMENT`` (0.5), neither
    rewarded nor punished. With no ratings there is nothing to agree: 0.
    """
    if stats.ratings == 0:
        return 0.0
    if stats.ratings == 1:
        return SINGLE_ITEM_AGREEMENT
    return 1.0 - min(1.0, stats.spread / AGREEMENT_SD_SCALE)


def show_up(stats: Stats) -> float:
    total = stats.sessions + stats.no_shows
    return stats.sessions / total if total else 0.0


def reliability_points(stats: Stats) -> float:
    if stats.ratings == 0:
        return 0.0
    raters = 1.0 - math.exp(-stats.distinct_raters / RATERS_SCALE)
    return RELIABILITY_MAX * (
        RELIABILITY_RATERS_WEIGHT * raters
        + RELIABILITY_AGREEMENT_WEIGHT * agreement(stats)
        + RELIABILITY_SHOW_UP_WEIGHT * show_up(stats)
    )
