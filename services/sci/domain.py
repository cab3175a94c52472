"""SCI rules (pure): one learner's score in one skill from their facts, a rater correction and a time.

The score depends on the evidence only through ``Facts``: distinct sessions, counted no-shows,
the newest evidence time and, per rater, a ``Tally`` (count, sum and sum of squares of the
ratings received from that rater). Ratings are kept in integer micro-points, so a tally is an
exact sum: the same set of evidence gives the same facts, bit for bit, in any order. The fold
keeps the facts up to date in O(raters) per event and never re-reads the items.

Rater calibration enters as a ``Correction``: each rater's bias (subtracted from their
ratings) and weight, plus the prior Proof shrinks toward. Because a correction is per rater,
every sum the parts need follows from the tallies; ``UNCALIBRATED`` takes ratings as given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from shared import sci_scale
from shared.events.payloads import EvidenceRecorded
from shared.freshness import (
    FRESHNESS_MAX,
    FRESHNESS_TAU_DAYS,
    days_between,
    freshness_points,
    utc,
)

__all__ = ["FRESHNESS_MAX", "FRESHNESS_TAU_DAYS", "days_between", "freshness_points", "utc"]

# Maxima of the four parts (they add up to 100).
PRACTICE_MAX = sci_scale.PRACTICE_MAX
PROOF_MAX = sci_scale.PROOF_MAX
RELIABILITY_MAX = sci_scale.RELIABILITY_MAX

PRACTICE_SCALE_SESSIONS = 6.0  # Practice = 25 * (1 - exp(-sessions / 6))
PROOF_PRIOR = 0.5  # Proof shrinks toward the middle of the scale (3/5) ...
PROOF_PRIOR_WEIGHT = 3.0  # ... worth this many pseudo-ratings
RATERS_SCALE = 3.0  # distinct raters term = 1 - exp(-raters / 3)
AGREEMENT_SD_SCALE = 0.25  # agreement = 1 - min(1, sd / 0.25)
SINGLE_ITEM_AGREEMENT = 0.5  # one rating says nothing about consistency yet
RELIABILITY_RATERS_WEIGHT = 0.4
RELIABILITY_AGREEMENT_WEIGHT = 0.4
RELIABILITY_SHOW_UP_WEIGHT = 0.2

MICRO = 1_000_000  # ratings are kept as integer micro-points of the 1..5 scale
_MICRO2_16 = MICRO * MICRO * 16.0

TIER_CLAIMED = sci_scale.CLAIMED
TIER_PRACTICING = sci_scale.PRACTICING
TIER_PRACTITIONER = sci_scale.PRACTITIONER
TIER_PEER_ENDORSED = sci_scale.PEER_ENDORSED
TIER_NAMES = sci_scale.TIER_NAMES


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

PART_MAX = sci_scale.PART_MAX


def to_micro(mean: float) -> int:
    """A mean rubric score (1..5) in integer micro-points."""
    return round(mean * MICRO)


@dataclass(frozen=True)
class EvidenceItem:
    """What the score needs of one piece of evidence (one rating received)."""

    evidence_id: str
    session_id: str
    rater_id: str
    mean: float  # mean rubric score, 1..5
    specialty: str | None
    occurred_at: datetime

    @classmethod
    def from_event(cls, evidence: EvidenceRecorded) -> EvidenceItem:
        if not evidence.scores:
            raise ValueError(f"evidence {evidence.evidence_id} has no rubric scores")
        return cls(
            evidence_id=evidence.evidence_id,
            session_id=evidence.session_id,
            rater_id=evidence.rater_id,
            mean=math.fsum(evidence.scores.values()) / len(evidence.scores),
            specialty=evidence.specialty,
            occurred_at=utc(evidence.occurred_at),
        )

    @classmethod
    def from_doc(cls, evidence_id: str, doc: Mapping[str, Any]) -> EvidenceItem:
        return cls(
            evidence_id=evidence_id,
            session_id=doc["session_id"],
            rater_id=doc["rater_id"],
            mean=float(doc["mean"]),
            specialty=doc.get("specialty"),
            occurred_at=utc(datetime.fromisoformat(doc["occurred_at"])),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "rater_id": self.rater_id,
            "mean": self.mean,
            "specialty": self.specialty,
            "occurred_at": self.occurred_at.isoformat(),
        }


class Tally(NamedTuple):
    """The ratings a learner received from one rater: count, sum and sum of squares (micro-points)."""

    ratings: int = 0
    total: int = 0
    squares: int = 0

    def add(self, mean: float) -> Tally:
        micro = to_micro(mean)
        return Tally(self.ratings + 1, self.total + micro, self.squares + micro * micro)

    def to_doc(self) -> list[int]:
        return [self.ratings, self.total, self.squares]

    @classmethod
    def from_doc(cls, doc: Iterable[int]) -> Tally:
        return cls._make(doc)


@dataclass(frozen=True)
class Facts:
    """Everything the score depends on, kept exactly, so any folding order gives the same facts."""

    sessions: int = 0  # distinct sessions with evidence
    no_shows: int = 0  # no-show sessions that produced no evidence after all
    raters: Mapping[str, Tally] = field(default_factory=dict)
    last_evidence_at: datetime | None = None

    @property
    def ratings(self) -> int:
        return sum(t.ratings for t in self.raters.values())

    def with_rating(
        self, rater_id: str, mean: float, occurred_at: datetime, *, new_session: bool, was_no_show: bool
    ) -> Facts:
        """These facts plus one rating. ``new_session``: the first evidence of its session;
        ``was_no_show``: that session was marked a no-show (it no longer counts as one)."""
        raters = dict(self.raters)
        raters[rater_id] = raters.get(rater_id, Tally()).add(mean)
        last = self.last_evidence_at
        return Facts(
            sessions=self.sessions + new_session,
            no_shows=self.no_shows - (new_session and was_no_show),
            raters=dict(sorted(raters.items())),
            last_evidence_at=occurred_at if last is None else max(last, occurred_at),
        )


def facts_of(items: Iterable[EvidenceItem], no_show_sessions: Iterable[str] = ()) -> Facts:
    """The facts of a set of items (duplicates by evidence id count once) and no-show sessions."""
    unique = {i.evidence_id: i for i in items}
    raters: dict[str, Tally] = {}
    for item in sorted(unique.values(), key=lambda i: i.evidence_id):
        raters[item.rater_id] = raters.get(item.rater_id, Tally()).add(item.mean)
    attended = {i.session_id for i in unique.values()}
    return Facts(
        sessions=len(attended),
        no_shows=len(set(no_show_sessions) - attended),
        raters=dict(sorted(raters.items())),
        last_evidence_at=max((i.occurred_at for i in unique.values()), default=None),
    )


def rating_to_unit(mean: float) -> float:
    """A mean rubric score on 1..5 as 0..1."""
    return min(1.0, max(0.0, (mean - 1.0) / 4.0))


@dataclass(frozen=True)
class Prior:
    """What Proof shrinks toward while evidence is thin: a mean on 0..1 worth ``weight`` pseudo-ratings."""

    mean: float
    weight: float


DEFAULT_PRIOR = Prior(mean=PROOF_PRIOR, weight=PROOF_PRIOR_WEIGHT)


@dataclass(frozen=True)
class Correction:
    """A rater calibration as the score uses it: per rater a bias (1..5 scale) and a weight.

    ``ratings`` is how many ratings it was computed over (0: no calibration yet); it only grows,
    so it orders calibrations, and ``digest`` names the exact rating set.
    """

    bias: Mapping[str, float] = field(default_factory=dict)
    weight: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0  # for a rater the calibration has not seen
    prior: Prior = DEFAULT_PRIOR
    ratings: int = 0
    version: str = "none"
    digest: str = ""
    senior: frozenset[str] = frozenset()  # learners at tier 3 or 4 in the skill when calibrated

    def bias_of(self, rater_id: str) -> float:
        return self.bias.get(rater_id, 0.0)

    def weight_of(self, rater_id: str) -> float:
        return self.weight.get(rater_id, self.default_weight)

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "ratings": self.ratings,
            "prior": [self.prior.mean, self.prior.weight],
            "default_weight": self.default_weight,
            "bias": dict(self.bias),
            "weight": dict(self.weight),
            "senior": sorted(self.senior),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Correction:
        if doc is None:
            return UNCALIBRATED
        mean, weight = doc["prior"]
        return cls(
            bias=doc["bias"],
            weight=doc["weight"],
            default_weight=float(doc["default_weight"]),
            prior=Prior(mean=float(mean), weight=float(weight)),
            ratings=int(doc["ratings"]),
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            senior=frozenset(doc.get("senior", ())),
        )


UNCALIBRATED = Correction()


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


def summarize(facts: Facts, correction: Correction = UNCALIBRATED) -> Stats:
    """The sums the parts need, from the tallies: value v = (rating - 1 - bias) / 4, weight per rater.

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
    return Score(
        sci=sci,
        practice=practice,
        proof=proof,
        reliability=reliability,
        freshness=freshness,
        tier=tier_for(earned, proof, stats),
        sessions=stats.sessions,
        distinct_raters=stats.distinct_raters,
        as_of=utc(as_of),
        last_evidence_at=stats.last_evidence_at,
    )


