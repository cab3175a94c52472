"""SCI rules (pure): one learner's score in one skill from their facts, a rater correction and a time.

The score depends on the evidence only through ``Facts``: distinct sessions, counted no-shows,
the newest evidence time and, per rater, a ``Tally`` (count, sum and sum of squares of the
ratings received from that rater). Ratings are kept in integer micro-points, so a tally is an
exact sum: the same set of evidence gives the same facts, bit for bit, in any order. The fold
keeps the facts up to date in O(raters) per event and never re-reads the items.

Rater calibration enters as a ``Correction``: each rater's bias (subtracted from their
ratings) and weight, plus the prior Proof shrinks toward. Because a correction is per rater,
every sum the parts need follows from the tallies; ``UNCALIBRATED`` takes ratings as given.

The rules live in submodules by concern; this package re-exports all of their public names:

- ``facts``: micro-points, ``EvidenceItem``, ``Tally``, ``Facts`` and ``facts_of``;
- ``correction``: the Proof prior, ``Prior``, ``Correction`` and ``UNCALIBRATED``;
- ``parts``: ``Stats``, ``summarize`` and the Practice, Proof and Reliability points;
- ``scoring``: the tiers and their rules, ``Score``, ``score`` and ``seniors``;
- ``explanation``: depth per specialty and ``explain`` (a line per part, the next tier);
- ``rubric``: depth per rubric dimension (``RubricTally``, ``depth``).
"""

from __future__ import annotations

from services.sci.domain.correction import (
    DEFAULT_PRIOR,
    PROOF_PRIOR,
    PROOF_PRIOR_WEIGHT,
    UNCALIBRATED,
    Correction,
    Prior,
    rating_to_unit,
)
from services.sci.domain.explanation import (
    PART_MAX,
    TIER_NAMES,
    Depth,
    Explanation,
    PartExplanation,
    explain,
    next_tier_hint,
    specialty_depth,
)
from services.sci.domain.facts import EvidenceItem, Facts, Tally, facts_of
from services.sci.domain.micro import MICRO, to_micro
from services.sci.domain.parts import (
    AGREEMENT_SD_SCALE,
    PRACTICE_MAX,
    PRACTICE_SCALE_SESSIONS,
    PROOF_MAX,
    RATERS_SCALE,
    RELIABILITY_AGREEMENT_WEIGHT,
    RELIABILITY_MAX,
    RELIABILITY_RATERS_WEIGHT,
    RELIABILITY_SHOW_UP_WEIGHT,
    SINGLE_ITEM_AGREEMENT,
    Stats,
    agreement,
    practice_points,
    proof_points,
    reliability_points,
    show_up,
    shrunk_mean,
    summarize,
)
from services.sci.domain.rubric import DEFAULT_RUBRIC_PRIOR, DimensionDepth, RubricTally, depth
from services.sci.domain.scoring import (
    PEER_ENDORSED,
    PRACTITIONER,
    SCORE_MODEL,
    TIER_CLAIMED,
    TIER_PEER_ENDORSED,
    TIER_PRACTICING,
    TIER_PRACTITIONER,
    Score,
    TierRule,
    score,
    score_from_stats,
    seniors,
    shortfalls,
    tier_for,
)
from services.sci.domain.uncertainty import (
    CALIBRATED_BAND,
    UNCALIBRATED_BAND,
    Z90,
    BandModel,
    proof_band,
    proof_error_sd,
)
from shared.freshness import (
    FRESHNESS_MAX,
    FRESHNESS_TAU_DAYS,
    days_between,
    freshness_points,
    utc,
)

__all__ = [
    "AGREEMENT_SD_SCALE",
    "CALIBRATED_BAND",
    "DEFAULT_PRIOR",
    "DEFAULT_RUBRIC_PRIOR",
    "FRESHNESS_MAX",
    "FRESHNESS_TAU_DAYS",
    "MICRO",
    "PART_MAX",
    "PEER_ENDORSED",
    "PRACTICE_MAX",
    "PRACTICE_SCALE_SESSIONS",
    "PRACTITIONER",
    "PROOF_MAX",
    "PROOF_PRIOR",
    "PROOF_PRIOR_WEIGHT",
    "RATERS_SCALE",
    "RELIABILITY_AGREEMENT_WEIGHT",
    "RELIABILITY_MAX",
    "RELIABILITY_RATERS_WEIGHT",
    "RELIABILITY_SHOW_UP_WEIGHT",
    "SCORE_MODEL",
    "SINGLE_ITEM_AGREEMENT",
    "TIER_CLAIMED",
    "TIER_NAMES",
    "TIER_PEER_ENDORSED",
    "TIER_PRACTICING",
    "TIER_PRACTITIONER",
    "UNCALIBRATED",
    "UNCALIBRATED_BAND",
    "Z90",
    "BandModel",
    "Correction",
    "Depth",
    "DimensionDepth",
    "EvidenceItem",
    "Explanation",
    "Facts",
    "PartExplanation",
    "Prior",
    "RubricTally",
    "Score",
    "Stats",
    "Tally",
    "TierRule",
    "agreement",
    "days_between",
    "depth",
    "explain",
    "facts_of",
    "freshness_points",
    "next_tier_hint",
    "practice_points",
    "proof_band",
    "proof_error_sd",
    "proof_points",
    "rating_to_unit",
    "reliability_points",
    "score",
    "score_from_stats",
    "seniors",
    "shortfalls",
    "show_up",
    "shrunk_mean",
    "specialty_depth",
    "summarize",
    "tier_for",
    "to_micro",
    "utc",
]
