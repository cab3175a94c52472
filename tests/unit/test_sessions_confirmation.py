"""Every rule of confirmations, disputes, no-show claims and their windows, on the pure domain;
events and documents of the rules before them; the deadlines index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.sessions import deadlines, domain
from services.sessions.deadlines import DEADLINES
from services.sessions.document import applied, upgraded
from shared.events.payloads import (
    NoShowContested,
    NoShowUpheld,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
)
from tests.unit.test_sessions_domain import SCORES, SID, T0, refused, scheduled, started

W = timedelta(hours=2)
DONE = T0 + timedelta(minutes=40)  # bob completes
DEADLINE = DONE + W


def completed() -> dict[str, Any]:
    """Started by ann, completed by bob: bob's confirmation, ann's answer pending."""
    return domain.complete(started(), SID, "bob", DONE, W).doc


def claimed() -> dict[str, Any]:
    """Abandoned by ann naming bob as the no-show."""
    return domain.abandon(started(), SID, "ann", "partner-absent", "bob", DONE, W).doc


# confirming a completion


def test_the_first_confirmation_completes_the_session_pending_the_partner() -> None:
    doc = completed()
    assert doc["status"] == "completed" and doc["completed_by"] == "bob"
    assert doc["confirmation"] == {
        "state": "pending",
        "by": ["bob"],
        "deadline": DEADLINE.isoformat(),
        "settled_at": None,
        "disputed_by": None,
        "reason": None,
    }


@pytest.mark.parametrize("command", [domain.confirm, domain.complete])
def test_the_partners_confirmation_makes_it_count_at_once(command: Any) -> None:
    at = DONE + timedelta(minutes=5)
    result = command(completed(), SID, "ann", at, W)
    assert result.event == SessionConfirmed(session_id=SID, confirmed_by="ann")
    confirmation = result.doc["confirmation"]
    assert confirmation["state"] == "confirmed" and confirmation["by"] == ["bob", "ann"]
    assert confirmation["settled_at"] == at.isoformat()


def test_confirm_on_a_started_session_is_the_first_confirmation() -> None:
    result = domain.confirm(started(), SID, "ann", DONE, W)
    assert isinstance(result.event, SessionCompleted) and result.event.confirm_by == DONE + W


def test_confirming_again_or_once_it_counts_changes_nothing() -> None:
    doc = completed()
    assert domain.confirm(doc, SID, "bob", DONE + timedelta(minutes=1), W).event is None
    counted = domain.confirm(doc, SID, "ann", DONE + timedelta(minutes=1), W).doc
    for who in ("ann", "bob"):
        again = domain.confirm(counted, SID, who, DONE + timedelta(hours=9), W)
        assert again.event is None and again.doc == counted


def test_the_partner_may_still_confirm_after_the_window_before_the_sweep() -> None:
    result = domain.confirm(completed(), SID, "ann", DEADLINE + timedelta(minutes=1), W)
    assert result.event == SessionConfirmed(session_id=SID, confirmed_by="ann")


def test_confirm_refusals() -> None:
    refused(404, domain.confirm, None, SID, "ann", DONE)
    refused(403, domain.confirm, completed(), SID, "cat", DONE)
    refused(409, domain.confirm, scheduled(), SID, "ann", DONE)
    refused(409, domain.confirm, claimed(), SID, "ann", DONE)


# disputing a completion


def test_the_partner_disputes_within_the_window_and_the_session_never_counts() -> None:
    at = DEADLINE - timedelta(microseconds=1)
    result = domain.dispute(completed(), SID, "ann", "did-not-happen", at)
    assert result.event == SessionDisputed(session_id=SID, disputed_by="ann", reason="did-not-happen")
    confirmation = result.doc["confirmation"]
    assert confirmation["state"] == "disputed" and confirmation["disputed_by"] == "ann"
    assert confirmation["reason"] == "did-not-happen" and confirmation["settled_at"] == at.isoformat()
    assert result.doc["status"] == "completed"
    # nothing turns it around: no confirmation, no sweep, no rating
    refused(409, domain.confirm, result.doc, SID, "ann", at)
    assert domain.confirm(result.doc, SID, "bob", at).event is None  # bob's retry of his complete
    settled = domain.settle_due(result.doc, SID, DEADLINE + timedelta(days=9))
    assert settled is not None and settled.event is None
    refused(409, domain.rate, result.doc, SID, "bob", "ann", SCORES, None, at)
    # the same dispute again is a retry; a dispute by the other is refused
    assert domain.dispute(result.doc, SID, "ann", "other", at).event is None
    refused(409, domain.dispute, result.doc, SID, "bob", "other", at)


def test_a_dispute_at_or_after_the_deadline_is_late() -> None:
    refused(409, domain.dispute, completed(), SID, "ann", "ended-early", DEADLINE)


def test_who_confirmed_cannot_dispute_and_a_confirmed_session_cannot_be_disputed() -> None:
    refused(409, domain.dispute, completed(), SID, "bob", "other", DONE)
    counted = domain.confirm(completed(), SID, "ann", DONE, W).doc
    refused(409, domain.dispute, counted, SID, "ann", "other", DONE)


def test_dispute_refusals_before_completion_and_by_outsiders() -> None:
    refused(409, domain.dispute, started(), SID, "ann", "other", DONE)
    refused(403, domain.dispute, completed(), SID, "cat", "other", DONE)
    refused(404, domain.dispute, None, SID, "ann", "other", DONE)


# ratings


def test_ratings_are_taken_while_the_confirmation_is_pending() -> None:
    result = domain.rate(completed(), SID, "bob", "ann", SCORES, None, DONE)
    assert result.event is not None and result.doc["confirmation"]["state"] == "pending"


# no-show claims


def test_a_no_show_claim_waits_for_the_accused() -> None:
    doc = claimed()
    assert doc["status"] == "abandoned" and doc["no_show"] == "bob"
    assert doc["no_show_claim"] == {
        "no_show": "bob",
        "claimed_by": "ann",
        "state": "pending",
        "deadline": DEADLINE.isoformat(),
        "settled_at": None,
        "reason": None,
    }
    plain = domain.abandon(started(), SID, "ann", "schedule-conflict", None, DONE, W)
    assert plain.doc["no_show_claim"] is None
    assert isinstance(plain.event, SessionAbandoned) and plain.event.contest_by is None


def test_the_accused_contests_in_time_and_the_claim_costs_nobody() -> None:
    at = DONE + timedelta(minutes=3)
    result = domain.contest(claimed(), SID, "bob", "was-present", at)
    assert result.event == NoShowContested(session_id=SID, contested_by="bob", reason="was-present")
    claim = result.doc["no_show_claim"]
    assert claim["state"] == "contested" and claim["settled_at"] == at.isoformat()
    assert domain.contest(result.doc, SID, "bob", None, at).event is None  # a retry
    settled = domain.settle_due(result.doc, SID, DEADLINE + timedelta(days=1))
    assert settled is not None and settled.event is None


def test_contest_refusals() -> None:
    refused(409, domain.contest, claimed(), SID, "ann", None, DONE)  # the accuser
    refused(409, domain.contest, claimed(), SID, "bob", None, DEADLINE)  # late
    refused(409, domain.contest, completed(), SID, "bob", None, DONE)  # no claim
    refused(403, domain.contest, claimed(), SID, "cat", None, DONE)
    refused(404, domain.contest, None, SID, "bob", None, DONE)
    upheld = domain.settle_due(claimed(), SID, DEADLINE)
    assert upheld is not None
    refused(409, domain.contest, upheld.doc, SID, "bob", None, DONE)


# the sweep


def test_the_sweep_confirms_an_undisputed_completion_at_the_deadline_not_before() -> None:
    early = domain.settle_due(completed(), SID, DEADLINE - timedelta(microseconds=1))
    assert early is not None and early.event is None
    result = domain.settle_due(completed(), SID, DEADLINE)
    assert result is not None and result.event == SessionConfirmed(session_id=SID)
    assert result.doc["confirmation"]["state"] == "confirmed"
    assert result.doc["confirmation"]["by"] == ["bob"]  # ann said nothing
    assert domain.settle_due(None, SID, DEADLINE) is None


def test_the_sweep_upholds_an_uncontested_claim_at_the_deadline() -> None:
    early = domain.settle_due(claimed(), SID, DEADLINE - timedelta(seconds=1))
    assert early is not None and early.event is None
    result = domain.settle_due(claimed(), SID, DEADLINE + timedelta(hours=5))
    assert result is not None
    assert result.event == NoShowUpheld(session_id=SID, no_show="bob", claimed_by="ann")
    assert result.doc["no_show_claim"]["state"] == "upheld"


# the rules before confirmations: events and stored documents


def test_a_completion_logged_before_confirmations_counts_at_once() -> None:
    at = DONE
    event = SessionCompleted(session_id=SID, completed_by="bob", duration_s=60)
    assert event.counts_at_once
    doc = applied(started(), event, at)
    assert doc is not None and doc["confirmation"]["state"] == "confirmed"
    assert doc["confirmation"]["deadline"] is None and doc["confirmation"]["settled_at"] == at.isoformat()
    assert deadlines.entry_of(doc) is None
    refused(409, domain.dispute, doc, SID, "ann", "other", at)
    assert domain.confirm(doc, SID, "ann", at).event is None


def test_a_no_show_logged_before_claims_could_be_contested_stands_at_once() -> None:
    event = SessionAbandoned(session_id=SID, abandoned_by="ann", reason="partner-absent", no_show="bob")
    assert event.standing_no_show == "bob"
    assert SessionAbandoned(session_id=SID, abandoned_by="ann", reason="other").standing_no_show is None
    pending = SessionAbandoned(
        session_id=SID, abandoned_by="ann", reason="other", no_show="bob", contest_by=DONE
    )
    assert pending.standing_no_show is None
    doc = applied(started(), event, DONE)
    assert doc is not None and doc["no_show_claim"]["state"] == "upheld"
    refused(409, domain.contest, doc, SID, "bob", None, DONE)


def test_a_document_stored_before_confirmations_reads_as_its_events_fold_now() -> None:
    old_completed = {k: v for k, v in started().items() if k not in ("confirmation", "no_show_claim")}
    old_completed.update(status="completed", completed_by="bob", completed_at=DONE.isoformat(), duration_s=60)
    new = upgraded(old_completed)
    assert new["confirmation"]["state"] == "confirmed" and new["confirmation"]["by"] == ["bob"]
    assert new["no_show_claim"] is None
    again = applied(started(), SessionCompleted(session_id=SID, completed_by="bob", duration_s=60), DONE)
    assert again is not None and new == {**again, "duration_s": 60}
    # an old document's command works on the upgraded form
    rated = domain.rate(old_completed, SID, "ann", "bob", SCORES, None, DONE)
    assert rated.doc["confirmation"]["state"] == "confirmed"


# the deadlines index


def test_the_index_holds_an_entry_exactly_while_a_window_is_open() -> None:
    pending = completed()
    key, entry = deadlines.entry_of(pending) or ("", {})
    assert key == f"{deadlines.due_stamp(DEADLINE)}/{SID}"
    assert entry == {"session_id": SID, "kind": "confirm", "due": deadlines.due_stamp(DEADLINE)}
    assert deadlines.changes(started(), pending) == {(DEADLINES, key): entry}
    counted = domain.confirm(pending, SID, "ann", DONE, W).doc
    assert deadlines.changes(pending, counted) == {(DEADLINES, key): None}
    assert deadlines.changes(pending, pending) == {}
    claim_key, claim = deadlines.entry_of(claimed()) or ("", {})
    assert claim["kind"] == "contest" and claim_key == key  # same deadline, same session
    assert not deadlines.is_due(key, DEADLINE - timedelta(microseconds=1))
    assert deadlines.is_due(key, DEADLINE)


def test_index_keys_sort_by_deadline_whatever_the_time_zone() -> None:
    east = timezone(timedelta(hours=5))
    early = deadlines.due_stamp(datetime(2026, 1, 1, 12, 0, tzinfo=east))  # 07:00 UTC
    late = deadlines.due_stamp(datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    assert early < late
