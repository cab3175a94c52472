"""SCI score: the tiers and what they ask for, the ``Score`` and its computation, the seniors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from services.sci.domain.correction import UNCALIBRATED, Correction
from services.sci.domain.facts import Facts
from services.sci.domain.parts import (
    Stats,
    practice_points,
    proof_points,
    reliability_points,
    shrunk_mean,
    summarize,
)
from services.sci.domain.rubric import DEFAULT_RUBRIC_PRIOR, DimensionDepth, depth
from services.sci.domain.uncertainty import proof_band
from shared import sci_scale
from shared.freshness import freshness_points, utc

#: The version of the score model: bump it with any change to what a score is for the same
#: facts, then rebuild (``lemma replay sci``); readers rank a newer model's SciUpdated first.
SCORE_MODEL = 3  # 2: tiers are earned on the low end of the score's 90% band; 3: depth per rubric dimension

TIER_CLAIMED = sci_scale.CLAIMED
TIER_PRACTICING = sci_scale.PRACTICING
TIER_PRACTITIONER = sci_scale.PRACTITIONER
TIER_PEER_ENDORSED = sci_scale.PEER_ENDORSED


@dataclass(frozen=True)
class TierRule:
    """What a tier asks for: a total, a level of rated quality, and breadth of evidence.

    ``min_proof`` keeps a tier about rated quality: practice, reliability and freshness alone
    reach 60 points. ``min_senior_raters`` counts distinct raters who are Practitioners or above
    in the skill (as of the latest calibration): Peer-endorsed means endorsed by proven peers.
    """

    tier: int
    min_sci: float
    min_proof: float
    min_sessions: int
    min_raters: int
    min_senior_raters: int = 0


PRACTITIONER = TierRule(
    TIER_PRACTITIONER,
    min_sci=sci_scale.MIN_SCI[TIER_PRACTITIONER],
    min_proof=20.0,
    min_sessions=5,
    min_raters=3,
)
PEER_ENDORSED = TierRule(
    TIER_PEER_ENDORSED,
    min_sci=sci_scale.MIN_SCI[TIER_PEER_ENDORSED],
    min_proof=28.0,
    min_sessions=10,
    min_raters=5,
    min_senior_raters=2,
)


def shortfalls(rule: TierRule, sci: float, proof: float, stats: Stats) -> list[str]:
    """What ``rule`` asks for that these figures lack, in words (empty: the tier is reached)."""
    missing: list[str] = []
    if sci < rule.min_sci:
        missing.append(f"an SCI of {rule.min_sci:.0f} (you have {sci:.1f})")
    if proof < rule.min_proof:
        missing.append(f"Proof of {rule.min_proof:.0f}/40 (you have {proof:.1f})")
    if stats.sessions < rule.min_sessions:
        missing.append(f"{rule.min_sessions} sessions (you have {stats.sessions})")
    if stats.distinct_raters < rule.min_raters:
        missing.append(f"{rule.min_raters} distinct raters (you have {stats.distinct_raters})")
    if stats.senior_raters < rule.min_senior_raters:
        missing.append(
            f"{rule.min_senior_raters} raters who are Practitioners or above (you have {stats.senior_raters})"
        )
    return missing


def tier_for(sci: float, proof: float, stats: Stats) -> int:
    if stats.sessions == 0:
        return TIER_CLAIMED
    for rule in (PEER_ENDORSED, PRACTITIONER):
        if not shortfalls(rule, sci, proof, stats):
            return rule.tier
    return TIER_PRACTICING


@dataclass(frozen=True)
class Score:
    """The SCI and its four parts, each rounded to 2 decimals; the parts add up to ``sci``."""

    sci: float
    practice: float
    proof: float
    reliability: float
    freshness: float
    tier: int
    sessions: int
    distinct_raters: int
    as_of: datetime
    last_evidence_at: datetime | None = None
    #: Half-width of the 90% band around the SCI (and around Proof, the one part that estimates):
    #: "58 ± 14". The tier is earned at the low end of it.
    band: float = 0.0
    #: The learner's level on each rubric dimension the ratings scored (``domain.rubric``).
    rubric: tuple[DimensionDepth, ...] = ()

    @property
    def low(self) -> float:
        """The low end of the SCI's band (never below 0)."""
        return round(max(0.0, self.sci - self.band), 2)

    @property
    def high(self) -> float:
        """The high end of the SCI's band (never above 100)."""
        return round(min(100.0, self.sci + self.band), 2)

    def parts(self) -> dict[str, float]:
        return {
            "practice": self.practice,
            "proof": self.proof,
            "reliability": self.reliability,
            "freshness": self.freshness,
        }


