"""SCI rules (pure): one learner's score in one skill from their evidence, no-shows and a time.

The score is a pure function of the evidence set, so the projection recomputes it from the
stored set on every change and redelivery or reordering cannot drift it. Items are put in a
canonical order before any float is summed, so the same set always gives the same bits.

Rater calibration plugs in at ``Corrector``: it maps one evidence item to its corrected
0..1 value and a weight. Today ``uncalibrated`` takes each rating as given, with weight 1;
the calibrated peer-grading model replaces it without touching the parts below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events.payloads import EvidenceRecorded

# Maxima of the four parts (they add up to 100).
PRACTICE_MAX = 25.0
PROOF_MAX = 40.0
RELIABILITY_MAX = 20.0
FRESHNESS_MAX = 15.0

PRACTICE_SCALE_SESSIONS = 6.0  # Practice = 25 * (1 - exp(-sessions / 6))
PROOF_PRIOR = 0.5  # Proof shrinks toward the middle of the scale (3/5) ...
PROOF_PRIOR_WEIGHT = 3.0  # ... worth this many pseudo-ratings
RATERS_SCALE = 3.0  # distinct raters term = 1 - exp(-raters / 3)
AGREEMENT_SD_SCALE = 0.25  # agreement = 1 - min(1, sd / 0.25)
SINGLE_ITEM_AGREEMENT = 0.5  # one rating says nothing about consistency yet
RELIABILITY_RATERS_WEIGHT = 0.4
RELIABILITY_AGREEMENT_WEIGHT = 0.4
RELIABILITY_SHOW_UP_WEIGHT = 0.2
FRESHNESS_TAU_DAYS = 60.0  # Freshness = 15 * exp(-days / 60)

TIER_CLAIMED = 1
TIER_PRACTICING = 2
TIER_PRACTITIONER = 3
TIER_PEER_ENDORSED = 4
TIER_NAMES: Mapping[int, str] = {
    TIER_CLAIMED: "Claimed",
    TIER_PRACTICING: "Practicing",
    TIER_PRACTITIONER: "Practitioner",
    TIER_PEER_ENDORSED: "Peer-endorsed",
}
PRACTITIONER_MIN_SCI = 50.0
PRACTITIONER_MIN_SESSIONS = 5
PRACTITIONER_MIN_RATERS = 3
PEER_ENDORSED_MIN_SCI = 70.0
PEER_ENDORSED_MIN_SESSIONS = 10
PEER_ENDORSED_MIN_RATERS = 5

PART_MAX: Mapping[str, float] = {
    "practice": PRACTICE_MAX,
    "proof": PROOF_MAX,
    "reliability": RELIABILITY_MAX,
    "freshness": FRESHNESS_MAX,
}


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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


@dataclass(frozen=True)
class Corrected:
    """An item's value on 0..1 after rater correction, and how much it counts."""

    value: float
    weight: float


Corrector = Callable[[EvidenceItem], Corrected]


def rating_to_unit(mean: float) -> float:
    """A mean rubric score on 1..5 as 0..1."""
    return min(1.0, max(0.0, (mean - 1.0) / 4.0))


def uncalibrated(item: EvidenceItem) -> Corrected:
    """The seam for rater calibration: for now every rating counts as given, weight 1."""
    return Corrected(value=rating_to_unit(item.mean), weight=1.0)


def canonical(items: Iterable[EvidenceItem]) -> list[EvidenceItem]:
    """Items in a fixed order, so float sums do not depend on delivery order."""
    return sorted(items, key=lambda i: (i.occurred_at, i.evidence_id))


def count_no_shows(no_show_sessions: Iterable[str], items: Iterable[EvidenceItem]) -> int:
    """No-shows that count: a session that produced evidence was attended after all."""
    attended = {i.session_id for i in items}
    return len(set(no_show_sessions) - attended)


@dataclass(frozen=True)
class Prior:
    """What Proof shrinks toward while evidence is thin: a mean on 0..1 worth ``weight`` pseudo-ratings."""

    mean: float
    weight: float


DEFAULT_PRIOR = Prior(mean=PROOF_PRIOR, weight=PROOF_PRIOR_WEIGHT)


@dataclass(frozen=True)
class Stats:
    """Everything the four parts (and their explanations) are computed from."""

    sessions: int
    distinct_raters: int
    ratings: int
    weight: float  # total weight of the corrected values
    weighted_sum: float
    mean_rating: float  # plain mean rubric score on 1..5 (for explanations); 0 with no ratings
    spread: float  # population standard deviation of the corrected values
    no_shows: int
    last_evidence_at: datetime | None
    prior_mean: float = PROOF_PRIOR
    prior_weight: float = PROOF_PRIOR_WEIGHT


def summarize(
    items: Iterable[EvidenceItem],
    no_shows: int,
    correct: Corrector = uncalibrated,
    prior: Prior = DEFAULT_PRIOR,
) -> Stats:
    ordered = canonical(items)
    corrected = [correct(i) for i in ordered]
    values = [c.value for c in corrected]
    mean_value = math.fsum(values) / len(values) if values else 0.0
    spread = math.sqrt(math.fsum((v - mean_value) ** 2 for v in values) / len(values)) if values else 0.0
    return Stats(
        sessions=len({i.session_id for i in ordered}),
        distinct_raters=len({i.rater_id for i in ordered}),
        ratings=len(ordered),
        weight=math.fsum(c.weight for c in corrected),
        weighted_sum=math.fsum(c.value * c.weight for c in corrected),
        mean_rating=math.fsum(i.mean for i in ordered) / len(ordered) if ordered else 0.0,
        spread=spread,
        no_shows=max(0, no_shows),
        last_evidence_at=max((i.occurred_at for i in ordered), default=None),
        prior_mean=prior.mean,
        prior_weight=prior.weight,
    )


