"""The SCI fold (pure): evidence, no-shows and claims in; SciUpdated and TierChanged out."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci.domain import EvidenceItem, score
from services.sci.projection import SCORES, SESSION_SKILL, SciProjection, score_key
from shared.catalog import get_catalog
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
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
    return ev(SessionAbandoned(session_id=session, abandoned_by="x", reason="no-show", no_show=who), at)


def test_first_evidence_stores_the_item_and_announces_score_and_tier() -> None:
    e = evidence(at=T0)
    docs, emitted = fold_events(projection(), [e])
    doc = docs[(SCORES, "ann/machine-learning")]
    item = doc["items"][e.data.evidence_id]  # type: ignore[attr-defined]
    assert item == {
        "session_id": "s1",
        "rater_id": "bob",
        "mean": 4.0,
        "specialty": "nlp",
        "occurred_at": T0.isoformat(),
    }
    updated, changed = emitted
    assert isinstance(updated, SciUpdated) and isinstance(changed, TierChanged)
    expected = score([EvidenceItem.from_doc(e.data.evidence_id, item)], 0, T0)  # type: ignore[attr-defined]
    assert updated.sci == expected.sci and updated.tier == 2 and updated.sessions == 1
    assert updated.as_of == T0 and doc["score"] == expected.to_doc()
    assert (changed.from_tier, changed.to_tier) == (1, 2)


def test_a_second_copy_or_redelivery_of_evidence_changes_nothing() -> None:
    e = evidence()
    copy = ev(e.data, e.time)  # same evidence id, new event id
    docs, emitted = fold_events(projection(), [e, e, copy])
    assert len(docs[(SCORES, "ann/machine-learning")]["items"]) == 1
    assert [type(p) for p in emitted] == [SciUpdated, TierChanged]


def test_more_evidence_updates_without_a_tier_change_until_a_threshold() -> None:
    events = [
        evidence(session=f"s{i}", rater=f"r{i}", score_value=5, at=T0 + timedelta(hours=i)) for i in range(6)
    ]
    docs, emitted = fold_events(projection(), events)
    tiers = [(p.from_tier, p.to_tier) for p in emitted if isinstance(p, TierChanged)]
    assert tiers == [(1, 2), (2, 3)]
    updates = [p for p in emitted if isinstance(p, SciUpdated)]
    assert len(updates) == 6 and [u.sessions for u in updates] == [1, 2, 3, 4, 5, 6]
    assert docs[(SCORES, "ann/machine-learning")]["score"]["tier"] == 3


def test_claims_show_tier_1_and_unclaiming_keeps_evidence() -> None:
    claim = ev(SkillClaimed(learner_id="ann", skill=ML, self_level="advanced"))
    unclaim = ev(SkillUnclaimed(learner_id="ann", skill=ML))
    docs, emitted = fold_events(projection(), [claim, claim])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["claimed"] is True and doc["items"] == {} and emitted == []
    docs, _ = fold_events(projection(), [claim, unclaim])
    assert docs == {}
    docs, _ = fold_events(projection(), [claim, evidence(), unclaim])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["claimed"] is False and len(doc["items"]) == 1


def test_a_no_show_is_attributed_to_the_session_skill_once() -> None:
    p = projection()
    refs = list(p.refs(no_show("s9", "ann")))
    assert (SESSION_SKILL, "s9") in refs and (SCORES, score_key("ann", "data-engineering")) in refs
    before = [evidence(session="s1", at=T0), scheduled("s9")]
    later = T0 + timedelta(hours=1)
    docs, emitted = fold_events(p, [*before, no_show("s9", "ann", later), no_show("s9", "ann", later)])
    doc = docs[(SCORES, "ann/machine-learning")]
    assert doc["no_shows"] == {"s9": True} and doc["as_of"] == later.isoformat()
    updates = [e for e in emitted if isinstance(e, SciUpdated)]
    assert len(updates) == 2 and updates[1].reliability < updates[0].reliability
    assert [u.revision for u in updates] == [1, 2]  # the evidence item, then the no-show


def test_a_no_show_without_evidence_is_kept_but_announces_nothing() -> None:
    docs, emitted = fold_events(projection(), [scheduled("s9"), no_show("s9", "bob")])
    assert docs[(SCORES, "bob/machine-learning")]["no_shows"] == {"s9": True}
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
    assert docs[(SCORES, "ann/machine-learning")]["as_of"] == late.time.isoformat()
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
            stream.append(no_show(f"x{n}", draw(st.sampled_from(pair)), draw(minutes)))
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
    shuffled, _ = fold_events(projection(), interleave(data, redelivered))
    assert shuffled == canonical
    for (collection, _), doc in canonical.items():
        if collection == SCORES and doc["score"] is not None:
            assert doc["score"]["sci"] == round(
                sum(doc["score"][p] for p in ("practice", "proof", "reliability", "freshness")), 2
            )