def score_from_stats(stats: Stats, as_of: datetime, earned_at: datetime | None = None) -> Score:
    """The score at ``as_of``. The tier is the one earned at ``earned_at`` (default ``as_of``).

    A tier is earned by evidence and does not lapse by itself: callers pass the time of the
    newest evidence as ``earned_at``, so Freshness decaying afterwards lowers the SCI, not the tier.
    It is earned on the conservative end of the band (the SCI and Proof less the band's
    half-width), so one good session cannot look like a settled score.
    """
    practice = round(practice_points(stats.sessions), 2)
    proof = round(proof_points(stats), 2)
    reliability = round(reliability_points(stats), 2)
    freshness = round(freshness_points(stats.last_evidence_at, as_of), 2)
    sci = round(practice + proof + reliability + freshness, 2)
    earned = sci
    if earned_at is not None and earned_at != as_of:
        earned = round(
            practice + proof + reliability + round(freshness_points(stats.last_evidence_at, earned_at), 2), 2
        )
    band = round(proof_band(stats), 2)
    return Score(
        sci=sci,
        practice=practice,
        proof=proof,
        reliability=reliability,
        freshness=freshness,
        tier=tier_for(round(earned - band, 2), round(proof - band, 2), stats),
        sessions=stats.sessions,
        distinct_raters=stats.distinct_raters,
        as_of=utc(as_of),
        last_evidence_at=stats.last_evidence_at,
        band=band,
    )


def score(
    facts: Facts,
    as_of: datetime,
    correction: Correction = UNCALIBRATED,
    *,
    earned_at: datetime | None = None,
    learner_id: str | None = None,
) -> Score:
    """The SCI of one learner in one skill, evaluated at ``as_of`` (``learner_id``: whose, so that
    a suspected pair's ratings of each other weigh less), with their depth per rubric dimension."""
    stats = summarize(facts, correction, learner_id)
    return with_rubric(score_from_stats(stats, as_of, earned_at), facts, stats, correction, learner_id)


def with_rubric(
    found: Score, facts: Facts, stats: Stats, correction: Correction, learner_id: str | None
) -> Score:
    """``found`` with the learner's depth per rubric dimension (``domain.rubric``), weighing each
    rater as Proof does (``stats``: the same facts summarized under ``correction``)."""
    if not facts.rubric:
        return found
    weights = {r: correction.weight_of(r, learner_id) for r in facts.rubric}
    prior = DEFAULT_RUBRIC_PRIOR if correction.rubric_prior is None else correction.rubric_prior
    return replace(found, rubric=depth(facts.rubric, weights, correction.severity, shrunk_mean(stats), prior))


def seniors(scored: Iterable[tuple[str, Facts, datetime]], correction: Correction) -> frozenset[str]:
    """The learners at tier 3 or 4 under ``correction``, each scored at the time of their newest fact.

    Practitioner asks for no senior raters, so this does not depend on the seniors it finds.
    """
    return frozenset(
        learner
        for learner, facts, at in scored
        if score_from_stats(summarize(facts, correction, learner), at).tier >= TIER_PRACTITIONER
    )
