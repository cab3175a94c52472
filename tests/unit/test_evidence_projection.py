"""The evidence fold: two trails and an index per rating, duplicates ignored, bad ratings refused."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.evidence.domain import NotEvidence, evidence_id_for
from services.evidence.projection import EVIDENCE, EVIDENCE_BY_SKILL, EVIDENCE_IDS, EvidenceProjection
from shared.catalog import get_catalog
from shared.events import CloudEvent, new_event
from shared.events.payloads import (
    EvidenceRecorded,
    Payload,
    RatingSubmitted,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
    SessionScheduled,
    SessionStarted,
)
from shared.projection.fold import Doc, DocRef, fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
CATALOG = get_catalog()
PROJECTION = EvidenceProjection(CATALOG)


def full_scores(skill: str, score: int = 4) -> dict[str, int]:
    found = CATALOG.get(skill)
    assert found is not None
    return {d: score for d in sorted(found.rubric_ids)}


def session(
    sid: str,
    skill: str,
    a: str,
    b: str,
    t: datetime,
    *,
    ratings: Iterable[tuple[str, str, dict[str, int]]] | None = None,
    style: str = "old",
    settled_after: int = 0,
) -> list[CloudEvent]:
    """Scheduled, started, completed, then ratings (each way unless given), all in order.

    ``style``: ``old``, a completion of the rule before confirmations (it counts at once); else a
    completion the partner may dispute, then ``confirmed`` or ``disputed`` after
    ``settled_after`` of the ratings, or ``pending`` (neither yet)."""
    confirm_by = None if style == "old" else t + timedelta(days=2)
    events = [
        new_event(
            SessionScheduled(
                session_id=sid, match_id=sid, skill=skill, specialty=None, format=None, participants=(a, b)
            ),
            source="test",
            time=t,
        ),
        new_event(SessionStarted(session_id=sid, started_by=a), source="test", time=t),
        new_event(
            SessionCompleted(session_id=sid, completed_by=b, duration_s=60, confirm_by=confirm_by),
            source="test",
            time=t + timedelta(minutes=1),
        ),
    ]
    given_ratings = (
        ratings if ratings is not None else [(a, b, full_scores(skill)), (b, a, full_scores(skill))]
    )
    settled = {
        "confirmed": SessionConfirmed(session_id=sid, confirmed_by=a),
        "disputed": SessionDisputed(session_id=sid, disputed_by=a, reason="did-not-happen"),
    }.get(style)
    for n, (rater, ratee, scores) in enumerate(given_ratings):
        if n == settled_after and settled is not None:
            events.append(new_event(settled, source="test", time=t + timedelta(minutes=2 + n, seconds=30)))
        rating = RatingSubmitted(
            rating_id=f"{sid}-{rater}-{n}",
            session_id=sid,
            rater_id=rater,
            ratee_id=ratee,
            skill=skill,
            scores=scores,
        )
        events.append(new_event(rating, source="test", time=t + timedelta(minutes=2 + n)))
    if settled_after >= len(list(given_ratings)) and settled is not None:
        events.append(new_event(settled, source="test", time=t + timedelta(hours=1)))
    return events


def fold(events: Iterable[CloudEvent]) -> tuple[dict[DocRef, Doc], list[Payload]]:
    """Fold as the runtime does: an event the fold refuses (NotEvidence) is dead-lettered, skipped."""
    docs: dict[DocRef, Doc] = {}
    emitted: list[Payload] = []
    for event in events:
        try:
            outcome = PROJECTION.apply({ref: docs.get(ref) for ref in PROJECTION.refs(event)}, event)
        except NotEvidence:
            continue
        for ref, doc in outcome.changes.items():
            assert doc is not None
            docs[ref] = doc
        emitted.extend(outcome.emit)
    return docs, emitted


def copy_of(event: CloudEvent, later: timedelta) -> CloudEvent:
    """The same payload again under a new event id and a later time (a re-sent rating)."""
    return new_event(event.data, source="test", time=event.time + later)


def test_a_rating_is_recorded_in_both_trails_and_the_index() -> None:
    events = session("s1", "machine-learning", "ann", "bob", T0)
    docs, emitted = fold_events(PROJECTION, events)
    assert len(emitted) == 2 and all(isinstance(e, EvidenceRecorded) for e in emitted)
    eid = evidence_id_for("s1-ann-0")
    stamp = "2026-11-01T10:02:00.000000Z"
    item = docs[(EVIDENCE, f"bob/{stamp}/{eid}")]
    assert item == docs[(EVIDENCE_BY_SKILL, f"bob/machine-learning/{stamp}/{eid}")]
    assert item["learner_id"] == "bob" and item["rater_id"] == "ann"
    assert docs[(EVIDENCE_IDS, eid)]["trail_key"] == f"bob/{stamp}/{eid}"
    assert {c for c, _ in docs} == {"sessions", EVIDENCE, EVIDENCE_BY_SKILL, EVIDENCE_IDS}


def test_the_same_event_twice_and_a_later_copy_change_nothing() -> None:
    events = session("s1", "machine-learning", "ann", "bob", T0)
    rating = events[-1]
    clean, clean_emitted = fold_events(PROJECTION, events)
    again, again_emitted = fold_events(PROJECTION, [*events, rating, copy_of(rating, timedelta(days=3))])
    assert again == clean and again_emitted == clean_emitted


@pytest.mark.parametrize(
    "scores",
    [{}, {"model-selection": 3}, {**full_scores("machine-learning"), "charisma": 2}],
)
def test_a_rating_that_does_not_fit_the_rubric_is_refused(scores: dict[str, int]) -> None:
    events = session("s1", "machine-learning", "ann", "bob", T0, ratings=[("ann", "bob", scores)])
    docs, _ = fold_events(PROJECTION, events[:-1])
    view = {ref: docs.get(ref) for ref in PROJECTION.refs(events[-1])}
    with pytest.raises(NotEvidence, match="does not fit the catalog"):
        PROJECTION.apply(view, events[-1])


def test_the_all_skills_trail_is_newest_first_across_skills() -> None:
    older = session(
        "s1", "machine-learning", "ann", "bob", T0, ratings=[("ann", "bob", full_scores("machine-learning"))]
    )
    newer = session(
        "s2",
        "backend-development",
        "cat",
        "bob",
        T0 + timedelta(hours=1),
        ratings=[("cat", "bob", full_scores("backend-development"))],
    )
    docs, _ = fold_events(PROJECTION, [*older, *newer])
    trail = [docs[(c, k)]["session_id"] for c, k in sorted(docs, reverse=True) if c == EVIDENCE]
    assert trail == ["s2", "s1"]


def test_trail_keys_are_utc_whatever_the_event_offset() -> None:
    plus_two = timezone(timedelta(hours=2))
    events = session("s1", "machine-learning", "ann", "bob", T0.astimezone(plus_two))
    docs, _ = fold_events(PROJECTION, events)
    keys = sorted(k for c, k in docs if c == EVIDENCE)
    assert all("/2026-11-01T10:0" in k and k.split("/")[1].endswith("Z") for k in keys)


# confirmations


def recorded(docs: dict[DocRef, Doc]) -> dict[DocRef, Doc]:
    return {ref: doc for ref, doc in docs.items() if ref[0] in (EVIDENCE, EVIDENCE_BY_SKILL, EVIDENCE_IDS)}


def test_ratings_of_a_session_awaiting_the_partner_are_held_not_recorded() -> None:
    docs, emitted = fold_events(
        PROJECTION, session("s1", "machine-learning", "ann", "bob", T0, style="pending")
    )
    assert emitted == [] and recorded(docs) == {}
    held = docs[("sessions", "s1")]["held"]
    assert docs[("sessions", "s1")]["confirmation"] == "pending" and len(held) == 2
    assert {h["learner_id"] for h in held.values()} == {"ann", "bob"}


@pytest.mark.parametrize("settled_after", [0, 1, 2])
def test_a_confirmed_session_records_what_the_old_rule_recorded_at_once(settled_after: int) -> None:
    old_docs, old_emitted = fold_events(PROJECTION, session("s1", "machine-learning", "ann", "bob", T0))
    events = session(
        "s1", "machine-learning", "ann", "bob", T0, style="confirmed", settled_after=settled_after
    )
    docs, emitted = fold_events(PROJECTION, events)
    assert docs == old_docs  # the trails dated as the ratings came, the session as the old rule left it
    assert sorted(e.model_dump_json() for e in emitted) == sorted(e.model_dump_json() for e in old_emitted)


@pytest.mark.parametrize("settled_after", [0, 1, 2])
def test_a_disputed_session_records_nothing_even_from_a_later_copy_of_a_rating(settled_after: int) -> None:
    events = session(
        "s1", "machine-learning", "ann", "bob", T0, style="disputed", settled_after=settled_after
    )
    copies = [copy_of(e, timedelta(hours=2)) for e in events if isinstance(e.data, RatingSubmitted)]
    docs, emitted = fold_events(PROJECTION, [*events, *copies])
    assert emitted == [] and recorded(docs) == {}
    assert docs[("sessions", "s1")]["confirmation"] == "disputed" and "held" not in docs[("sessions", "s1")]


def test_a_second_confirmation_or_a_dispute_after_it_changes_nothing() -> None:
    events = session("s1", "machine-learning", "ann", "bob", T0, style="confirmed", settled_after=2)
    docs, _ = fold_events(PROJECTION, events)
    for again in (
        events[-1],
        new_event(SessionDisputed(session_id="s1", disputed_by="ann", reason="other"), source="t", time=T0),
    ):
        assert fold_events(PROJECTION, [again], docs) == (docs, [])


LEARNERS = ("ann", "bob", "x", "x/y")
SKILLS = ("machine-learning", "data-engineering", "backend-development")


@st.composite
def histories(draw: st.DrawFn) -> list[list[CloudEvent]]:
    """A few sessions, each its own ordered list of events; some ratings do not fit the rubric."""
    out: list[list[CloudEvent]] = []
    for n in range(draw(st.integers(1, 4))):
        a, b = draw(st.permutations(LEARNERS))[:2]
        skill = draw(st.sampled_from(SKILLS))
        good = full_scores(skill, draw(st.integers(1, 5)))
        bad = draw(st.sampled_from([{}, dict(list(good.items())[:2]), {**good, "extra": 3}]))
        ratings = [(a, b, good), (b, a, good)] + ([(a, b, bad)] if draw(st.booleans()) else [])
        start = T0 + timedelta(minutes=draw(st.integers(0, 600)))
        style = draw(st.sampled_from(["old", "confirmed", "disputed", "pending"]))
        after = draw(st.integers(0, len(ratings)))
        out.append(session(f"s{n}", skill, a, b, start, ratings=ratings, style=style, settled_after=after))
    return out


@settings(max_examples=200, deadline=None)
@given(histories(), st.data())
def test_interleavings_with_duplicates_fold_like_a_clean_fold(
    sessions: list[list[CloudEvent]], data: st.DataObject
) -> None:
    clean_docs, clean_emitted = fold(event for events in sessions for event in events)
    # Each session's queue gets duplicates (the same event again, or a copy under a new id and a later
    # time) at any point after the original; then the queues are merged in a random interleaving.
    queues: list[list[CloudEvent]] = []
    for events in sessions:
        queue = list(events)
        for event in events:
            for _ in range(data.draw(st.integers(0, 2))):
                duplicate = data.draw(
                    st.sampled_from(
                        [event, copy_of(event, timedelta(seconds=data.draw(st.integers(1, 10**6))))]
                    )
                )
                after = queue.index(event) + 1
                queue.insert(data.draw(st.integers(after, len(queue))), duplicate)
        queues.append(queue)
    delivered: list[CloudEvent] = []
    while any(queues):
        queue = data.draw(st.sampled_from([q for q in queues if q]))
        delivered.append(queue.pop(0))
    docs, emitted = fold(delivered)
    assert docs == clean_docs
    assert sorted(e.model_dump_json() for e in emitted) == sorted(e.model_dump_json() for e in clean_emitted)
