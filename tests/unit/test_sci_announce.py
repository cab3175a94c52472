"""What a rebuilt sci version announces going live (on real in-memory SQLite stores): the scores
that differ from the retired version's, or every score when it was built with other rules."""

from __future__ import annotations

from datetime import UTC, datetime

from services.sci.announce import changed_scores
from services.sci.domain import Correction
from services.sci.projection import CALIBRATIONS, SciProjection
from shared.events import CloudEvent, new_event
from shared.events.payloads import EvidenceRecorded, SciUpdated
from shared.projection.fold import fold_events
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from shared.store.versioned import VersionStore

ML = "machine-learning"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def evidence(learner: str, rater: str, value: int, n: int) -> CloudEvent:
    payload = EvidenceRecorded(
        evidence_id=f"{learner}-{n}",
        learner_id=learner,
        skill=ML,
        specialty="nlp",
        session_id=f"{learner}-s{n}",
        rater_id=rater,
        scores={"model-selection": value},
        occurred_at=T0,
    )
    return new_event(payload, source="evidence", time=T0)


async def test_the_same_facts_announce_nothing_a_new_calibration_what_moved_other_rules_everything() -> None:
    events = [evidence("ann", "bob", 4, 1), evidence("cy", "dan", 3, 2), evidence("cy", "eve", 5, 3)]
    docs, _ = fold_events(SciProjection([ML]), events)
    store = SqliteStore(":memory:")
    old, new = VersionStore(store, 1), VersionStore(store, 2)
    # (a first calibration moves every band: the uncalibrated band knows no rater, so compare two)
    neutral = Correction(bias={"dan": 0.0}, ratings=2, version="v", digest="c")
    for version in (old, new):
        await version.write([Change(c, k, d) for (c, k), d in docs.items()])
        await version.write([Change(CALIBRATIONS, ML, neutral.to_doc())])
    assert await changed_scores(old, new) == []
    lenient_dan = Correction(bias={"dan": 1.0}, ratings=3, version="v", digest="d")
    await new.write([Change(CALIBRATIONS, ML, lenient_dan.to_doc())])
    moved = await changed_scores(old, new)
    assert [(getattr(p, "learner_id", None), type(p)) for p in moved] == [("cy", SciUpdated)]
    assert isinstance(moved[0], SciUpdated) and moved[0].calibration == 3 and moved[0].model >= 1
    every = await changed_scores(old, new, True)
    assert sorted(p.learner_id for p in every if isinstance(p, SciUpdated)) == ["ann", "cy"]