def practice_points(sessions: int) -> float:
    return PRACTICE_MAX * (1.0 - math.exp(-max(0, sessions) / PRACTICE_SCALE_SESSIONS))


def shrunk_mean(stats: Stats) -> float:
    """Posterior mean on 0..1: the prior counts as ``stats.prior_weight`` pseudo-ratings."""
    return (stats.prior_weight * stats.prior_mean + stats.weighted_sum) / (stats.prior_weight + stats.weight)


def proof_points(stats: Stats) -> float:
    """40 x the shrunk mean, held to 0..40 (calibrated values may lie past the ends of the scale)."""
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


def days_between(earlier: datetime, later: datetime) -> float:
    """Days from ``earlier`` to ``later``; never negative (an as-of before the evidence is 0)."""
    return max(0.0, (utc(later) - utc(earlier)).total_seconds() / 86400.0)


def freshness_points(last_evidence_at: datetime | None, as_of: datetime) -> float:
    if last_evidence_at is None:
        return 0.0
    return FRESHNESS_MAX * math.exp(-days_between(last_evidence_at, as_of) / FRESHNESS_TAU_DAYS)


def tier_for(sci: float, sessions: int, distinct_raters: int) -> int:
    if sessions == 0:
        return TIER_CLAIMED
    if (
        sci >= PEER_ENDORSED_MIN_SCI
        and sessions >= PEER_ENDORSED_MIN_SESSIONS
        and distinct_raters >= PEER_ENDORSED_MIN_RATERS
    ):
        return TIER_PEER_ENDORSED
    if (
        sci >= PRACTITIONER_MIN_SCI
        and sessions >= PRACTITIONER_MIN_SESSIONS
        and distinct_raters >= PRACTITIONER_MIN_RATERS
    ):
        return TIER_PRACTITIONER
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

    def parts(self) -> dict[str, float]:
        return {
            "practice": self.practice,
            "proof": self.proof,
            "reliability": self.reliability,
            "freshness": self.freshness,
        }

    def to_doc(self) -> dict[str, Any]:
        """The figures (without ``as_of``) a projection compares to see whether the score moved."""
        return {"sci": self.sci, **self.parts(), "tier": self.tier, "sessions": self.sessions}


def score_from_stats(stats: Stats, as_of: datetime) -> Score:
    practice = round(practice_points(stats.sessions), 2)
    proof = round(proof_points(stats), 2)
    reliability = round(reliability_points(stats), 2)
    freshness = round(freshness_points(stats.last_evidence_at, as_of), 2)
    sci = round(practice + proof + reliability + freshness, 2)
    return Score(
        sci=sci,
        practice=practice,
        proof=proof,
        reliability=reliability,
        freshness=freshness,
        tier=tier_for(sci, stats.sessions, stats.distinct_raters),
        sessions=stats.sessions,
        distinct_raters=stats.distinct_raters,
        as_of=utc(as_of),
    )


def score(
    items: Iterable[EvidenceItem],
    no_shows: int,
    as_of: datetime,
    *,
    correct: Corrector = uncalibrated,
    prior: Prior = DEFAULT_PRIOR,
) -> Score:
    """The SCI of one learner in one skill, evaluated at ``as_of``."""
    return score_from_stats(summarize(items, no_shows, correct, prior), as_of)


@dataclass(frozen=True)
class Depth:
    """Evidence in one specialty: sessions with evidence and the weighted mean corrected rating (0..1)."""

    sessions: int
    mean_rating: float


def specialty_depth(items: Iterable[EvidenceItem], correct: Corrector = uncalibrated) -> dict[str, Depth]:
    """Depth per specialty. Evidence without a specialty counts toward the skill, not toward a specialty."""
    grouped: dict[str, list[EvidenceItem]] = {}
    for item in canonical(items):
        if item.specialty is not None:
            grouped.setdefault(item.specialty, []).append(item)
    depth: dict[str, Depth] = {}
    for specialty in sorted(grouped):
        corrected = [correct(i) for i in grouped[specialty]]
        weight = math.fsum(c.weight for c in corrected)
        mean = math.fsum(c.value * c.weight for c in corrected) / weight if weight else 0.0
        depth[specialty] = Depth(
            sessions=len({i.session_id for i in grouped[specialty]}), mean_rating=round(mean, 3)
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


def _proof_reason(value: float, stats: Stats) -> str:
    if stats.ratings == 0:
        return f"Proof {value:.1f}/40: no peer ratings yet"
    line = (
        f"Proof {value:.1f}/40: peers rated you {stats.mean_rating:.1f}/5 on average "
        f"over {_plural(stats.ratings, 'rating')}"
    )
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


def explain(
    items: Iterable[EvidenceItem],
    no_shows: int,
    as_of: datetime,
    *,
    correct: Corrector = uncalibrated,
    prior: Prior = DEFAULT_PRIOR,
) -> tuple[Score, dict[str, PartExplanation]]:
    """The score and, per part, its value, its maximum and one line a learner understands."""
    stats = summarize(items, no_shows, correct, prior)
    result = score_from_stats(stats, as_of)
    reasons = {
        "practice": _practice_reason(result.practice, stats),
        "proof": _proof_reason(result.proof, stats),
        "reliability": _reliability_reason(result.reliability, stats),
        "freshness": _freshness_reason(result.freshness, stats, as_of),
    }
    parts = {
        name: PartExplanation(value=value, max=PART_MAX[name], reason=reasons[name])
        for name, value in result.parts().items()
    }
    return result, parts
