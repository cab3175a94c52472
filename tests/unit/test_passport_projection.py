"""The passport fold: passports, exact skill figures, idempotence and order independence."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.passport.projection import (
    PARTS,
    PASSPORTS,
    SKILL_STATS,
    TIERS,
    PassportProjection,
    empty_stats,
    passport_skills,
    skill_figures,
)
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import (
    EvidenceRecorded,
    LearnerRegistered,
    Payload,
    SciUpdated,
    SkillClaimed,
    SkillUnclaimed,
    TierChanged,
)
from shared.projection.fold import Doc, DocRef, fold_events

ML = "machine-learning"
DE = "data-engineering"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SCORES = {"model-selection": 4}
P = PassportProjection()


def ev(payload: Payload, minutes: int = 0, id: str | None = None) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(minutes=minutes), id=id)


def evidence(
    learner: str, session: str, *, skill: str = ML, specialty: str | None = "nlp", minutes: int = 0
) -> EvidenceRecorded:
    return EvidenceRecorded(
        evidence_id=f"ev-{learner}-{skill}-{session}-{specialty}-{minutes}",
        learner_id=learner,
        skill=skill,
        specialty=specialty,
        session_id=session,
        rater_id="rater",
        scores=SCORES,
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def sci(
    learner: str,
    value: float,
    *,
    tier: int,
    minutes: int,
    skill: str = ML,
    revision: int = 0,
    calibration: int = 0,
    model: int = 0,
) -> SciUpdated:
    practice = min(round(value * 0.25, 2), 25.0)
    proof = round(value - practice, 2)
    return SciUpdated(
        learner_id=learner,
        skill=skill,
        sci=round(practice + proof, 2),
        practice=practice,
        proof=proof,
        reliability=0,
        freshness=0,
        tier=tier,
        sessions=1,
        as_of=T0 + timedelta(minutes=minutes),
        revision=revision,
        calibration=calibration,
        model=model,
    )


def fold(events: list[CloudEvent]) -> dict[DocRef, Doc]:
    return fold_events(P, events)[0]


def skills_of(docs: dict[DocRef, Doc], learner: str) -> dict[str, Doc]:
    return {s["skill"]: s for s in passport_skills(docs.get((PASSPORTS, learner)))}


def figures_of(docs: dict[DocRef, Doc], skill: str) -> Doc:
    return skill_figures(docs.get((SKILL_STATS, skill)))


def test_a_claimed_skill_without_evidence_is_tier_1_with_zero_sci() -> None:
    docs = fold(
        [
            ev(LearnerRegistered(learner_id="u1", handle="ada")),
            ev(SkillClaimed(learner_id="u1", skill=ML, self_level="advanced"), 1),
        ]
    )
    assert docs[(PASSPORTS, "u1")]["handle"] == "ada"
    entry = skills_of(docs, "u1")[ML]
    assert entry["tier"] == 1 and entry["sci"] == 0 and entry["sessions"] == 0
    assert entry["self_level"] == "advanced" and entry["last_evidence_at"] is None
    page = figures_of(docs, ML)
    assert page["learners_verifying"] == 1 and page["tier_distribution"] == {"1": 1, "2": 0, "3": 0, "4": 0}
    assert page["avg_sci"] == 0 and page["sessions_completed"] == 0


def test_evidence_and_scores_fill_the_entry_and_the_skill_page() -> None:
    docs = fold(
        [
            ev(SkillClaimed(learner_id="u1", skill=ML, self_level="beginner")),
            ev(evidence("u1", "s1", specialty="nlp", minutes=5), 5),
            ev(evidence("u2", "s1", specialty="nlp", minutes=5), 5),  # the partner's item, same session
            ev(evidence("u1", "s2", specialty="tabular", minutes=9), 9),
            ev(evidence("u1", "s2", specialty=None, minutes=9), 9),
            ev(sci("u1", 40.0, tier=2, minutes=9), 9),
            ev(sci("u2", 20.0, tier=2, minutes=5), 5),
        ]
    )
    entry = skills_of(docs, "u1")[ML]
    assert entry["sessions"] == 2 and entry["specialties"] == {"nlp": 1, "tabular": 1}
    assert entry["sci"] == 40.0 and entry["tier"] == 2
    assert entry["practice"] + entry["proof"] == entry["sci"]
    assert entry["last_evidence_at"] == "2026-11-01T10:09:00.000000Z"
    page = figures_of(docs, ML)
    assert page["learners_verifying"] == 2  # u2 has evidence but no claim
    assert page["sessions_completed"] == 2  # s1 counted once for both learners
    assert page["avg_sci"] == 30.0 and page["tier_distribution"]["2"] == 2


def test_an_older_score_never_replaces_a_newer_one() -> None:
    newer, older = ev(sci("u1", 50.0, tier=3, minutes=10), 10), ev(sci("u1", 10.0, tier=2, minutes=2), 2)
    for events in ([newer, older], [older, newer], [newer, older, newer, older]):
        docs = fold([ev(SkillClaimed(learner_id="u1", skill=ML, self_level="expert")), *events])
        assert skills_of(docs, "u1")[ML]["sci"] == 50.0
        assert figures_of(docs, ML)["avg_sci"] == 50.0


def test_with_one_as_of_the_higher_revision_wins_whatever_the_event_ids() -> None:
    # sci's as_of is a max: a late, earlier item gives a second update with the same as_of
    first = sci("u1", 30.0, tier=2, minutes=10, revision=1)
    second = sci("u1", 45.0, tier=2, minutes=10, revision=2)
    for ids in (("a", "z"), ("z", "a")):
        pair = [ev(first, 10, id=ids[0]), ev(second, 10, id=ids[1])]
        for events in (pair, pair[::-1], [*pair, *pair]):
            claimed = ev(SkillClaimed(learner_id="u1", skill=ML, self_level="expert"))
            entry = skills_of(fold([claimed, *events]), "u1")[ML]
            assert entry["sci"] == 45.0


def test_at_one_revision_the_higher_calibration_wins_whatever_the_as_of_and_event_ids() -> None:
    # a rescore under newer rater calibration, sent with an earlier as_of and a smaller id
    older = sci("u1", 30.0, tier=2, minutes=20, revision=2, calibration=5)
    recalibrated = sci("u1", 45.0, tier=3, minutes=10, revision=2, calibration=9)
    for ids in (("a", "z"), ("z", "a")):
        pair = [ev(older, 20, id=ids[0]), ev(recalibrated, 10, id=ids[1])]
        for events in (pair, pair[::-1], [*pair, *pair]):
            claimed = ev(SkillClaimed(learner_id="u1", skill=ML, self_level="expert"))
            docs = fold([claimed, *events])
            entry = skills_of(docs, "u1")[ML]
            assert (entry["sci"], entry["tier"]) == (45.0, 3)
            assert figures_of(docs, ML)["avg_sci"] == 45.0
    # a higher revision still beats a higher calibration
    newer_fact = sci("u1", 20.0, tier=2, minutes=5, revision=3, calibration=1)
    entry = skills_of(fold([claimed, ev(recalibrated, 10), ev(newer_fact, 5)]), "u1")[ML]
    assert entry["sci"] == 20.0


def test_a_newer_score_model_wins_over_any_revision_of_the_old_one() -> None:
    """A rebuild under a new score model announces its scores at the revisions it has; they
    replace the old model's, whatever arrives first."""
    claimed = ev(SkillClaimed(learner_id="u1", skill=ML, self_level="expert"))
    old_model = sci("u1", 30.0, tier=2, minutes=50, revision=12, calibration=90)
    new_model = sci("u1", 41.0, tier=3, minutes=10, revision=12, calibration=90, model=1)
    for events in ([old_model, new_model], [new_model, old_model]):
        entry = skills_of(fold([claimed, *(ev(e, 5) for e in events)]), "u1")[ML]
        assert (entry["sci"], entry["tier"]) == (41.0, 3)