def score(
    facts: Facts,
    as_of: datetime,
    correction: Correction = UNCALIBRATED,
    *,
    earned_at: datetime | None = None,
) -> Score:
    """The SCI of one learner in one skill, evaluated at ``as_of``."""
    return score_from_stats(summarize(facts, correction), as_of, earned_at)


@dataclass(frozen=True)
class Depth:
    """Evidence in one specialty: sessions with evidence and the weighted mean corrected rating (1..5)."""

    sessions: int
    mean_rating: float


def specialty_depth(items: Iterable[EvidenceItem], correction: Correction = UNCALIBRATED) -> dict[str, Depth]:
    """Depth per specialty. Evidence without a specialty counts toward the skill, not toward a specialty."""
    grouped: dict[str, list[EvidenceItem]] = {}
    for item in sorted({i.evidence_id: i for i in items}.values(), key=lambda i: i.evidence_id):
        if item.specialty is not None:
            grouped.setdefault(item.specialty, []).append(item)
    depth: dict[str, Depth] = {}
    for specialty in sorted(grouped):
        chosen = grouped[specialty]
        weights = [correction.weight_of(i.rater_id) for i in chosen]
        values = [i.mean - correction.bias_of(i.rater_id) for i in chosen]
        total = math.fsum(weights)
        mean = math.fsum(w * v for w, v in zip(weights, values, strict=True)) / total if total else 0.0
        depth[specialty] = Depth(
            sessions=len({i.session_id for i in chosen}), mean_rating=round(min(5.0, max(1.0, mean)), 2)
        )
    return depth


