"""Erasure in the passport fold: whatever else a learner's log holds, in whatever order and with
repeats, a rebuild (the fold from the start of the log, with the erasure marks the store keeps)
leaves no handle of an erased learner in any document, and the learner is shown as erased."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.passport.domain import ERASURES, LEARNERS
from services.passport.projection import PASSPORTS, PassportProjection
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import (
    LearnerErased,
    LearnerJoined,
    LearnerRegistered,
    Payload,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.projection.fold import fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
HANDLE = "secret-handle-42"
SKILLS = ("machine-learning", "data-engineering")


def ev(payload: Payload, minute: int) -> CloudEvent:
    return new_event(payload, source="test", time=T0 + timedelta(minutes=minute))


@st.composite
def learner_logs(draw: st.DrawFn) -> list[CloudEvent]:
    """One learner's partition: an old registration (handle in clear) or a new one, claims and
    unclaims, repeats, then the erasure (published after the registration it erases)."""
    old = draw(st.booleans())
    joined: Payload = (
        LearnerRegistered(learner_id="u1", handle=HANDLE) if old else LearnerJoined(learner_id="u1")
    )
    claims: list[Payload] = draw(
        st.lists(
            st.one_of(
                st.builds(
                    SkillClaimed,
                    learner_id=st.just("u1"),
                    skill=st.sampled_from(SKILLS),
                    self_level=st.sampled_from(["beginner", "expert"]),
                ),
                st.builds(SkillUnclaimed, learner_id=st.just("u1"), skill=st.sampled_from(SKILLS)),
            ),
            max_size=6,
        )
    )
    before = draw(st.integers(0, len(claims)))
    log = [ev(p, n) for n, p in enumerate([*claims[:before], joined, *claims[before:]])]
    log.append(ev(LearnerErased(learner_id="u1"), len(log)))
    repeats = draw(st.lists(st.sampled_from(log), max_size=4))
    return [*log, *repeats]


@settings(max_examples=200, deadline=None)
@given(learner_logs())
def test_a_rebuild_never_brings_an_erased_handle_back(log: list[CloudEvent]) -> None:
    marks = {(ERASURES, "u1"): {"erased_at": T0.isoformat()}}
    docs, _ = fold_events(PassportProjection(), log, marks)
    rebuilt = {"/".join(ref): doc for ref, doc in docs.items() if ref[0] != ERASURES}
    assert HANDLE not in json.dumps(rebuilt, default=str)
    assert docs[(LEARNERS, "u1")]["erased"] and docs[(PASSPORTS, "u1")]["erased"]


def test_the_live_fold_drops_the_handle_when_the_erasure_arrives() -> None:
    """Without the mark (the live store, folding as events come), the erasure event itself
    clears the handle it left in the learner's documents."""
    log = [ev(LearnerRegistered(learner_id="u1", handle=HANDLE), 0), ev(LearnerErased(learner_id="u1"), 1)]
    docs, _ = fold_events(PassportProjection(), log[:1])
    assert docs[(LEARNERS, "u1")]["handle"] == HANDLE
    docs, _ = fold_events(PassportProjection(), log[1:], docs)
    assert docs[(LEARNERS, "u1")]["handle"] is None and docs[(PASSPORTS, "u1")]["handle"] is None