def test_a_score_stored_before_revisions_counts_as_revision_0() -> None:
    docs = fold([ev(sci("u1", 30.0, tier=2, minutes=10), 10, id="z")])
    del docs[(PASSPORTS, "u1")]["skills"][ML]["score"]["revision"]
    del docs[(PASSPORTS, "u1")]["skills"][ML]["score"]["calibration"]
    later = ev(sci("u1", 45.0, tier=2, minutes=10, revision=1), 10, id="a")
    outcome = P.apply({ref: docs.get(ref) for ref in P.refs(later)}, later)
    assert outcome.changes[(PASSPORTS, "u1")]["skills"][ML]["score"]["sci"] == 45.0  # type: ignore[index]


def test_a_score_stored_before_calibrations_counts_as_calibration_0() -> None:
    docs = fold([ev(sci("u1", 30.0, tier=2, minutes=10, revision=2), 10, id="z")])
    del docs[(PASSPORTS, "u1")]["skills"][ML]["score"]["calibration"]
    refs = P.refs(ev(sci("u1", 0.0, tier=2, minutes=0), 0))
    same = ev(sci("u1", 45.0, tier=2, minutes=10, revision=2), 10, id="a")  # calibration 0 too
    assert P.apply({ref: docs.get(ref) for ref in refs}, same).changes == {}
    recalibrated = ev(sci("u1", 45.0, tier=2, minutes=1, revision=2, calibration=1), 1, id="a")
    outcome = P.apply({ref: docs.get(ref) for ref in refs}, recalibrated)
    assert outcome.changes[(PASSPORTS, "u1")]["skills"][ML]["score"]["sci"] == 45.0  # type: ignore[index]