@dataclass(frozen=True)
class PartExplanation:
    value: float
    max: float
    reason: str


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _points(delta: float) -> str:
    shown = f"{delta:.1f}"
    return f"about {shown} point" if shown == "1.0" else f"about {shown} points"


def _practice_reason(value: float, stats: Stats) -> str:
    gain = practice_points(stats.sessions + 1) - practice_points(stats.sessions)
    if stats.sessions == 0:
        return f"Practice {value:.1f}/25: no rated sessions yet; your first one adds {_points(gain)}"
    done = _plural(stats.sessions, "session")
    return f"Practice {value:.1f}/25: {done}; the next session adds {_points(gain)}"


def _proof_reason(value: float, stats: Stats, calibrated: bool) -> str:
    if stats.ratings == 0:
        return f"Proof {value:.1f}/40: no peer ratings yet"
    line = (
        f"Proof {value:.1f}/40: peers rated you {stats.mean_rating:.1f}/5 on average "
        f"over {_plural(stats.ratings, 'rating')}"
    )
    if calibrated:
        line += ", corrected for how lenient or harsh each rater is"
    prior_share = stats.prior_weight / (stats.prior_weight + stats.weight)
    if prior_share >= 0.2:
        typical = 1.0 + 4.0 * stats.prior_mean
        line += (
            f"; with few ratings it is pulled toward the typical rating ({typical:.1f}/5) until more come in"
        )
    return line


