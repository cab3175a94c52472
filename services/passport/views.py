"""What the pages show (pure): the skill page and the Skill Passport as plain view models.

The templates only lay these out; every number is formatted and every bar's width is worked
out here, so a unit test can check what a person will read without rendering HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.catalog import Skill
from shared.sci_scale import PART_MAX, TIER_NAMES, sci_band

PART_LABELS: Mapping[str, str] = {
    "practice": "Practice",
    "proof": "Proof",
    "reliability": "Reliability",
    "freshness": "Freshness",
}
PART_HINTS: Mapping[str, str] = {
    "practice": "how much rated practice",
    "proof": "how well peers rated it, corrected for lenient or harsh raters",
    "reliability": "ratings that agree, and showing up",
    "freshness": "how recent the evidence is",
}
NONE = "–"  # shown for a figure that does not exist yet


@dataclass(frozen=True)
class Bar:
    """One SCI part (or the SCI itself) against its maximum."""

    id: str
    label: str
    value: str  # one decimal, or NONE
    max: str
    percent: float  # 0..100, the bar's width
    hint: str = ""


@dataclass(frozen=True)
class TierCount:
    tier: int
    name: str
    count: int
    percent: float  # share of learners verifying, 0..100


@dataclass(frozen=True)
class SkillPageView:
    skill: Skill
    learners_verifying: str
    sessions_completed: str
    avg_sci: str
    avg_tier: str | None  # the tier band the average SCI falls in; None while nobody has a score
    tiers: list[TierCount]
    parts: list[Bar]
    steps: list[str]


@dataclass(frozen=True)
class SpecialtyDepth:
    name: str
    evidence: int
    percent: float  # against the learner's deepest specialty in the skill


@dataclass(frozen=True)
class DimensionDepth:
    name: str
    level: str  # "3.8", on the rubric's 1..5
    percent: float  # (level - 1) / 4


@dataclass(frozen=True)
class PassportSkillView:
    skill_id: str
    name: str
    tier: int
    tier_name: str
    sci: Bar
    parts: list[Bar]
    sessions: int
    self_level: str | None
    specialties: list[SpecialtyDepth]
    last_evidence: str | None  # a date
    scored: bool  # sci has sent a score (else the scores show NONE)
    claimed_only: bool  # no score and no rated evidence yet: the page suggests a first session
    band: str | None = None  # "± 14", the SCI's 90% band (None: no band known yet)
    band_range: str | None = None  # "44–72"
    band_low: str | None = None
    band_high: str | None = None
    rubric: list[DimensionDepth] = field(default_factory=list)  # in the catalog's order


@dataclass(frozen=True)
class TrailEntry:
    evidence_id: str
    date: str
    iso_date: str  # for <time datetime>
    skill: str
    specialty: str | None
    format: str | None
    rating: str  # the calibrated rating, two decimals
    raw: str  # the rating as given
    calibrated: bool  # a rater bias was known


def number(value: float | None, decimals: int = 1) -> str:
    return NONE if value is None else f"{value:,.{decimals}f}"


def count(value: int) -> str:
    return f"{value:,}"


def bar(part: str, value: float | None) -> Bar:
    top = PART_MAX[part]
    share = 0.0 if value is None else max(0.0, min(100.0, 100.0 * value / top))
    return Bar(part, PART_LABELS[part], number(value), f"{top:g}", round(share, 1), PART_HINTS[part])


def sci_bar(value: float | None) -> Bar:
    share = 0.0 if value is None else max(0.0, min(100.0, value))
    return Bar("sci", "SCI", number(value), "100", round(share, 1))


def steps(skill: Skill) -> list[str]:
    rubric = ", ".join(item.name.lower() for item in skill.rubric)
    return [
        f"Join a peer session in {skill.name}: we pair you with a learner at your level.",
        f"Your partner evaluates you on the rubric: {rubric}.",
        "Rated evidence builds your SCI, shown on your public Skill Passport.",
    ]


def skill_page(skill: Skill, figures: Mapping[str, Any]) -> SkillPageView:
    """``figures`` as ``projection.skill_figures`` gives them (the JSON route's numbers)."""
    learners = int(figures["learners_verifying"])
    tiers = [
        TierCount(
            tier=int(tier),
            name=TIER_NAMES[int(tier)],
            count=int(n),
            percent=round(100.0 * int(n) / learners, 1) if learners else 0.0,
        )
        for tier, n in sorted(figures["tier_distribution"].items())
    ]
    avg_sci = figures["avg_sci"]
    scored = learners - int(figures["tier_distribution"].get("1", 0))  # tier 1: no rated evidence
    shown_sci = None if avg_sci is None else round(avg_sci, 1)
    return SkillPageView(
        skill=skill,
        learners_verifying=count(learners),
        sessions_completed=count(int(figures["sessions_completed"])),
        avg_sci=number(shown_sci),
        avg_tier=None if shown_sci is None or scored <= 0 else TIER_NAMES[sci_band(shown_sci)],
        tiers=tiers,
        parts=[bar(part, figures[f"avg_{part}"]) for part in PART_MAX],
        steps=steps(skill),
    )


def passport_skill(skill: Skill | None, skill_id: str, shown: Mapping[str, Any]) -> PassportSkillView:
    """One skill of a passport, from ``projection.passport_skills``'s entry for it."""
    names = {s.id: s.name for s in skill.specialties} if skill else {}
    depth = shown["specialties"]
    deepest = max(depth.values(), default=0)
    scored = bool(shown.get("scored", True))
    return PassportSkillView(
        skill_id=skill_id,
        name=skill.name if skill else skill_id,
        tier=int(shown["tier"]),
        tier_name=TIER_NAMES[int(shown["tier"])],
        sci=sci_bar(shown["sci"] if scored else None),
        parts=[bar(part, shown[part] if scored else None) for part in PART_MAX],
        sessions=int(shown["sessions"]),
        self_level=shown.get("self_level"),
        specialties=[
            SpecialtyDepth(names.get(s, s), n, round(100.0 * n / deepest, 1) if deepest else 0.0)
            for s, n in sorted(depth.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        last_evidence=date_of(shown.get("last_evidence_at")),
        scored=scored,
        claimed_only=not scored and int(shown["sessions"]) == 0,
        **band_view(shown["sci"], shown.get("band") if scored else None),
        rubric=rubric_view(skill, shown.get("rubric", {}) if scored else {}),
    )


def rubric_view(skill: Skill | None, levels: Mapping[str, float]) -> list[DimensionDepth]:
    """Depth per rubric dimension as the page shows it, in the catalog's order."""
    order = [d.id for d in skill.rubric] if skill else []
    names = {d.id: d.name for d in skill.rubric} if skill else {}
    ids = [d for d in order if d in levels] + sorted(d for d in levels if d not in names)
    return [
        DimensionDepth(names.get(d, d), f"{levels[d]:.1f}", round(100.0 * (levels[d] - 1.0) / 4.0, 1))
        for d in ids
    ]


def band_view(sci: float, band: float | None) -> dict[str, str | None]:
    """The SCI's band as the page shows it: "± 14" and its range (nothing without a band)."""
    if not band:
        return {"band": None, "band_range": None, "band_low": None, "band_high": None}
    low, high = f"{max(0.0, sci - band):.0f}", f"{min(100.0, sci + band):.0f}"
    return {"band": f"± {band:.0f}", "band_range": f"{low}–{high}", "band_low": low, "band_high": high}


def date_of(stamp: str | datetime | None) -> str | None:
    if stamp is None:
        return None
    when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when.strftime("%d %b %Y")


def trail_entry(
    skills: Mapping[str, Skill],
    *,
    evidence_id: str,
    skill_id: str,
    specialty: str | None,
    format: str | None,
    occurred_at: datetime,
    rating: float,
    calibrated: float,
    calibrated_by: bool,
) -> TrailEntry:
    skill = skills.get(skill_id)
    specialties = {s.id: s.name for s in skill.specialties} if skill else {}
    formats = {f.id: f.name for f in skill.formats} if skill else {}
    return TrailEntry(
        evidence_id=evidence_id,
        date=date_of(occurred_at) or NONE,
        iso_date=occurred_at.date().isoformat(),
        skill=skill.name if skill else skill_id,
        specialty=specialties.get(specialty, specialty) if specialty else None,
        format=formats.get(format, format) if format else None,
        rating=f"{calibrated:.2f}",
        raw=f"{rating:.2f}",
        calibrated=calibrated_by,
    )


def passport_skills(
    skills: Mapping[str, Skill], shown: Sequence[Mapping[str, Any]]
) -> list[PassportSkillView]:
    return [passport_skill(skills.get(s["skill"]), s["skill"], s) for s in shown]
