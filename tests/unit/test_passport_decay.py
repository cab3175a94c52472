"""Read-time decay on the passport: Freshness (and the SCI with it) as of the read, from the
last SciUpdated, without a new event; the tier and the skill figures stay as stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from services.passport.domain import decayed
from services.passport.projection import (
    PASSPORTS,
    SKILL_STATS,
    PassportProjection,
    passport_skills,
    skill_figures,
)
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import SciUpdated, SkillClaimed
from shared.freshness import freshness_points
from shared.projection.fold import fold_events

ML = "machine-learning"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_freshness_decays_from_the_newest_evidence_and_the_sci_moves_with_it() -> None:
    last = T0 - 10 * DAY  # stored at T0: freshness 15 e^(-10/60) = 12.70
    assert decayed(47.7, 12.7, last, T0) == (47.7, 12.7)
    assert decayed(47.7, 12.7, last, T0 + 50 * DAY) == (40.52, 5.52)  # 60 days: 15 e^-1
    assert decayed(47.7, 12.7, last, T0 + 90 * DAY) == (37.83, 2.83)  # 100 days
    assert decayed(35.0, 0.0, last, T0 + 100_000 * DAY) == (35.0, 0.0)


def test_a_score_without_last_evidence_at_is_shown_as_stored() -> None:
    assert decayed(45.62, 15.0, None, T0 + 400 * DAY) == (45.62, 15.0)


def test_naive_times_are_utc() -> None:
    last = (T0 - 10 * DAY).replace(tzinfo=None)
    assert decayed(47.7, 12.7, last, T0) == decayed(47.7, 12.7, T0 - 10 * DAY, T0.replace(tzinfo=None))


centis = st.integers(0, 2500)
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.tuples(centis, st.integers(0, 4000), st.integers(0, 2000)),
    last=moments,
    scored_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    reads=st.lists(st.timedeltas(min_value=timedelta(days=-30), max_value=timedelta(days=800)), min_size=2),
)
def test_decay_never_rises_with_time_never_exceeds_the_stored_value_and_keeps_the_other_parts(
    parts: tuple[int, int, int], last: datetime, scored_after: timedelta, reads: list[timedelta]
) -> None:
    # a score as sci stores it: parts rounded to 2 decimals, the sci the rounded sum
    scored_at = last + scored_after
    freshness = round(freshness_points(last, scored_at), 2)
    rest = sum(parts) / 100
    sci = round(rest + freshness, 2)
    shown = [decayed(sci, freshness, last, scored_at + r) for r in sorted(reads)]
    for (_, earlier), (_, later) in pairwise(shown):
        assert later <= earlier  # never increases as as_of moves later
    for r, (sci_now, freshness_now) in zip(sorted(reads), shown, strict=True):
        assert 0 <= freshness_now <= 15 and 0 <= sci_now <= 100
        if r >= timedelta(0):
            assert freshness_now <= freshness
        assert abs((sci_now - freshness_now) - (sci - freshness)) <= 0.005 + 1e-9
        assert abs(sci_now - round(rest + freshness_now, 2)) <= 1e-9  # as sci would score it


# Through the fold and the views ---------------------------------------------------


def scored(
    sci: float,
    freshness: float,
    *,
    as_of: datetime,
    last: datetime | None,
    tier: int = 3,
    skill: str = ML,
    learner: str = "u1",
) -> CloudEvent:
    payload = SciUpdated(
        learner_id=learner,
        skill=skill,
        sci=sci,
        practice=10.0,
        proof=round(sci - 10.0 - freshness, 2),
        reliability=0.0,
        freshness=freshness,
        tier=tier,
        sessions=3,
        as_of=as_of,
        revision=3,
        last_evidence_at=last,
    )
    return new_event(payload, source="sci", time=as_of)


def claimed(skill: str = ML, learner: str = "u1") -> CloudEvent:
    return new_event(
        SkillClaimed(learner_id=learner, skill=skill, self_level="advanced"), source="t", time=T0
    )


def test_the_passport_view_decays_freshness_and_sci_but_not_the_tier_or_the_skill_figures() -> None:
    docs, _ = fold_events(PassportProjection(), [claimed(), scored(47.7, 12.7, as_of=T0, last=T0 - 10 * DAY)])
    passport = docs[(PASSPORTS, "u1")]
    assert passport["skills"][ML]["score"]["last_evidence_at"] == "2026-10-22T10:00:00.000000Z"
    (stored,) = passport_skills(passport)
    (today,) = passport_skills(passport, T0)
    (later,) = passport_skills(passport, T0 + 90 * DAY)
    assert (stored["sci"], stored["freshness"]) == (today["sci"], today["freshness"]) == (47.7, 12.7)
    assert (later["sci"], later["freshness"], later["tier"]) == (37.83, 2.83, 3)
    assert later["practice"] + later["proof"] + later["reliability"] + later["freshness"] == later["sci"]
    figures = skill_figures(docs[(SKILL_STATS, ML)])
    assert figures["avg_sci"] == 47.7 and figures["avg_freshness"] == 12.7  # exact sums, not decayed


def test_skills_are_ordered_by_the_sci_shown() -> None:
    de = "data-engineering"
    events = [
        claimed(),
        claimed(de),
        scored(40.0, 15.0, as_of=T0, last=T0),  # fresh evidence: decays fast from 15
        scored(35.0, 0.0, as_of=T0, last=None, skill=de),  # an old-style update: shown as stored
    ]
    docs, _ = fold_events(PassportProjection(), events)
    passport = docs[(PASSPORTS, "u1")]
    assert [v["skill"] for v in passport_skills(passport, T0)] == [ML, de]
    assert [v["skill"] for v in passport_skills(passport, T0 + 90 * DAY)] == [de, ML]
    assert passport_skills(passport, T0 + 90 * DAY)[0]["sci"] == 35.0
