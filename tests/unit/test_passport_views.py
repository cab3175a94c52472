"""What the pages will show, checked without rendering: figures, bars and tiers."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.passport import views
from services.passport.projection import skill_figures
from shared.catalog import Skill, get_catalog


def _ml() -> Skill:
    skill = get_catalog().get("machine-learning")
    assert skill is not None
    return skill


ML = _ml()


def test_an_empty_skill_page_shows_dashes_not_zeros() -> None:
    view = views.skill_page(ML, skill_figures(None))
    assert (view.learners_verifying, view.sessions_completed, view.avg_sci, view.avg_tier) == (
        "0",
        "0",
        "–",
        None,
    )
    assert [p.value for p in view.parts] == ["–"] * 4 and all(p.percent == 0 for p in view.parts)
    assert [t.name for t in view.tiers] == ["Claimed", "Practicing", "Practitioner", "Peer-endorsed"]
    assert "Model selection".lower() in view.steps[1]


def test_skill_page_figures_and_bars() -> None:
    figures = {
        "learners_verifying": 1200,
        "sessions_completed": 3456,
        "tier_distribution": {"1": 100, "2": 500, "3": 400, "4": 200},
        "avg_sci": 73.04,
        "avg_practice": 19.0,
        "avg_proof": 28.0,
        "avg_reliability": 14.0,
        "avg_freshness": 12.04,
    }
    view = views.skill_page(ML, figures)
    assert (view.learners_verifying, view.sessions_completed, view.avg_sci, view.avg_tier) == (
        "1,200",
        "3,456",
        "73.0",
        "Peer-endorsed",
    )
    assert [(p.id, p.value, p.max, p.percent) for p in view.parts] == [
        ("practice", "19.0", "25", 76.0),
        ("proof", "28.0", "40", 70.0),
        ("reliability", "14.0", "20", 70.0),
        ("freshness", "12.0", "15", 80.3),
    ]
    assert [t.percent for t in view.tiers] == [8.3, 41.7, 33.3, 16.7]


@given(st.sampled_from(["practice", "proof", "reliability", "freshness"]), st.floats(-10, 200))
def test_a_bar_never_leaves_its_track(part: str, value: float) -> None:
    assert 0 <= views.bar(part, value).percent <= 100


def test_a_claimed_skill_shows_no_score_and_a_verified_one_its_depth() -> None:
    claimed = {
        "skill": "machine-learning",
        "scored": False,
        "sci": 0.0,
        "tier": 1,
        "sessions": 0,
        "specialties": {},
    }
    for name in ("practice", "proof", "reliability", "freshness"):
        claimed[name] = 0.0
    view = views.passport_skill(ML, "machine-learning", {**claimed, "self_level": "advanced"})
    assert view.claimed_only and view.tier_name == "Claimed" and view.sci.value == "–"
    verified = {
        **claimed,
        "scored": True,
        "sci": 61.5,
        "proof": 26.0,
        "tier": 3,
        "sessions": 3,
        "specialties": {"nlp": 2, "mlops": 4},
        "last_evidence_at": "2026-11-12T10:00:00.000000Z",
    }
    view = views.passport_skill(ML, "machine-learning", verified)
    assert not view.claimed_only and view.tier_name == "Practitioner" and view.sci.value == "61.5"
    assert [(d.name, d.evidence, d.percent) for d in view.specialties] == [
        ("MLOps", 4, 100.0),
        ("NLP", 2, 50.0),
    ]
    assert view.last_evidence == "12 Nov 2026"


def test_a_trail_entry_names_things_and_shows_the_calibrated_rating() -> None:
    entry = views.trail_entry(
        {"machine-learning": ML},
        evidence_id="e",
        skill_id="machine-learning",
        specialty="nlp",
        format="build",
        occurred_at=datetime(2026, 11, 3, tzinfo=UTC),
        rating=4.6,
        calibrated=4.1,
        calibrated_by=True,
    )
    assert (entry.date, entry.skill, entry.specialty, entry.format, entry.rating, entry.raw) == (
        "03 Nov 2026",
        "Machine Learning",
        "NLP",
        "Build a model",
        "4.10",
        "4.60",
    )


def test_no_band_while_nobody_has_a_score_and_the_band_follows_the_shown_figure() -> None:
    claimed_only = {
        **skill_figures(None),
        "learners_verifying": 3,
        "tier_distribution": {"1": 3, "2": 0, "3": 0, "4": 0},
        "avg_sci": 0.0,
    }
    assert views.skill_page(ML, claimed_only).avg_tier is None
    almost = {**claimed_only, "tier_distribution": {"1": 1, "2": 2, "3": 0, "4": 0}, "avg_sci": 49.96}
    view = views.skill_page(ML, almost)
    assert (view.avg_sci, view.avg_tier) == ("50.0", "Practitioner")


def test_a_score_folded_before_its_evidence_shows_the_score_not_the_claimed_hint() -> None:
    shown = {"skill": "machine-learning", "scored": True, "sci": 61.5, "tier": 3, "sessions": 0}
    shown |= {"practice": 15.0, "proof": 26.0, "reliability": 12.5, "freshness": 8.0, "specialties": {}}
    view = views.passport_skill(ML, "machine-learning", shown)
    assert not view.claimed_only and view.scored and view.sci.value == "61.5"
    waiting = views.passport_skill(
        ML, "machine-learning", {**shown, "scored": False, "sessions": 2, "tier": 1}
    )
    assert not waiting.claimed_only and not waiting.scored and waiting.sci.value == "–"
