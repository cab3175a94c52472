"""Figures of how far the SCI can be trusted, on a simulated population with known truth:
the band's coverage and width, and what the collusion defence catches and saves.

- ``band_figures``: the share of rated learners whose true-skill SCI (Proof = 40 (q - 1) / 4,
  the other parts as observed) lies within the shown 90% band, and the band's mean half-width.
  Since only Proof differs between the two, that is |40 (q - 1) / 4 - Proof| <= band.
- ``collusion_figures``: the share of colluders the calibration suspects, the share of honest
  learners it wrongly suspects, and the colluders' mean Proof inflation over their true skill
  with the defence and without it (the same calibration with detection off).
"""

from __future__ import annotations

import math

from services.sci import domain
from services.sci.calibration import Calibration, calibrate
from sim.evaluation import ratings
from sim.inprocess import Folded, stats
from sim.population import Population


def band_figures(population: Population, folded: Folded, correction: domain.Correction) -> dict[str, float]:
    covered = widths = rated = 0.0
    for learner_id, s in stats(folded, correction).items():
        if not s.ratings:
            continue
        result = domain.score_from_stats(s, population.end)
        truth = domain.PROOF_MAX * population.learners[learner_id].true_unit
        rated += 1
        covered += abs(truth - result.proof) <= result.band
        widths += result.band
    return {
        "band_coverage": covered / rated if rated else 0.0,
        "band_half_width": widths / rated if rated else 0.0,
    }


def inflation(population: Population, folded: Folded, correction: domain.Correction, who: set[str]) -> float:
    """Mean Proof of ``who`` (those with ratings) over their true skill, in Proof points."""
    gaps = [
        domain.proof_points(s) - domain.PROOF_MAX * population.learners[i].true_unit
        for i, s in stats(folded, correction).items()
        if i in who and s.ratings
    ]
    return math.fsum(gaps) / len(gaps) if gaps else 0.0


def collusion_figures(
    population: Population, folded: Folded, defended: Calibration | None = None
) -> dict[str, float]:
    """``defended``: the skill's calibration if already computed (with detection on)."""
    every = ratings(folded)
    defended = defended or calibrate(every)
    undefended = calibrate(every, detect_collusion=False)
    colluders = {i for i, learner in population.learners.items() if learner.partner}
    honest = set(population.learners) - colluders
    suspected = defended.collusion.learners
    return {
        "colluders_caught": len(suspected & colluders) / len(colluders) if colluders else 0.0,
        "honest_flagged": len(suspected & honest) / len(honest) if honest else 0.0,
        "inflation_defended": inflation(population, folded, defended.correction(), colluders),
        "inflation_undefended": inflation(population, folded, undefended.correction(), colluders),
    }
