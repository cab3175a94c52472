"""The rating-to-passport latency: observed as the passport projection writes a score change
that a rating caused (``lemma_rating_to_passport_seconds``).

No event names the rating it came from, but its time travels the chain: every derived event is
dated as its cause (``docs/events.md``), so the SciUpdated sci derives from the EvidenceRecorded
evidence derived from a RatingSubmitted carries the rating's time, and so does its
``last_evidence_at`` (the newest evidence is that rating). The two agreeing tells such an update
from the others: a calibration's rescore or a version's hand-over is dated when it ran (and
causes nothing: no ``causationid``), a no-show's update is dated as the no-show, and a rating
that waited for the partner's confirmation is dated as the confirmation (its wait is the
partner's, up to the confirmation window, not the system's: not observed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from shared.events.envelope import CloudEvent
from shared.events.payloads import SciUpdated
from shared.freshness import utc
from shared.metrics import RATING_TO_PASSPORT


def from_rating(event: CloudEvent) -> bool:
    """Whether ``event`` is the SciUpdated a rating counted at once caused."""
    data = event.data
    return (
        isinstance(data, SciUpdated)
        and event.causationid is not None
        and data.last_evidence_at is not None
        and utc(data.last_evidence_at) == utc(event.time)
    )


def rating_latency(
    service: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[Sequence[CloudEvent]], None]:
    """What the passport runtime's ``observe`` runs on each batch folded live."""
    histogram = RATING_TO_PASSPORT.labels(service)

    def observe(events: Sequence[CloudEvent]) -> None:
        now = None
        for event in events:
            if from_rating(event):
                now = now or clock()
                histogram.observe(max((now - utc(event.time)).total_seconds(), 0.0))  # clocks may differ

    return observe