def test_unclaim_removes_a_skill_without_evidence_and_keeps_one_with_evidence() -> None:
    claim = ev(SkillClaimed(learner_id="u1", skill=ML, self_level="beginner"), 0)
    unclaim = ev(SkillUnclaimed(learner_id="u1", skill=ML), 1)
    docs = fold([claim, unclaim, claim])  # the late copy of the older claim does not resurrect it
    assert skills_of(docs, "u1") == {}
    assert figures_of(docs, ML)["learners_verifying"] == 0 and figures_of(docs, ML)["avg_sci"] is None

    docs = fold([claim, ev(evidence("u1", "s1"), 0), unclaim])
    entry = skills_of(docs, "u1")[ML]
    assert entry["self_level"] is None and entry["sessions"] == 1
    assert figures_of(docs, ML)["learners_verifying"] == 1


def test_a_second_copy_of_an_evidence_item_counts_once() -> None:
    item = evidence("u1", "s1")
    docs = fold([ev(item, 0, id="a"), ev(item, 0, id="b"), ev(item, 0, id="a")])
    entry = skills_of(docs, "u1")[ML]
    assert entry["specialties"] == {"nlp": 1} and entry["sessions"] == 1
    assert figures_of(docs, ML)["sessions_completed"] == 1


def test_events_it_does_not_fold_change_nothing() -> None:
    changed = TierChanged(learner_id="u1", skill=ML, from_tier=1, to_tier=2, as_of=T0)
    assert fold([ev(changed)]) == {}


# Random histories ---------------------------------------------------------------

LEARNERS = ["u1", "u2", "u3"]
SKILLS = [ML, DE]
SPECIALTIES = {ML: ["nlp", "tabular", None], DE: ["batch", "streaming", None]}

minutes = st.integers(0, 30)
learner = st.sampled_from(LEARNERS)
skill = st.sampled_from(SKILLS)


@st.composite
def evidence_payloads(draw: st.DrawFn) -> EvidenceRecorded:
    s = draw(skill)
    return evidence(
        draw(learner),
        draw(st.sampled_from(["s1", "s2", "s3", "s4"])),
        skill=s,
        specialty=draw(st.sampled_from(SPECIALTIES[s])),
        minutes=draw(minutes),
    )


