"""The passport's evidence trail and rater biases: what the fold keeps, the calibrated-value rule,
and that both come out the same whatever the delivery order and duplication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.passport.domain import calibrated
from services.passport.projection import (
    EVIDENCE_SEEN,
    RATER_BIAS,
    TRAIL,
    PassportProjection,
    trail_key,
)
from services.passport.trail import BadCursor, check_before
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import EvidenceRecorded, Payload, RatersCalibrated
from shared.projection.fold import Doc, DocRef, fold_events

ML = "machine-learning"
DE = "data-engineering"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
P = PassportProjection()


def ev(payload: Payload, minutes: int = 0, id: str | None = None) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(minutes=minutes), id=id)


def fold(events: list[CloudEvent]) -> dict[DocRef, Doc]:
    return fold_events(P, events)[0]


def item(
    evidence_id: str,
    *,
    learner: str = "u1",
    skill: str = ML,
    rater: str = "r1",
    scores: dict[str, int] | None = None,
    minutes: int = 0,
) -> EvidenceRecorded:
    return EvidenceRecorded(
        evidence_id=evidence_id,
        learner_id=learner,
        skill=skill,
        specialty="nlp",
        session_id=f"s-{evidence_id}",
        rater_id=rater,
        scores={"model-selection": 4, "deployment": 3} if scores is None else scores,
        format="build",
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def calibration(
    bias: dict[str, float], *, ratings: int, digest: str, skill: str = ML, part: int = 0, parts: int = 1
) -> RatersCalibrated:
    return RatersCalibrated(
        skill=skill, version="v", digest=digest, ratings=ratings, part=part, parts=parts, bias=bias
    )


# The rule ------------------------------------------------------------------------


def test_a_calibrated_rating_is_the_rating_less_the_bias_held_to_1_to_5() -> None:
    assert calibrated(4.5, 0.5) == 4.0
    assert calibrated(2.0, -0.75) == 2.75  # a harsh rater's rating goes up
    assert calibrated(4.9, -0.6) == 5.0 and calibrated(1.2, 0.5) == 1.0
    assert calibrated(11 / 3, 0.0) == 3.67  # rounded to 2 decimals
    assert calibrated(11 / 3, None) == 3.67 and calibrated(4.0, None) == 4.0  # no bias known


@given(st.floats(1.0, 5.0), st.none() | st.floats(-4.0, 4.0))
def test_a_calibrated_rating_stays_on_the_scale(rating: float, bias: float | None) -> None:
    value = calibrated(rating, bias)
    assert 1.0 <= value <= 5.0 and value == round(value, 2)
    if bias is None:
        assert value == round(rating, 2)
    elif 1.0 <= rating - bias <= 5.0:
        assert abs(value - (rating - bias)) <= 0.005 + 1e-9


# The fold ------------------------------------------------------------------------


def test_evidence_writes_a_trail_item_keyed_by_learner_time_and_id() -> None:
    docs = fold([ev(item("e1", minutes=5, scores={"a": 4, "b": 3, "c": 4}), 7)])
    key = "u1/2026-11-01T10:05:00.000000Z/e1"
    assert key == trail_key("u1", T0 + timedelta(minutes=5), "e1")
    assert docs[(TRAIL, key)] == {
        "evidence_id": "e1",
        "skill": ML,
        "specialty": "nlp",
        "format": "build",
        "session_id": "s-e1",
        "rater_id": "r1",
        "rating": 11 / 3,
        "occurred_at": "2026-11-01T10:05:00.000000Z",
    }


def test_keys_sort_in_time_order_whatever_the_offset_of_the_time() -> None:
    naive = datetime(2026, 11, 1, 10, 0)  # naive means UTC
    later = datetime(2026, 11, 1, 11, 30, tzinfo=timezone(timedelta(hours=1)))  # 10:30 UTC
    earlier = datetime(2026, 11, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))  # 09:00 UTC
    keys = [trail_key("u1", when, "e") for when in (earlier, naive, later)]
    assert keys == sorted(keys) and keys[0] == "u1/2026-11-01T09:00:00.000000Z/e"


def test_a_second_copy_of_an_item_changes_nothing() -> None:
    first = ev(item("e1"), 0, id="a")
    docs = fold([first])
    for copy in (first, ev(item("e1"), 3, id="b")):
        refs = P.refs(copy)
        assert P.apply({ref: docs.get(ref) for ref in refs}, copy).changes == {}
    assert [k for (c, k) in fold([first, ev(item("e1"), 3, id="b"), first]) if c == TRAIL] == [
        trail_key("u1", T0, "e1")
    ]


def test_an_item_counted_before_the_trail_existed_is_trailed_when_the_log_is_folded_again() -> None:
    events = [ev(item("e1"), 0, id="a"), ev(item("e2", minutes=4), 4, id="b")]
    docs = fold(events)
    before_the_trail = {ref: doc for ref, doc in docs.items() if ref[0] != TRAIL}
    refolded, _ = fold_events(P, events, before_the_trail)
    assert refolded == docs  # the counts stay as they were; the trail is filled in


def test_an_item_without_scores_is_counted_but_has_no_trail_item() -> None:
    docs = fold([ev(item("e1", scores={}))])
    assert (EVIDENCE_SEEN, "e1") in docs and not [k for k in docs if k[0] == TRAIL]


def test_a_newer_calibration_replaces_a_raters_bias_and_an_older_one_does_not() -> None:
    older = calibration({"r1": 0.4, "r2": -0.2}, ratings=100, digest="b")
    newer = calibration({"r1": 0.3, "r2": -0.1, "r3": 0.0}, ratings=120, digest="a")
    for events in ([older, newer], [newer, older], [newer, older, newer]):
        docs = fold([ev(p) for p in events])
        assert {k: d["bias"] for (c, k), d in docs.items() if c == RATER_BIAS} == {
            f"{ML}/r1": 0.3,
            f"{ML}/r2": -0.1,
            f"{ML}/r3": 0.0,
        }
        assert docs[(RATER_BIAS, f"{ML}/r1")] == {"bias": 0.3, "ratings": 120, "digest": "a"}
    # over as many ratings, the greater digest wins (any total order will do: same everywhere)
    tie = calibration({"r1": 0.9}, ratings=120, digest="c")
    assert fold([ev(newer), ev(tie)]) == fold([ev(tie), ev(newer)])
    assert fold([ev(newer), ev(tie)])[(RATER_BIAS, f"{ML}/r1")]["digest"] == "c"


def test_biases_are_per_skill_and_parts_of_one_calibration_are_independent() -> None:
    part0 = calibration({"r1": 0.5}, ratings=50, digest="d", part=0, parts=2)
    part1 = calibration({"r2": -0.5}, ratings=50, digest="d", part=1, parts=2)
    other = calibration({"r1": -0.3}, ratings=500, digest="e", skill=DE)
    docs = fold([ev(part1), ev(other), ev(part0)])
    assert docs[(RATER_BIAS, f"{ML}/r1")]["bias"] == 0.5
    assert docs[(RATER_BIAS, f"{ML}/r2")]["bias"] == -0.5
    assert docs[(RATER_BIAS, f"{DE}/r1")]["bias"] == -0.3


def test_a_repeated_calibration_changes_nothing() -> None:
    held = calibration({"r1": 0.5}, ratings=50, digest="d")
    docs = fold([ev(held)])
    again = ev(held, 9)
    assert P.apply({ref: docs.get(ref) for ref in P.refs(again)}, again).changes == {}


# Random histories ---------------------------------------------------------------

RATERS = ["r1", "r2", "r3", "r4"]
# (ratings, digest) of four calibrations; two share a size, so the digest must break the tie
CALIBRATIONS = [(10, "a1"), (20, "b7"), (20, "c3"), (30, "d9")]


def bias_of(calibration_index: int, rater: str, skill: str) -> float:
    """One calibration gives a rater one bias (a digest names one rating set)."""
    return ((calibration_index * 7 + RATERS.index(rater) * 3 + len(skill)) % 11 - 5) / 10


@st.composite
def calibrations(draw: st.DrawFn) -> RatersCalibrated:
    index = draw(st.integers(0, len(CALIBRATIONS) - 1))
    skill = draw(st.sampled_from([ML, DE]))
    raters = draw(st.lists(st.sampled_from(RATERS), unique=True, max_size=len(RATERS)))
    ratings, digest = CALIBRATIONS[index]
    part = draw(st.integers(0, 2))
    return calibration(
        {r: bias_of(index, r, skill) for r in raters},
        ratings=ratings,
        digest=digest,
        skill=skill,
        part=part,
        parts=3,
    )


@st.composite
def evidence_items(draw: st.DrawFn) -> EvidenceRecorded:
    n = draw(st.integers(0, 9))
    return item(
        f"e{n}",
        learner=["u1", "u2"][n % 2],
        skill=[ML, DE][n % 3 % 2],
        rater=RATERS[n % 4],
        scores={"a": 1 + n % 5, "b": 1 + (n * 3) % 5},
        minutes=n * 7 % 30,
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """Evidence (an item's copies are identical but for the event id and time) and calibrations,
    and the same set redelivered with copies in another order."""
    drawn = draw(st.lists(st.tuples(evidence_items() | calibrations(), st.integers(0, 30)), max_size=30))
    events = [ev(p, m, id=f"e{i:03d}") for i, (p, m) in enumerate(drawn)]
    copies = draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    return events, draw(st.permutations(events + copies))


@settings(max_examples=200, deadline=None)
@given(histories())
def test_trail_and_biases_do_not_depend_on_order_or_duplicates(
    history: tuple[list[CloudEvent], list[CloudEvent]],
) -> None:
    events, redelivered = history
    docs = fold(events)
    assert fold(redelivered) == docs
    assert fold(events + events) == docs
    # the trail holds each item once; each bias is the one of the newest calibration that named it
    items = {e.data.evidence_id: e.data for e in events if isinstance(e.data, EvidenceRecorded)}
    trail = {k: d for (c, k), d in docs.items() if c == TRAIL}
    assert sorted(trail) == sorted(
        trail_key(i.learner_id, i.occurred_at, i.evidence_id) for i in items.values()
    )
    newest: dict[str, tuple[int, str, float]] = {}
    for e in events:
        if isinstance(e.data, RatersCalibrated):
            for rater, bias in e.data.bias.items():
                key = f"{e.data.skill}/{rater}"
                newest[key] = max(newest.get(key, (-1, "", 0.0)), (e.data.ratings, e.data.digest, bias))
    held = {k: (d["ratings"], d["digest"], d["bias"]) for (c, k), d in docs.items() if c == RATER_BIAS}
    assert held == newest


@pytest.mark.parametrize("bad", ["u2/", "u1", "", "x/u1/"])
def test_before_must_be_a_position_in_the_learners_trail(bad: str) -> None:
    check_before("u1", None)
    check_before("u1", "u1/2026-11-01T10:00:00.000000Z/e1")
    with pytest.raises(BadCursor):
        check_before("u1", bad)
