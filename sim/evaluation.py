"""Evaluating SCI models on a simulated population whose true skill is known.

Each model scores every learner of a folded population (``Scored``); ``figures`` compares the
scores with the truth. Used by ``lemma simulate``, ``bench/sci_quality.py`` and ``bench/sci_trust.py``.

- ``plain``: the baseline, Proof = 40 x the plain mean of the ratings (no prior, no calibration);
- ``shrunk``: the domain model uncalibrated (ratings as given, prior of 3 pseudo-ratings): what a
  skill shows before its first calibration;
- ``calibrated``: ours, the domain model with the rater calibration of
  ``services.sci.calibration`` estimated from all ratings in the skill;
- ``bound``: Proof = 40 (m - 1) / 4 with m the posterior median of true quality given every rating
  received, under the simulator's own model and true parameters (``sim.bound``): no model can
  expect a smaller Proof error from the same ratings. Not a model the service could run.

``shrunk`` and ``calibrated`` are the service's score as it computes it, tier included (earned at
the newest evidence, at the low end of the band, with the senior raters found as the
calibration job finds them). ``plain`` and ``bound`` put their Proof in the same score and earn
the tier on it as it is (they have no band); their senior raters are the learners they place at
tier 3 or 4 themselves.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from services.sci import domain
from services.sci.calibration import Calibration, Rating, calibrate
from services.sci.rubric_calibration import residuals_of
from sim.inprocess import Folded
from sim.metrics import mae, spearman
from sim.population import Population


@dataclass(frozen=True)
class Scored:
    proof: float  # 0..40
    sci: float
    tier: int
    true_tier: int


Model = Callable[[Population, Folded], dict[str, Scored]]
#: A Proof (0..40) in place of the service's, from the learner's id and score inputs.
ProofRule = Callable[[str, domain.Stats], float]


def facts(folded: Folded) -> dict[str, domain.Facts]:
    """Each learner's facts (their evidence and no-shows), as the fold keeps them."""
    return {i: domain.facts_of(items, folded.no_shows[i]) for i, items in folded.items.items()}


def scored(
    facts_by_learner: Mapping[str, domain.Facts],
    population: Population,
    correction: domain.Correction,
    proof_of: ProofRule | None = None,
) -> dict[str, Scored]:
    """Every learner scored at the end of the period under ``correction``: the service's score
    (``proof_of`` None), or the same with Proof from ``proof_of`` and the tier earned on it."""
    out: dict[str, Scored] = {}
    for learner_id, f in facts_by_learner.items():
        s = domain.summarize(f, correction, learner_id)
        base = domain.score_from_stats(s, population.end, earned_at=s.last_evidence_at)
        # the tier is earned at the newest evidence, with the Freshness it had then (15)
        earned = base.practice + base.reliability + (domain.FRESHNESS_MAX if s.last_evidence_at else 0.0)
        true_proof = round(domain.PROOF_MAX * population.learners[learner_id].true_unit, 2)
        true_tier = domain.tier_for(round(earned + true_proof, 2), true_proof, s)
        if proof_of is None:
            out[learner_id] = Scored(base.proof, base.sci, base.tier, true_tier)
            continue
        proof = round(proof_of(learner_id, s), 2) if s.ratings else 0.0
        sci = round(base.practice + base.reliability + base.freshness + proof, 2)
        tier = domain.tier_for(round(earned + proof, 2), proof, s)
        out[learner_id] = Scored(proof, sci, tier, true_tier)
    return out


def with_seniors(
    population: Population, folded: Folded, correction: domain.Correction, proof_of: ProofRule | None = None
) -> dict[str, Scored]:
    """Score twice, as the service does: first to find the senior raters Peer-endorsed asks for
    (Practitioner asks for none, so one pass finds them), then with them. For the service's
    score they are found as the calibration job finds them (``domain.seniors``)."""
    every = facts(folded)
    if proof_of is None:
        rated = ((i, f, f.last_evidence_at) for i, f in every.items() if f.last_evidence_at is not None)
        senior = domain.seniors(rated, correction)
    else:
        first = scored(every, population, correction, proof_of)
        senior = frozenset(i for i, s in first.items() if s.tier >= domain.TIER_PRACTITIONER)
    return scored(every, population, replace(correction, senior=senior), proof_of)