@st.composite
def sci_payloads(draw: st.DrawFn) -> SciUpdated:
    parts = {
        "practice": draw(st.integers(0, 2500)) / 100,
        "proof": draw(st.integers(0, 4000)) / 100,
        "reliability": draw(st.integers(0, 2000)) / 100,
        "freshness": draw(st.integers(0, 1500)) / 100,
    }
    return SciUpdated(
        learner_id=draw(learner),
        skill=draw(skill),
        sci=round(sum(parts.values()), 2),
        tier=draw(st.integers(1, 4)),
        sessions=draw(st.integers(0, 5)),
        as_of=T0 + timedelta(minutes=draw(minutes)),
        revision=draw(st.integers(0, 4)),
        calibration=draw(st.integers(0, 3)),
        last_evidence_at=draw(st.none() | minutes.map(lambda m: T0 + timedelta(minutes=m))),
        **parts,
    )


payloads: st.SearchStrategy[Payload] = st.one_of(
    st.builds(LearnerRegistered, learner_id=learner, handle=learner.map(lambda u: f"h-{u}")),
    st.builds(
        SkillClaimed,
        learner_id=learner,
        skill=skill,
        self_level=st.sampled_from(["beginner", "intermediate", "advanced", "expert"]),
    ),
    st.builds(SkillUnclaimed, learner_id=learner, skill=skill),
    evidence_payloads(),
    sci_payloads(),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """A history, and the same events redelivered (copies) in some other order."""
    drawn = draw(st.lists(st.tuples(payloads, minutes), max_size=40))
    events = [ev(p, m, id=f"e{i:03d}") for i, (p, m) in enumerate(drawn)]
    copies = draw(st.lists(st.sampled_from(events), max_size=15)) if events else []
    return events, draw(st.permutations(events + copies))


@settings(max_examples=150, deadline=None)
@given(histories())
def test_duplicates_and_reordering_give_the_same_state(history: tuple[list[CloudEvent], ...]) -> None:
    events, redelivered = history
    assert fold(redelivered) == fold(events)
    assert fold(events + events) == fold(events)


def recount(docs: dict[DocRef, Doc], events: list[CloudEvent]) -> dict[str, Doc]:
    """Skill figures counted from scratch from the final passports and the evidence seen."""
    counted: dict[str, Doc] = {}
    for (collection, _), doc in docs.items():
        if collection != PASSPORTS:
            continue
        for view in passport_skills(doc):
            stats = counted.setdefault(view["skill"], empty_stats())
            stats["learners"] += 1
            stats["tiers"][str(view["tier"])] += 1
            for part in PARTS:
                stats["centi"][part] += round(view[part] * 100)
    items = [e.data for e in events if isinstance(e.data, EvidenceRecorded)]
    sessions = Counter(skill for skill, _ in {(i.skill, i.session_id) for i in items})
    for s, n in sessions.items():
        counted.setdefault(s, empty_stats())["sessions_completed"] = n
    return counted


@settings(max_examples=150, deadline=None)
@given(histories())
def test_incremental_skill_stats_equal_a_recount(history: tuple[list[CloudEvent], ...]) -> None:
    events, redelivered = history
    docs = fold(redelivered)
    counted = recount(docs, events)
    for s in SKILLS:
        kept = docs.get((SKILL_STATS, s), empty_stats())
        expected = counted.get(s, empty_stats())
        assert kept == expected
        views = [
            v for (c, _), d in docs.items() if c == PASSPORTS for v in passport_skills(d) if v["skill"] == s
        ]
        page = skill_figures(kept)
        assert page["learners_verifying"] == len(views)
        assert sum(page["tier_distribution"][t] for t in TIERS) == len(views)
        if views:
            mean = sum(v["sci"] for v in views) / len(views)
            assert abs(page["avg_sci"] - mean) <= 0.006


def test_fold_does_not_mutate_the_documents_it_is_given() -> None:
    docs = fold([ev(SkillClaimed(learner_id="u1", skill=ML, self_level="beginner"))])
    snapshot = repr(sorted(docs.items()))
    view: dict[DocRef, Any] = {ref: docs.get(ref) for ref in P.refs(ev(evidence("u1", "s9"), 3))}
    P.apply(view, ev(evidence("u1", "s9"), 3))
    P.apply(view, ev(sci("u1", 30.0, tier=2, minutes=3), 3))
    assert repr(sorted(docs.items())) == snapshot
