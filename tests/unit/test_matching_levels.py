"""The levels fold: self-levels from claims, an SCI wins over them, the newest SCI (by revision,
then calibration, then as_of) wins, and the state is the same whatever the order and however
often events arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import LEVELS, level_key, level_of
from services.matching.projection import MatchingProjection, fold_level
from shared.events.envelope import CloudEvent, encode, new_event
from shared.events.payloads import (
    LearnerRegistered,
    RatersCalibrated,
    SciUpdated,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.events.registry import Topic
from shared.projection.fold import fold_events
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ML = "machine-learning"
PROJECTION = MatchingProjection()


def claim(level: str, minute: int, learner: str = "ann", skill: str = ML) -> CloudEvent:
    return new_event(
        SkillClaimed(learner_id=learner, skill=skill, self_level=level),
        source="passport",
        time=T0 + timedelta(minutes=minute),
    )


def unclaim(minute: int, learner: str = "ann", skill: str = ML) -> CloudEvent:
    return new_event(
        SkillUnclaimed(learner_id=learner, skill=skill),
        source="passport",
        time=T0 + timedelta(minutes=minute),
    )


def sci(
    value: float,
    day: int,
    learner: str = "ann",
    skill: str = ML,
    revision: int = 0,
    calibration: int = 0,
    id: str | None = None,
    model: int = 0,
) -> CloudEvent:
    as_of = T0 + timedelta(days=day)
    payload = SciUpdated(
        learner_id=learner,
        skill=skill,
        sci=value,
        practice=0,
        proof=0,
        reliability=0,
        freshness=0,
        tier=2,
        as_of=as_of,
        revision=revision,
        calibration=calibration,
        model=model,
    )
    return new_event(payload, source="sci", time=as_of, id=id)


def level(events: list[CloudEvent], learner: str = "ann", skill: str = ML) -> float | None:
    docs, emitted = fold_events(PROJECTION, events)
    assert emitted == []
    doc = docs.get((LEVELS, level_key(learner, skill)))
    return None if doc is None else doc["level"]


def test_self_levels() -> None:
    assert [level([claim(s, 0)]) for s in ("beginner", "intermediate", "advanced", "expert")] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]
    assert level([claim("advanced", 0), claim("intermediate", 1)]) == 2.0


def test_unclaimed_or_unknown_is_a_beginner() -> None:
    assert level([claim("expert", 0), unclaim(1)]) is None
    docs, _ = fold_events(PROJECTION, [claim("expert", 0), unclaim(1)])
    assert level_of(docs[(LEVELS, level_key("ann", ML))]) == 1.0
    assert level_of(None) == 1.0


def test_an_sci_wins_over_the_self_level_in_either_order() -> None:
    assert level([claim("expert", 0), sci(50, 1)]) == 2.5
    assert level([sci(50, 1), claim("expert", 2)]) == 2.5
    assert level([sci(0, 1), claim("expert", 2), unclaim(3)]) == 1.0
    assert level([sci(100, 1)]) == 4.0


def test_the_newest_sci_by_as_of_wins() -> None:
    assert level([sci(20, 1), sci(80, 5)]) == 3.4
    assert level([sci(80, 5), sci(20, 1)]) == 3.4


def test_with_one_as_of_the_higher_revision_wins_whatever_the_event_ids() -> None:
    for ids in (("a", "z"), ("z", "a")):
        first, second = sci(30, 1, revision=1, id=ids[0]), sci(60, 1, revision=2, id=ids[1])
        assert level([first, second]) == level([second, first]) == 2.8
    # a higher revision wins even over a later as_of (sci's revision only grows)
    assert level([sci(60, 1, revision=2), sci(30, 3, revision=1)]) == 2.8


def test_at_one_revision_the_higher_calibration_wins_whatever_the_as_of_and_event_ids() -> None:
    for ids in (("a", "z"), ("z", "a")):
        older = sci(30, 5, revision=2, calibration=4, id=ids[0])  # the later as_of
        recalibrated = sci(60, 1, revision=2, calibration=7, id=ids[1])
        assert level([older, recalibrated]) == level([recalibrated, older]) == 2.8
        assert level([recalibrated, older, recalibrated, older]) == 2.8
    # a higher revision still beats a higher calibration
    assert level([sci(60, 1, revision=2, calibration=7), sci(20, 0, revision=3, calibration=0)]) == 1.6


def test_a_level_stored_before_revisions_counts_as_revision_0() -> None:
    docs, _ = fold_events(PROJECTION, [sci(30, 1, id="z")])
    doc = docs[(LEVELS, level_key("ann", ML))]
    legacy = {**doc, "sci_version": doc["sci_version"][2:]}  # [as_of, event id]
    assert fold_level(legacy, sci(20, 0, id="a")) is None  # older as_of, same revision
    newer = fold_level(legacy, sci(60, 1, revision=1, id="a"))
    assert newer is not None and newer["sci"] == 60
    recalibrated = fold_level(legacy, sci(60, 0, calibration=1, id="a"))
    assert recalibrated is not None and recalibrated["sci"] == 60


def test_a_level_stored_before_calibrations_counts_as_calibration_0() -> None:
    docs, _ = fold_events(PROJECTION, [sci(30, 1, revision=2, id="z")])
    doc = docs[(LEVELS, level_key("ann", ML))]
    assert doc["sci_version"][:3] == [0, 2, 0]
    legacy = {**doc, "sci_version": [doc["sci_version"][1], *doc["sci_version"][3:]]}
    assert fold_level(legacy, sci(20, 1, revision=2, id="a")) is None  # same key but a smaller id
    assert fold_level(legacy, sci(20, 0, revision=2, id="zz")) is None  # older as_of
    newer = fold_level(legacy, sci(60, 0, revision=2, calibration=1, id="a"))
    assert newer is not None and newer["sci"] == 60


def test_a_newer_score_model_wins_at_any_revision_and_a_legacy_level_counts_as_model_0() -> None:
    docs, _ = fold_events(PROJECTION, [sci(30, 5, revision=9, calibration=50, id="z")])
    doc = docs[(LEVELS, level_key("ann", ML))]
    rebuilt = fold_level(doc, sci(45, 1, revision=2, id="a", model=1))  # a rebuild's announcement
    assert rebuilt is not None and rebuilt["sci"] == 45
    assert fold_level(rebuilt, sci(99, 9, revision=30, calibration=90, id="zz")) is None  # an old model's
    legacy = {**doc, "sci_version": doc["sci_version"][1:]}  # [revision, calibration, as_of, id]
    assert fold_level(legacy, sci(45, 1, revision=2, id="a", model=1)) is not None
    assert fold_level(legacy, sci(45, 1, revision=2, id="a")) is None


def test_duplicates_are_harmless_and_other_events_are_ignored() -> None:
    events = [claim("advanced", 0), sci(40, 1)]
    once, _ = fold_events(PROJECTION, events)
    twice, _ = fold_events(PROJECTION, events + events[::-1])
    assert once == twice
    other = new_event(LearnerRegistered(learner_id="ann", handle="ann"), source="passport")
    assert list(PROJECTION.refs(other)) == []
    assert fold_events(PROJECTION, [other]) == ({}, [])
    assert (
        PROJECTION.apply(
            {(LEVELS, level_key("ann", ML)): once[(LEVELS, level_key("ann", ML))]}, events[1]
        ).changes
        == {}
    )


def raters_calibrated() -> CloudEvent:
    payload = RatersCalibrated(
        skill=ML, version="v", digest="d", ratings=40, part=0, parts=1, bias={"ann": 0.5, "bob": -0.2}
    )
    return new_event(payload, source="sci", time=T0)


def test_raters_calibrated_on_the_sci_topic_is_ignored() -> None:
    """sci announces rater biases on lemma.sci.v1 too (keyed by skill): matching folds nothing."""
    calibrated = raters_calibrated()
    assert list(PROJECTION.refs(calibrated)) == []
    assert PROJECTION.apply({}, calibrated).changes == {} and PROJECTION.apply({}, calibrated).emit == ()
    events = [claim("advanced", 0), sci(40, 1)]
    assert fold_events(PROJECTION, [calibrated, *events, calibrated]) == fold_events(PROJECTION, events)


async def test_raters_calibrated_is_folded_past_not_dead_lettered() -> None:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(MatchingProjection(), store, service="matching")
    record = Rec(Topic.SCI.value, 0, 0, ML.encode(), encode(raters_calibrated()))
    assert await runtime.handle([record]) == 1  # folded (to nothing), not a dead letter
    assert await store.offsets("matching") == {(Topic.SCI.value, 0): 0}
    assert await store.pending_outbox() == []
    await store.close()


EVENT = st.one_of(
    st.builds(
        claim,
        st.sampled_from(["beginner", "intermediate", "advanced", "expert"]),
        st.integers(0, 20),
        st.sampled_from(["ann", "bob"]),
        st.sampled_from([ML, "data-engineering"]),
    ),
    st.builds(unclaim, st.integers(0, 20), st.sampled_from(["ann", "bob"]), st.sampled_from([ML])),
    st.builds(
        sci,
        st.floats(0, 100, allow_nan=False),
        st.integers(0, 20),
        st.sampled_from(["ann", "bob"]),
        st.sampled_from([ML, "data-engineering"]),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENT, max_size=12), data=st.data())
def test_any_order_and_any_duplicates_give_the_same_levels(
    events: list[CloudEvent], data: st.DataObject
) -> None:
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    shuffled = data.draw(st.permutations(events + redelivered))
    expected, _ = fold_events(PROJECTION, events)
    assert fold_events(PROJECTION, shuffled)[0] == expected
    for (_, key), doc in expected.items():
        learner, skill = key.split("/")
        mine = [e for e in events if e.data.learner_id == learner and e.data.skill == skill]  # type: ignore[attr-defined]
        scis = [e for e in mine if isinstance(e.data, SciUpdated)]
        claims = [e for e in mine if not isinstance(e.data, SciUpdated)]
        if scis:
            newest = max(
                scis,
                key=lambda e: (e.data.revision, e.data.calibration, e.data.as_of, e.id),  # type: ignore[attr-defined]
            )
            assert doc["level"] == round(1 + 3 * newest.data.sci / 100, 4)  # type: ignore[attr-defined]
        else:
            last = max(claims, key=lambda e: (e.time, e.id))
            want = {"beginner": 1.0, "intermediate": 2.0, "advanced": 3.0, "expert": 4.0}
            assert doc["level"] == (
                want[last.data.self_level] if isinstance(last.data, SkillClaimed) else None
            )
