"""The SCI fold (pure): evidence, no-shows and claims in; SciUpdated and TierChanged out."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci.domain import UNCALIBRATED, Correction, EvidenceItem, facts_of, score
from services.sci.projection import (
    CALIBRATIONS,
    RECEIVED,
    SCORES,
    SESSION_SKILL,
    SciProjection,
    received_key,
    rescored,
    score_key,
)
from shared.catalog import get_catalog
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    NoShowContested,
    NoShowUpheld,
    Payload,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
    SkillUnclaimed,
    TierChanged,
)
from shared.projection import fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ML = "machine-learning"
SKILLS = [s.id for s in get_catalog().skills]
LEARNERS = ["ann", "bob", "cy"]
_ids = itertools.count()


def projection() -> SciProjection:
    return SciProjection(SKILLS)


def ev(payload: Payload, at: datetime = T0, id: str | None = None) -> CloudEvent:
    return new_event(payload, source="test", time=at, id=id)


def evidence(
    learner: str = "ann",
    *,
    session: str = "s1",
    rater: str = "bob",
    score_value: int = 4,
    skill: str = ML,
    at: datetime = T0,
    evidence_id: str | None = None,
) -> CloudEvent:
    payload = EvidenceRecorded(
        evidence_id=evidence_id or f"ev-{next(_ids)}",
        learner_id=learner,
        skill=skill,
        specialty="nlp",
        session_id=session,
        rater_id=rater,
        scores={"model-selection": score_value, "deployment": score_value},
        format="build",
        occurred_at=at,
    )
    return ev(payload, at)


def scheduled(session: str, skill: str = ML, pair: tuple[str, str] = ("ann", "bob")) -> CloudEvent:
    return ev(SessionScheduled(session_id=session, match_id=session, skill=skill, participants=pair))


def no_show(session: str, who: str, at: datetime = T0) -> CloudEvent:
    return ev(
        SessionAbandoned(session_id=session, abandoned_by="x", reason="partner-absent", no_show=who), at
    )


def test_first_evidence_stores_the_facts_and_the_item_and_announces_score_and_tier() -> None:
    e = evidence(at=T0)
    docs, emitted = fold_events(projection(), [e])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["facts"] == 1 and doc["sessions"] == 1 and doc["no_shows"] == 0
    assert doc["raters"] == {"bob": [1, 4_000_000, 16_000_000_000_000]}
    assert doc["rubric"] == {"bob": [1, {"deployment": 0, "model-selection": 0}]}
    assert doc["last_evidence_at"] == doc["as_of"] == T0.isoformat()
    received = docs[(RECEIVED, received_key(ML, "ann", "s1"))]
    assert received == {
        "items": {
            e.data.evidence_id: {  # type: ignore[attr-defined]
                "session_id": "s1",
                "rater_id": "bob",
                "mean": 4.0,
                "specialty": "nlp",
                "occurred_at": T0.isoformat(),
                "scores": {"deployment": 4, "model-selection": 4},
            }
        },
        "no_show": False,
    }
    updated, changed = emitted
    assert isinstance(updated, SciUpdated) and isinstance(changed, TierChanged)
    expected = score(facts_of([EvidenceItem.from_doc(k, v) for k, v in received["items"].items()]), T0)
    assert updated.sci == expected.sci and updated.tier == 2 and updated.sessions == 1
    assert updated.as_of == T0 and updated.last_evidence_at == T0
    assert (updated.revision, updated.calibration) == (1, 0)
    assert (changed.from_tier, changed.to_tier) == (1, 2)


def test_a_second_copy_or_redelivery_of_evidence_changes_nothing() -> None:
    e = evidence()
    copy = ev(e.data, e.time)  # same evidence id, new event id
    docs, emitted = fold_events(projection(), [e, e, copy])
    assert docs[(SCORES, "ann/machine-learning")]["facts"] == 1
    assert len(docs[(RECEIVED, received_key(ML, "ann", "s1"))]["items"]) == 1
    assert [type(p) for p in emitted] == [SciUpdated, TierChanged]


def test_two_ratings_in_one_session_count_one_session() -> None:
    docs, _ = fold_events(projection(), [evidence(rater="bob"), evidence(rater="cy")])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert (doc["sessions"], doc["facts"], sorted(doc["raters"])) == (1, 2, ["bob", "cy"])


def test_more_evidence_updates_without_a_tier_change_until_a_threshold() -> None:
    events = [
        evidence(session=f"s{i}", rater=f"r{i}", score_value=5, at=T0 + timedelta(hours=i)) for i in range(6)
    ]
    _, emitted = fold_events(projection(), events)
    tiers = [(p.from_tier, p.to_tier) for p in emitted if isinstance(p, TierChanged)]
    assert tiers == [(1, 2), (2, 3)]
    updates = [p for p in emitted if isinstance(p, SciUpdated)]
    assert len(updates) == 6 and [u.sessions for u in updates] == [1, 2, 3, 4, 5, 6]
    assert updates[-1].tier == 3


def test_the_skill_calibration_corrects_the_score_it_announces() -> None:
    harsh = Correction(bias={"bob": -1.0}, weight={"bob": 2.0}, ratings=50, version="v", digest="d")
    state = {(CALIBRATIONS, ML): harsh.to_doc()}
    _, plain = fold_events(projection(), [evidence(score_value=3)])
    _, corrected = fold_events(projection(), [evidence(score_value=3)], state)
    before, after = plain[0], corrected[0]
    assert isinstance(before, SciUpdated) and isinstance(after, SciUpdated)
    assert after.proof > before.proof and after.calibration == 50 and before.calibration == 0


def test_the_fold_discounts_a_suspected_pair_as_the_calibration_job_does() -> None:
    pact = Correction(ratings=50, version="v", digest="d", collusive=frozenset({("ann", "bob")}))
    honest = Correction(ratings=50, version="v", digest="d")
    events = [evidence(score_value=5, session="s1"), evidence(rater="cy", score_value=2, session="s2")]
    docs, folded = fold_events(projection(), events, {(CALIBRATIONS, ML): pact.to_doc()})
    _, trusting = fold_events(projection(), events, {(CALIBRATIONS, ML): honest.to_doc()})
    last, naive = folded[-1], trusting[-1]
    assert isinstance(last, SciUpdated) and isinstance(naive, SciUpdated)
    assert last.proof < naive.proof  # bob's 5 for ann weighs a twentieth of his weight
    # ... and exactly what the job's rescoring shows, so a recalibration moves nothing
    assert rescored([docs[(SCORES, score_key("ann", ML))]], pact, pact) == []
    again = rescored([docs[(SCORES, score_key("ann", ML))]], honest, pact)
    assert again and isinstance(again[0], SciUpdated) and again[0].proof == last.proof


def test_the_projection_parses_a_calibration_document_once_and_follows_a_new_one() -> None:
    p = projection()
    harsh = Correction(bias={"bob": -1.0}, ratings=50, version="v", digest="d", senior=frozenset({"cy"}))
    doc = harsh.to_doc()
    assert p.correction(ML, doc) is p.correction(ML, doc) == harsh
    assert p.correction(ML, None) is UNCALIBRATED
    # Another document, even with equal content, is parsed again: a batch reads it fresh.
    lenient = Correction(bias={"bob": 0.5}, ratings=60, version="v", digest="e")
    _, first = fold_events(p, [evidence(score_value=3)], {(CALIBRATIONS, ML): doc})
    _, second = fold_events(p, [evidence(score_value=3)], {(CALIBRATIONS, ML): lenient.to_doc()})
    _, fresh = fold_events(projection(), [evidence(score_value=3)], {(CALIBRATIONS, ML): lenient.to_doc()})
    assert isinstance(first[0], SciUpdated) and isinstance(second[0], SciUpdated)
    assert second == fresh and second[0].calibration == 60 and second[0].proof < first[0].proof


def test_a_new_calibration_announces_the_scores_it_moves_at_the_same_revision() -> None:
    events = [evidence("ann", rater="bob"), evidence("cy", rater="dan", session="s2")]
    docs, emitted = fold_events(projection(), events)
    scores = [docs[(SCORES, score_key(learner, ML))] for learner in ("ann", "cy")]
    # (a first calibration moves every band: the uncalibrated band knows no rater, so compare two)
    neutral = Correction(bias={"bob": 0.0}, ratings=5, version="v", digest="c")
    lenient_bob = Correction(bias={"bob": 0.5}, ratings=10, version="v", digest="d")
    assert len(rescored(scores, UNCALIBRATED, neutral)) == 2
    moved = rescored(scores, neutral, lenient_bob)
    assert len(moved) == 1 and isinstance(moved[0], SciUpdated)
    first = next(u for u in emitted if isinstance(u, SciUpdated) and u.learner_id == "ann")
    assert moved[0].learner_id == "ann" and moved[0].proof < first.proof
    assert (moved[0].revision, moved[0].calibration) == (first.revision, 10)
    assert rescored(scores, lenient_bob, lenient_bob) == []


def test_claims_show_tier_1_and_unclaiming_keeps_evidence() -> None:
    claim = ev(SkillClaimed(learner_id="ann", skill=ML, self_level="advanced"))
    unclaim = ev(SkillUnclaimed(learner_id="ann", skill=ML))
    docs, emitted = fold_events(projection(), [claim, claim])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["claimed"] is True and doc["facts"] == 0 and emitted == []
    docs, _ = fold_events(projection(), [claim, unclaim])
    assert docs == {}
    docs, _ = fold_events(projection(), [claim, evidence(), unclaim])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["claimed"] is False and doc["facts"] == 1


def test_a_no_show_is_attributed_to_the_session_skill_once() -> None:
    p = projection()
    refs = list(p.refs(no_show("s9", "ann")))
    assert (SESSION_SKILL, "s9") in refs and (SCORES, score_key("ann", "data-engineering")) in refs
    before = [evidence(session="s1", at=T0), scheduled("s9")]
    later = T0 + timedelta(hours=1)
    docs, emitted = fold_events(p, [*before, no_show("s9", "ann", later), no_show("s9", "ann", later)])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["no_shows"] == 1 and doc["as_of"] == later.isoformat()
    assert docs[(RECEIVED, received_key(ML, "ann", "s9"))] == {"items": {}, "no_show": True}
    updates = [e for e in emitted if isinstance(e, SciUpdated)]
    assert len(updates) == 2 and updates[1].reliability < updates[0].reliability
    assert [u.revision for u in updates] == [1, 2]  # the evidence item, then the no-show


def test_a_no_show_in_a_session_that_produced_evidence_does_not_count() -> None:
    rated = evidence(session="s9")
    for events in (
        [scheduled("s9"), no_show("s9", "ann"), rated],
        [scheduled("s9"), rated, no_show("s9", "ann")],
    ):
        docs, _ = fold_events(projection(), events)
        doc = docs[(SCORES, "ann/machine-learning")]
        assert (doc["no_shows"], doc["sessions"], doc["facts"]) == (0, 1, 2)


def test_a_late_no_show_does_not_cost_the_tier_through_freshness() -> None:
    """The tier is earned at the newest evidence: a no-show months later costs show-up, not Freshness."""
    sessions, values = [f"s{i}" for i in range(5)], [5, 3, 5, 3, 5]  # Proof 27.5 ± 7.07, SCI 65.9
    events = [
        *(scheduled(s) for s in [*sessions, "late"]),
        *(
            evidence(session=s, rater=f"r{i % 3}", score_value=v, at=T0 + timedelta(hours=i))
            for i, (s, v) in enumerate(zip(sessions, values, strict=True))
        ),
    ]
    _, emitted = fold_events(projection(), [*events, no_show("late", "ann", T0 + timedelta(days=300))])
    before, after = [p for p in emitted if isinstance(p, SciUpdated)][-2:]
    assert before.tier == after.tier == 3
    assert before.band == after.band == 7.07
    # as of the no-show the SCI's low end has decayed below the tier's 50
    assert after.sci - after.band < 50 <= before.sci - before.band
    assert [(p.from_tier, p.to_tier) for p in emitted if isinstance(p, TierChanged)] == [(1, 2), (2, 3)]


def claim(session: str, who: str, at: datetime = T0) -> CloudEvent:
    """An abandon naming ``who`` as the no-show, which they may contest for two days."""
    payload = SessionAbandoned(
        session_id=session,
        abandoned_by="x",
        reason="partner-absent",
        no_show=who,
        contest_by=at + timedelta(days=2),
    )
    return ev(payload, at)


def test_a_no_show_claim_costs_nothing_until_upheld_and_then_as_the_old_rule_did() -> None:
    rated = evidence(session="s1", at=T0)
    later = T0 + timedelta(hours=1)
    old_docs, old_emitted = fold_events(projection(), [rated, scheduled("s9"), no_show("s9", "ann", later)])
    # open: nothing counts; not even loaded (it names nobody yet)
    assert list(projection().refs(claim("s9", "ann", later))) == []
    open_docs, open_emitted = fold_events(projection(), [rated, scheduled("s9"), claim("s9", "ann", later)])
    assert open_docs[(SCORES, "ann/machine-learning")]["no_shows"] == 0 and len(open_emitted) == 2
    # upheld (at the time the old rule counted it): the same documents and the same announcements
    upheld = ev(NoShowUpheld(session_id="s9", no_show="ann", claimed_by="bob"), later)
    docs, emitted = fold_events(
        projection(), [rated, scheduled("s9"), claim("s9", "ann", later), upheld, upheld]
    )
    assert docs == old_docs and emitted == old_emitted


def test_a_contested_no_show_claim_costs_nobody() -> None:
    contested = ev(NoShowContested(session_id="s9", contested_by="ann", reason="was-present"))
    events = [evidence(session="s1"), scheduled("s9"), claim("s9", "ann"), contested]
    docs, _ = fold_events(projection(), events)
    assert docs[(SCORES, "ann/machine-learning")]["no_shows"] == 0
    assert (SCORES, "bob/machine-learning") not in docs
    assert list(projection().refs(contested)) == []


def test_a_no_show_without_evidence_is_kept_but_announces_nothing() -> None:
    docs, emitted = fold_events(projection(), [scheduled("s9"), no_show("s9", "bob")])
    assert docs[(SCORES, "bob/machine-learning")]["no_shows"] == 1
    assert emitted == []


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([no_show("nope", "ann")], "unknown session"),
        ([scheduled("s9"), no_show("s9", "zed")], "not a participant"),
    ],
)
def test_bad_no_shows_are_refused(events: list[CloudEvent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_events(projection(), events)


def test_scores_never_go_back_in_time() -> None:
    late, early = evidence(session="a", at=T0 + timedelta(days=30)), evidence(session="b", at=T0)
    docs, emitted = fold_events(projection(), [late, early])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["as_of"] == doc["last_evidence_at"] == late.time.isoformat()
    updates = [u for u in emitted if isinstance(u, SciUpdated)]
    assert [u.as_of for u in updates] == [late.time, late.time]
    # one as_of, two scores: the revision (facts folded) tells readers which is newer
    assert [u.revision for u in updates] == [1, 2] and updates[0].sci != updates[1].sci


# --- order and duplicates: the same events, any interleaving, the same documents ---------------


@st.composite
def streams(draw: st.DrawFn) -> list[list[CloudEvent]]:
    """Per-key streams (the order Kafka keeps): passport and evidence per learner, sessions per session."""
    minutes = st.integers(0, 200 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))
    out: list[list[CloudEvent]] = []
    for learner in LEARNERS:
        claims = draw(st.lists(st.tuples(st.booleans(), st.sampled_from(SKILLS[:2])), max_size=4))
        out.append(
            [
                ev(SkillClaimed(learner_id=learner, skill=s, self_level="beginner"), T0)
                if on
                else ev(SkillUnclaimed(learner_id=learner, skill=s), T0)
                for on, s in claims
            ]
        )
        rows = draw(
            st.lists(
                st.tuples(st.sampled_from(SKILLS[:2]), st.integers(0, 6), st.integers(1, 5), minutes),
                max_size=8,
            )
        )
        out.append(
            [
                evidence(learner, skill=s, session=f"s{n}", rater=f"r{n % 3}", score_value=v, at=at)
                for s, n, v, at in rows
            ]
        )
    for n in range(draw(st.integers(0, 4))):
        pair = tuple(draw(st.permutations(LEARNERS))[:2])
        stream = [scheduled(f"x{n}", draw(st.sampled_from(SKILLS[:2])), (pair[0], pair[1]))]
        if draw(st.booleans()):
            who, at = draw(st.sampled_from(pair)), draw(minutes)
            other = pair[1] if who == pair[0] else pair[0]
            match draw(st.sampled_from(["old rule", "open", "upheld", "contested"])):
                case "old rule":
                    stream.append(no_show(f"x{n}", who, at))
                case "open":
                    stream.append(claim(f"x{n}", who, at))
                case "upheld":
                    upheld = NoShowUpheld(session_id=f"x{n}", no_show=who, claimed_by=other)
                    stream += [claim(f"x{n}", who, at), ev(upheld, at + timedelta(days=2))]
                case "contested":
                    contested = NoShowContested(session_id=f"x{n}", contested_by=who)
                    stream += [claim(f"x{n}", who, at), ev(contested, at + timedelta(hours=1))]
        out.append(stream)
    return out


def with_redeliveries(data: st.DataObject, stream: list[CloudEvent]) -> list[CloudEvent]:
    """At-least-once: a consumer that restarts re-reads a suffix; a producer may send a second copy."""
    result = list(stream)
    if len(stream) > 0 and data.draw(st.booleans()):
        result += stream[data.draw(st.integers(0, len(stream) - 1)) :]
    for e in stream:
        if isinstance(e.data, EvidenceRecorded) and data.draw(st.integers(0, 4)) == 0:
            where = data.draw(st.integers(result.index(e) + 1, len(result)))
            result.insert(where, ev(e.data, e.time))
    return result


def interleave(data: st.DataObject, per_key: list[list[CloudEvent]]) -> list[CloudEvent]:
    queues = [list(s) for s in per_key if s]
    merged: list[CloudEvent] = []
    while queues:
        q = queues[data.draw(st.integers(0, len(queues) - 1))]
        merged.append(q.pop(0))
        queues = [q for q in queues if q]
    return merged


@settings(max_examples=80, deadline=None)
@given(streams(), st.data())
def test_any_interleaving_with_duplicates_gives_the_same_documents(
    per_key: list[list[CloudEvent]], data: st.DataObject
) -> None:
    canonical, _ = fold_events(projection(), itertools.chain.from_iterable(per_key))
    redelivered = [with_redeliveries(data, s) for s in per_key]
    shuffled, emitted = fold_events(projection(), interleave(data, redelivered))
    assert as_bytes(shuffled) == as_bytes(canonical)
    for update in emitted:
        if isinstance(update, SciUpdated):
            parts = (update.practice, update.proof, update.reliability, update.freshness)
            assert update.sci == round(sum(parts), 2)


def as_bytes(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], bytes]:
    """What the store would hold: JSON in the documents' own key order (order is part of the bytes)."""
    return {ref: json.dumps(doc).encode() for ref, doc in docs.items()}
