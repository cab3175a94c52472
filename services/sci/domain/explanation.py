"""SCI explanations: depth per specialty, and per part a line a learner understands, plus the next tier."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.sci.domain.correction import UNCALIBRATED, Correction
from services.sci.domain.facts import EvidenceItem, Facts
from services.sci.domain.parts import Stats, agreement, practice_points, summarize
from services.sci.domain.scoring import (
    PEER_ENDORSED,
    PRACTITIONER,
    TIER_CLAIMED,
    TIER_PRACTICING,
    TIER_PRACTITIONER,
    Score,
    score_from_stats,
    shortfalls,
    with_rubric,
)
from shared import sci_scale
from shared.freshness import FRESHNESS_TAU_DAYS, days_between

TIER_NAMES = sci_scale.TIER_NAMES
PART_MAX = sci_scale.PART_MAX


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
    # a tier is earned on the low end of the band: say what the low end lacks
    missing = shortfalls(rule, result.low, round(max(0.0, result.proof - result.band), 2), stats)
    if result.band:
        missing = [
            m + " at the low end of your band" if m.startswith(("an SCI", "Proof")) else m for m in missing
        ]
    name = TIER_NAMES[rule.tier]
    if not missing:  # reached on today's figures but not yet earned (it is earned by new evidence)
        return f"{name}: your next rated session can earn it"
    return f"{name} needs " + "; ".join(missing)


def band_reason(result: Score, stats: Stats) -> str:
    """What the band around the SCI means, in words a learner follows."""
    if stats.ratings == 0:
        return f"SCI {result.sci:.0f}: no peer ratings yet, so there is no band to show"
    many = "rating" if stats.ratings == 1 else "ratings"
    return (
        f"SCI {result.sci:.0f} ± {result.band:.0f}: from {stats.ratings} {many}, a score built on your true "
        f"skill lies between {result.low:.0f} and {result.high:.0f} for 9 learners in 10 like you; "
        "the band narrows as more peers rate you, and tiers are earned at its low end"
    )


@dataclass(frozen=True)
class Explanation:
    score: Score
    parts: dict[str, PartExplanation]
    next_tier: str | None
    band: str = ""


def explain(
    facts: Facts,
    as_of: datetime,
    correction: Correction = UNCALIBRATED,
    *,
    earned_at: datetime | None = None,
    learner_id: str | None = None,
) -> Explanation:
    """The score; per part its value, its maximum and one line a learner understands; the next tier."""
    stats = summarize(facts, correction, learner_id)
    result = with_rubric(score_from_stats(stats, as_of, earned_at), facts, stats, correction, learner_id)
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
    return Explanation(
        score=result, parts=parts, next_tier=next_tier_hint(result, stats), band=band_reason(result, stats)
    )
