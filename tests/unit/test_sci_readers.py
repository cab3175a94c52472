"""sci's own output folded by its readers: whatever order sci folded the facts in, and whatever
order (and duplication) its SciUpdated events reach passport and matching, both end on the
score of the whole evidence set.

sci stamps an update with the latest event time it has folded (a max), so evidence that
happened earlier but arrives later gives a second update with the same as_of and another
score. Readers must order updates by (revision, calibration, as_of, event id), not (as_of,
event id); here no calibration exists, so every update carries calibration 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.projection import fold_level
from services.passport.projection import PASSPORTS, PassportProjection, figures
from services.sci.domain import EvidenceItem, facts_of, score
from services.sci.projection import SciProjection
from shared.catalog import get_catalog
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
)
from shared.projection.fold import fold_events

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ML = "machine-learning"
ANN = "ann"
SESSIONS = [f"s{i}" for i in range(6)]
RATERS = ["bob", "cy", "dee", "eve"]
SCI = SciProjection([s.id for s in get_catalog().skills])


@st.composite
def evidence_sets(draw: st.DrawFn) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """(setup, facts): SessionScheduled for every session first, then evidence and no-shows.

    Event times come from a few hours so several facts share or reorder times, which is
    what makes sci emit two updates with one as_of.
    """
    hours = st.integers(0, 4)
    count = draw(st.integers(1, 6))
    facts: list[CloudEvent] = []
    for n in range(count):
        at = T0 + timedelta(hours=draw(hours))
        value = draw(st.integers(1, 5))
        payload = EvidenceRecorded(
            evidence_id=f"ev-{n}",
            learner_id=ANN,
            skill=ML,
            specialty=draw(st.sampled_from(["nlp", "tabular", None])),
            session_id=draw(st.sampled_from(SESSIONS)),
            rater_id=draw(st.sampled_from(RATERS)),
            scores={"model-selection": value, "deployment": draw(st.integers(1, 5))},
            format="build",
            occurred_at=at - timedelta(minutes=draw(st.integers(0, 90))),
        )
        facts.append(new_event(payload, source="evidence", time=at))
    for session in draw(st.lists(st.sampled_from(SESSIONS), unique=True, max_size=3)):
        abandoned = SessionAbandoned(
            session_id=session, abandoned_by="x", reason="partner-absent", no_show=ANN
        )
        facts.append(new_event(abandoned, source="sessions", time=T0 + timedelta(hours=draw(hours))))
    setup = [
        new_event(
            SessionScheduled(session_id=s, match_id=s, skill=ML, participants=(ANN, "bob")),
            source="sessions",
            time=T0,
        )
        for s in SESSIONS
    ]
    return setup, facts


def expected_score(facts: list[CloudEvent]) -> dict[str, Any]:
    """The score of the whole set at the latest fact's time (tier earned then), from the domain."""
    items = [EvidenceItem.from_event(e.data) for e in facts if isinstance(e.data, EvidenceRecorded)]
    no_shows = [e.data.session_id for e in facts if isinstance(e.data, SessionAbandoned)]
    latest = max(e.time for e in facts)
    result = score(facts_of(items, no_shows), latest, earned_at=latest)
    return {**result.parts(), "sci": result.sci, "tier": result.tier}


@settings(max_examples=200, deadline=None)
@given(evidence=evidence_sets(), data=st.data())
def test_readers_end_on_the_score_of_the_whole_evidence_set(
    evidence: tuple[list[CloudEvent], list[CloudEvent]], data: st.DataObject
) -> None:
    setup, facts = evidence
    # sci folds the same facts in several orders (partitions interleaving, a rebuild replaying)
    updates: list[SciUpdated] = []
    for _ in range(data.draw(st.integers(1, 4), label="sci orders")):
        order = data.draw(st.permutations(facts), label="sci order")
        _, emitted = fold_events(SCI, [*setup, *order])
        updates.extend(p for p in emitted if isinstance(p, SciUpdated))
    assert updates, "the first evidence item always moves the score"
    assert max(u.revision for u in updates) <= len(facts)
    assert all(u.calibration == 0 for u in updates)

    # every update is one event on lemma.sci.v1; the readers get them in any order, some twice
    events = [new_event(u, source="sci", time=u.as_of) for u in updates]
    copies = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="redelivered")
    delivered = data.draw(st.permutations(events + copies), label="delivery order")

    want = expected_score(facts)
    docs, _ = fold_events(PassportProjection(), delivered)
    entry = docs[(PASSPORTS, ANN)]["skills"][ML]
    tier, parts = figures(entry)
    assert {**parts, "tier": tier} == {k: want[k] for k in (*parts, "tier")}

    level: dict[str, Any] | None = None
    for event in delivered:
        level = fold_level(level, event) or level
    assert level is not None and level["sci"] == want["sci"]
    assert level["level"] == round(1 + 3 * want["sci"] / 100, 4)
