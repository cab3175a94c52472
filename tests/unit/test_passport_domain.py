"""Passport write rules: registration, claims and the waitlist (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.passport import domain
from services.passport.domain import ERASURES, HANDLES, PERSONAL_HANDLES, PROFILES, WAITLIST
from shared.errors import Refused
from shared.events.payloads import (
    LearnerErased,
    LearnerJoined,
    LearnerRegistered,
    SkillClaimed,
    SkillUnclaimed,
)

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def folded(learner: dict[str, Any] | None, decision: domain.Decision, at: datetime = NOW) -> dict[str, Any]:
    """The learners document after the decision's events (what the command writes)."""
    for index, event in enumerate(decision.events):
        learner = domain.learner_applied(learner, event, at, f"e-{at.isoformat()}-{index}") or learner
    assert learner is not None
    return learner


def registered(learner_id: str = "u1", handle: str = "ada") -> dict[str, Any]:
    decision = domain.register(learner_id, handle, " Ada L. ", existing=None, handle_owner=None, now=NOW)
    return folded(None, decision)


def test_register_writes_handle_and_profile_and_emits_no_personal_data() -> None:
    decision = domain.register("u1", "ada_l-2", " Ada L. ", existing=None, handle_owner=None, now=NOW)
    assert decision.docs[(PROFILES, "u1")] == {"display_name": "Ada L.", "handle": "ada_l-2"}
    assert decision.docs[(PERSONAL_HANDLES, "ada_l-2")] == {"learner_id": "u1"}
    assert decision.events == (LearnerJoined(learner_id="u1"),)
    assert "Ada" not in decision.events[0].model_dump_json()
    assert "ada_l" not in decision.events[0].model_dump_json()
    learner = folded(None, decision)
    assert domain.is_registered(learner) and learner["handle"] is None and learner["claims"] == {}
    assert learner["registered_at"] == NOW.isoformat() and "display_name" not in learner


def test_erasure_drops_the_personal_documents_and_marks_the_learner() -> None:
    decision = domain.register("u1", "ada", "Ada", existing=None, handle_owner=None, now=NOW)
    learner = folded(None, decision)
    erased = domain.erase(learner, "u1", decision.docs[(PROFILES, "u1")], NOW)
    assert erased.docs[(PROFILES, "u1")] is None and erased.docs[(PERSONAL_HANDLES, "ada")] is None
    assert erased.docs[(ERASURES, "u1")] == {"erased_at": NOW.isoformat()}
    assert erased.events == (LearnerErased(learner_id="u1"),)
    gone = folded(learner, erased)
    assert gone["erased"] and not domain.is_registered(gone)
    assert domain.erase(gone, "u1", None, NOW) == domain.Decision()  # erasing again: nothing
    with pytest.raises(Refused) as refused:
        domain.register("u1", "ada2", "Ada", existing=gone, handle_owner=None, now=NOW)
    assert refused.value.status == 410
    with pytest.raises(Refused) as claimed:
        domain.claim(gone, "u1", "machine-learning", "beginner")
    assert claimed.value.status == 410
    with pytest.raises(Refused) as unknown:
        domain.erase(None, "nobody", None, NOW)
    assert unknown.value.status == 404


def test_erasing_a_learner_registered_with_a_handle_in_the_log_drops_that_handle_too() -> None:
    old = domain.learner_applied(None, LearnerRegistered(learner_id="u1", handle="ada"), NOW, "a")
    assert old is not None and old["handle"] == "ada" and domain.is_registered(old)
    erased = domain.erase(old, "u1", None, NOW)
    assert erased.docs[(HANDLES, "ada")] is None
    gone = folded(old, erased)
    assert gone["handle"] is None
    # a rebuild folding the old registration of an erased learner leaves the handle out
    rebuilt = domain.learner_applied(
        None, LearnerRegistered(learner_id="u1", handle="ada"), NOW, "a", erased=True
    )
    assert rebuilt is not None and rebuilt["handle"] is None and not domain.is_registered(rebuilt)


def test_a_claim_counts_only_if_later_than_the_last_of_its_skill() -> None:
    learner = registered()
    claim = SkillClaimed(learner_id="u1", skill="machine-learning", self_level="beginner")
    unclaim = SkillUnclaimed(learner_id="u1", skill="machine-learning")
    later = NOW + timedelta(seconds=1)
    claimed = domain.learner_applied(learner, claim, NOW, "a")
    assert claimed is not None and claimed["claims"] == {"machine-learning": "beginner"}
    unclaimed = domain.learner_applied(claimed, unclaim, later, "b")
    assert unclaimed is not None and unclaimed["claims"] == {}
    # the older claim folded again (the live fold behind the commands) changes nothing
    assert domain.learner_applied(unclaimed, claim, NOW, "a") is None
    assert domain.learner_applied(unclaimed, unclaim, later, "b") is None
    # a second registration never replaces the first
    again = LearnerRegistered(learner_id="u1", handle="other")
    assert domain.learner_applied(unclaimed, again, later, "c") is None


