"""Score a simulated population with the rater calibration estimated over all its ratings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.sci.calibration import Calibration, Rating, calibrate, corrector
from services.sci.domain import EvidenceItem
from sim.inprocess import Folded, stats

if TYPE_CHECKING:
    from bench.sci_quality import Scored
    from sim.population import Population


def ratings(folded: Folded) -> list[Rating]:
    """Every rating in the skill, as the calibration sees it."""
    found: list[Rating] = []
    for learner_id, items in folded.items.items():
        found.extend(_rating(learner_id, item) for item in items)
    return found


def _rating(learner_id: str, item: EvidenceItem) -> Rating:
    return Rating(ratee_id=learner_id, rater_id=item.rater_id, rating_id=item.evidence_id, value=item.mean)


def calibration(folded: Folded) -> Calibration:
    return calibrate(ratings(folded))


def calibrated_model(population: Population, folded: Folded) -> dict[str, Scored]:
    from bench.sci_quality import _scored

    found = calibration(folded)
    return _scored(stats(folded, corrector(found), found.prior()), population, plain=False)
