"""Which score changes the passport times as rating-to-passport latency
(``lemma_rating_to_passport_seconds``): the SciUpdated derived from a rating counted at once, timed
from the rating; not a rescore, a hand-over, a no-show nor a rating that waited for confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from services.passport.latency import from_rating, rating_latency
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import EvidenceRecorded, SciUpdated, SessionConfirmed

RATED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def cause(at: datetime) -> CloudEvent:
    payload = EvidenceRecorded(
        evidence_id="e1",
        learner_id="ann",
        skill="machine-learning",
        session_id="s1",
        rater_id="bob",
        scores={"deployment": 4},
        occurred_at=RATED,
    )
    return new_event(payload, source="evidence", time=at, correlationid="rating-chain")


def update(
    *, at: datetime = RATED, last: datetime | None = RATED, caused_by: CloudEvent | None = None
) -> CloudEvent:
    payload = SciUpdated(
        learner_id="ann",
        skill="machine-learning",
        sci=40,
        practice=5,
        proof=20,
        reliability=10,
        freshness=5,
        tier=2,
        as_of=at,
        last_evidence_at=last,
    )
    return new_event(payload, source="sci", time=at, cause=caused_by)


def test_the_update_a_rating_counted_at_once_caused_is_timed() -> None:
    assert from_rating(update(caused_by=cause(RATED)))


def test_updates_that_no_rating_just_caused_are_not() -> None:
    later = RATED + timedelta(hours=5)
    assert not from_rating(update(at=later, caused_by=None))  # a calibration's rescore, a hand-over
    assert not from_rating(update(at=later, caused_by=cause(later)))  # a no-show, or a confirmation
    assert not from_rating(update(last=None, caused_by=cause(RATED)))
    confirmed = new_event(
        SessionConfirmed(session_id="s1", confirmed_by="bob"), source="sessions", time=RATED
    )
    assert not from_rating(confirmed)


def count(service: str) -> float:
    return REGISTRY.get_sample_value("lemma_rating_to_passport_seconds_count", {"service": service}) or 0.0


def total(service: str) -> float:
    return REGISTRY.get_sample_value("lemma_rating_to_passport_seconds_sum", {"service": service}) or 0.0


def test_the_latency_is_from_the_rating_to_the_fold() -> None:
    observe = rating_latency("passport-test", clock=lambda: RATED + timedelta(seconds=1.5))
    observe([update(caused_by=cause(RATED)), update(at=RATED + timedelta(hours=1), caused_by=None)])
    assert count("passport-test") == 1 and total("passport-test") == 1.5
    early = rating_latency("passport-test-skew", clock=lambda: RATED - timedelta(seconds=2))
    early([update(caused_by=cause(RATED))])  # the rating's host clock ran ahead: never negative
    assert total("passport-test-skew") == 0.0 and count("passport-test-skew") == 1