def _reliability_reason(value: float, stats: Stats) -> str:
    if stats.ratings == 0:
        return f"Reliability {value:.1f}/20: no rated sessions yet"
    if stats.ratings == 1:
        consistency = "one rating so far, so consistency is not known yet"
    elif (agreed := agreement(stats)) >= 0.8:
        consistency = "your ratings agree closely"
    elif agreed >= 0.4:
        consistency = "your ratings mostly agree"
    else:
        consistency = "your ratings vary a lot"
    booked = stats.sessions + stats.no_shows
    return (
        f"Reliability {value:.1f}/20: {_plural(stats.distinct_raters, 'distinct rater')}; {consistency}; "
        f"you showed up to {stats.sessions} of {_plural(booked, 'session')}"
    )


def _freshness_reason(value: float, stats: Stats, as_of: datetime) -> str:
    if stats.last_evidence_at is None:
        return f"Freshness {value:.1f}/15: no evidence yet"
    days = int(days_between(stats.last_evidence_at, as_of))
    when = "today" if days == 0 else f"{_plural(days, 'day')} ago"
    half_life = FRESHNESS_TAU_DAYS * math.log(2)
    return (
        f"Freshness {value:.1f}/15: last evidence {when}; "
        f"it halves about every {half_life:.0f} days without a new session"
    )


def next_tier_hint(result: Score, stats: Stats) -> str | None:
    """One line on what the next tier asks for that is still missing (None at the top tier)."""
    if result.tier == TIER_CLAIMED:
        return "Practicing starts with your first rated session: book one"
    rule = {TIER_PRACTICING: PRACTITIONER, TIER_PRACTITIONER: PEER_ENDORSED}.get(result.tier)
    if rule is None:
        return None
    missing = shortfalls(rule, result.sci, result.proof, stats)
    name = TIER_NAMES[rule.tier]
    if not missing:  # reached on today's figures but not yet earned (it is earned by new evidence)
        return f"{name}: your next rated session can earn it"
    return f"{name} needs " + "; ".join(missing)


@dataclass(frozen=True)
class Explanation:
    score: Score
    parts: dict[str, PartExplanation]
    next_tier: str | None


def explain(
    facts: Facts,
    as_of: datetime,
    correction: Correction = UNCALIBRATED,
    *,
    earned_at: datetime | None = None,
) -> Explanation:
    """The score; per part its value, its maximum and one line a learner understands; the next tier."""
    stats = summarize(facts, correction)
    result = score_from_stats(stats, as_of, earned_at)
    reasons = {
        "practice": _practice_reason(result.practice, stats),
        "proof": _proof_reason(result.proof, stats, correction.ratings > 0),
        "reliability": _reliability_reason(result.reliability, stats),
        "freshness": _freshness_reason(result.freshness, stats, as_of),
    }
    parts = {
        name: PartExplanation(value=value, max=PART_MAX[name], reason=reasons[name])
        for name, value in result.parts().items()
    }
    return Explanation(score=result, parts=parts, next_tier=next_tier_hint(result, stats))


def seniors(scored: Iterable[tuple[str, Facts, datetime]], correction: Correction) -> frozenset[str]:
    """The learners at tier 3 or 4 under ``correction``, each scored at the time of their newest fact.

    Practitioner asks for no senior raters, so this does not depend on the seniors it finds.
    """
    return frozenset(
        learner for learner, facts, at in scored if score(facts, at, correction).tier >= TIER_PRACTITIONER
    )