def test_a_handle_and_a_registration_go_to_the_earliest_whatever_the_order_folded() -> None:
    first, second = (LearnerRegistered(learner_id=u, handle="ada") for u in ("u1", "u2"))
    later = NOW + timedelta(seconds=1)
    owner = domain.handle_applied(None, second, later, "b")
    assert owner is not None and owner["learner_id"] == "u2"
    earlier = domain.handle_applied(owner, first, NOW, "a")
    assert earlier is not None and earlier["learner_id"] == "u1"
    assert domain.handle_applied(earlier, second, later, "b") is None
    # a claim folded before its registration keeps its place; the registration fills the rest
    claim = SkillClaimed(learner_id="u1", skill="machine-learning", self_level="expert")
    claimed = domain.learner_applied(None, claim, later, "c")
    assert claimed is not None and not domain.is_registered(claimed)
    learner = domain.learner_applied(claimed, first, NOW, "a")
    assert learner is not None and domain.is_registered(learner)
    assert learner["claims"] == {"machine-learning": "expert"} and learner["handle"] == "ada"


def test_command_time_rises_past_the_last_claim_when_the_clock_goes_back() -> None:
    learner = folded(registered(), domain.claim(registered(), "u1", "machine-learning", "beginner"), NOW)
    earlier = NOW - timedelta(seconds=5)
    assert domain.command_time(learner, earlier) == NOW + timedelta(microseconds=1)
    assert domain.command_time(learner, NOW + timedelta(seconds=1)) == NOW + timedelta(seconds=1)


@pytest.mark.parametrize("handle", ["ab", "a" * 31, "Ada", "ada lovelace", "ada!", "ädä"])
def test_register_refuses_bad_handles(handle: str) -> None:
    with pytest.raises(Refused) as err:
        domain.register("u1", handle, "Ada", existing=None, handle_owner=None, now=NOW)
    assert err.value.status == 422


def test_register_refuses_a_taken_handle_and_a_second_registration() -> None:
    with pytest.raises(Refused) as taken:
        domain.register("u2", "ada", "Bo", existing=None, handle_owner={"learner_id": "u1"}, now=NOW)
    assert taken.value.status == 409
    with pytest.raises(Refused) as again:
        domain.register("u1", "other", "Ada", existing=registered(), handle_owner=None, now=NOW)
    assert again.value.status == 409


def test_register_refuses_a_blank_display_name() -> None:
    with pytest.raises(Refused) as err:
        domain.register("u1", "ada", "   ", existing=None, handle_owner=None, now=NOW)
    assert err.value.status == 422


def test_claim_then_reclaim_same_level_is_a_no_op_and_a_new_level_emits() -> None:
    learner = registered()
    first = domain.claim(learner, "u1", "machine-learning", "beginner")
    assert first.events == (SkillClaimed(learner_id="u1", skill="machine-learning", self_level="beginner"),)
    after = folded(learner, first)
    assert after["claims"] == {"machine-learning": "beginner"}
    assert domain.claim(after, "u1", "machine-learning", "beginner") == domain.Decision()
    changed = domain.claim(after, "u1", "machine-learning", "expert")
    assert changed.events[0] == SkillClaimed(learner_id="u1", skill="machine-learning", self_level="expert")


def test_claim_and_unclaim_need_a_registered_learner() -> None:
    with pytest.raises(Refused) as err:
        domain.claim(None, "ghost", "machine-learning", "beginner")
    assert err.value.status == 404
    with pytest.raises(Refused) as err2:
        domain.unclaim(None, "ghost", "machine-learning")
    assert err2.value.status == 404


def test_unclaim_removes_the_claim_and_refuses_what_is_not_claimed() -> None:
    learner = folded(registered(), domain.claim(registered(), "u1", "machine-learning", "advanced"))
    decision = domain.unclaim(learner, "u1", "machine-learning")
    after = folded(learner, decision, NOW + timedelta(seconds=1))
    assert after["claims"] == {}
    assert decision.events == (SkillUnclaimed(learner_id="u1", skill="machine-learning"),)
    with pytest.raises(Refused) as err:
        domain.unclaim(after, "u1", "machine-learning")
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada@Example.COM ", "ada@example.com"),
        ("first.last+tag@mail.example.co.uk", "first.last+tag@mail.example.co.uk"),
        ("no-at-sign.example.com", None),
        ("two@@example.com", None),
        ("a@b", None),
        (".dot@example.com", None),
        ("dots..twice@example.com", None),
        ("a@-bad.com", None),
        ("a b@example.com", None),
        ("a@example.c", None),
        ("x" * 250 + "@example.com", None),
    ],
)
def test_normalise_email(raw: str, expected: str | None) -> None:
    assert domain.normalise_email(raw) == expected


def test_waitlist_is_idempotent_per_email_and_merges_skills() -> None:
    first = domain.join_waitlist(None, "Ada@Example.com", "machine-learning", NOW)
    doc = first.docs[(WAITLIST, "ada@example.com")]
    assert doc == {"email": "ada@example.com", "skills": ["machine-learning"], "joined_at": NOW.isoformat()}
    assert first.events == ()
    assert domain.join_waitlist(doc, " ADA@example.com", "machine-learning", NOW) == domain.Decision()
    assert domain.join_waitlist(doc, "ada@example.com", None, NOW) == domain.Decision()
    more = domain.join_waitlist(doc, "ada@example.com", "data-engineering", NOW).docs[
        (WAITLIST, "ada@example.com")
    ]
    assert more is not None and more["skills"] == ["machine-learning", "data-engineering"]
    with pytest.raises(Refused):
        domain.join_waitlist(None, "not an email", None, NOW)