def plain_proof(_learner: str, stats: domain.Stats) -> float:
    """40 x the plain mean of the ratings (under ``UNCALIBRATED`` every weight is 1)."""
    return domain.PROOF_MAX * stats.weighted_sum / stats.weight if stats.weight else 0.0


def plain_mean(population: Population, folded: Folded) -> dict[str, Scored]:
    return with_seniors(population, folded, domain.UNCALIBRATED, plain_proof)


def shrunk(population: Population, folded: Folded) -> dict[str, Scored]:
    return with_seniors(population, folded, domain.UNCALIBRATED)


def ratings(folded: Folded) -> list[Rating]:
    """Every rating in the skill, as the calibration sees it."""
    return [
        Rating(
            ratee_id=learner_id,
            rater_id=item.rater_id,
            rating_id=item.evidence_id,
            value=item.mean,
            residuals=residuals_of(item.scores) if item.scores else (),
        )
        for learner_id, items in folded.items.items()
        for item in items
    ]


def calibration(folded: Folded) -> Calibration:
    return calibrate(ratings(folded))


def calibrated_with(population: Population, folded: Folded, found: Calibration) -> dict[str, Scored]:
    """Ours, with the skill's calibration already computed."""
    return with_seniors(population, folded, found.correction())


def calibrated(population: Population, folded: Folded) -> dict[str, Scored]:
    return calibrated_with(population, folded, calibration(folded))


def bound(population: Population, folded: Folded) -> dict[str, Scored]:
    """Proof from the posterior median of true quality (``sim.bound``); the other parts as plain."""
    from sim.bound import bound_proof  # numpy: a dev dependency, loaded when the bound is asked for

    proofs = bound_proof(population)
    return with_seniors(population, folded, domain.UNCALIBRATED, lambda learner, _stats: proofs[learner])


def models() -> dict[str, Model]:
    """Every model; the bound only where numpy is installed (a dev dependency: an install without
    the dev group still runs ``lemma simulate``, without the bound)."""
    found: dict[str, Model] = {"plain": plain_mean, "shrunk": shrunk, "calibrated": calibrated}
    if importlib.util.find_spec("numpy") is not None:
        found["bound"] = bound
    return found


def figures(population: Population, scored: Mapping[str, Scored]) -> dict[str, float]:
    """How a model's scores of the rated learners (tier 2 or more) compare with the truth.

    ``false_peer_endorsed`` (the share of those shown Peer-endorsed whose true tier is 2 or lower)
    is left out when nobody is shown Peer-endorsed: there is nothing to measure then.
    """
    rated = [i for i in sorted(scored) if scored[i].tier > domain.TIER_CLAIMED]
    if not rated:
        return {}
    truth = [population.learners[i].quality for i in rated]
    shown_top = [i for i in rated if scored[i].tier == domain.TIER_PEER_ENDORSED]
    false_top = [i for i in shown_top if scored[i].true_tier <= domain.TIER_PRACTICING]
    out = {
        "spearman_sci": spearman([scored[i].sci for i in rated], truth),
        "spearman_proof": spearman([scored[i].proof for i in rated], truth),
        "proof_mae": mae([scored[i].proof / domain.PROOF_MAX for i in rated], [(q - 1) / 4 for q in truth]),
        "tier_accuracy": sum(scored[i].tier == scored[i].true_tier for i in rated) / len(rated),
        "shown_peer_endorsed": len(shown_top) / len(rated),
    }
    if shown_top:
        out["false_peer_endorsed"] = len(false_top) / len(shown_top)
    return out
