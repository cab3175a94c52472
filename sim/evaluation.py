"""Evaluating SCI models on a simulated population whose true skill is known.

Each model scores every learner of a folded population (``Scored``); ``figures`` compares the
scores with the truth. Used by ``lemma simulate`` and by ``bench/sci_quality.py``.

- ``plain``: the baseline, Proof = 40 x the plain mean of the ratings (no prior, no calibration);
- ``shrunk``: the current domain model, uncalibrated (ratings as given, prior of 3 pseudo-ratings);
- ``oracle``: what a perfect rater correction could reach, a bound, not a model;
- ``calibrated``: the domain model with the rater calibration of ``services.sci.calibration``
  estimated from all ratings in the skill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from services.sci import domain
from services.sci.calibration import Calibration, Rating, calibrate
from sim.inprocess import Folded, stats
from sim.metrics import mae, spearman
from sim.population import Population


@dataclass(frozen=True)
class Scored:
    proof: float  # 0..40
    sci: float
    tier: int
    true_tier: int


Model = Callable[[Population, Folded], dict[str, Scored]]


def scored(
    stats_by_learner: dict[str, domain.Stats], population: Population, plain: bool
) -> dict[str, Scored]:
    out: dict[str, Scored] = {}
    for learner_id, s in stats_by_learner.items():
        base = domain.score_from_stats(s, population.end)
        proof = round(domain.PROOF_MAX * s.weighted_sum / s.weight, 2) if plain and s.weight else base.proof
        others = base.practice + base.reliability + base.freshness
        sci = round(others + proof, 2)
        # as the service does: the tier is earned at the newest evidence (full Freshness then)
        earned = base.practice + base.reliability + (domain.FRESHNESS_MAX if s.last_evidence_at else 0.0)
        true_proof = round(domain.PROOF_MAX * population.learners[learner_id].true_unit, 2)
        band = 0.0 if plain else base.band  # the service earns a tier at its band's low end
        out[learner_id] = Scored(
            proof=proof,
            sci=sci,
            tier=domain.tier_for(round(earned + proof - band, 2), round(proof - band, 2), s),
            true_tier=domain.tier_for(round(earned + true_proof, 2), true_proof, s),
        )
    return out


def with_seniors(
    population: Population, folded: Folded, correction: domain.Correction, plain: bool
) -> dict[str, Scored]:
    """Score twice, as the service does: the learners at tier 3 or 4 under the model are the
    senior raters Peer-endorsed asks for (Practitioner asks for none, so one pass finds them)."""
    first = scored(stats(folded, correction), population, plain)
    senior = frozenset(i for i, s in first.items() if s.tier >= domain.TIER_PRACTITIONER)
    return scored(stats(folded, replace(correction, senior=senior)), population, plain)


def plain_mean(population: Population, folded: Folded) -> dict[str, Scored]:
    return with_seniors(population, folded, domain.UNCALIBRATED, plain=True)


def shrunk(population: Population, folded: Folded) -> dict[str, Scored]:
    return with_seniors(population, folded, domain.UNCALIBRATED, plain=False)


def oracle(population: Population, folded: Folded) -> dict[str, Scored]:
    """The bound for any rater correction: each rater's true leniency removed, careless raters ignored.

    A plain mean of the corrected ratings (no prior). Collusion is not undone (a rating does not
    name its ratee here), nor are noise, rounding, clipping or specialty differences.
    """

    learners = population.learners
    correction = domain.Correction(
        bias={i: learner.leniency for i, learner in learners.items()},
        weight={i: 1e-9 if learner.careless else 1.0 for i, learner in learners.items()},
    )
    return with_seniors(population, folded, correction, plain=True)


def ratings(folded: Folded) -> list[Rating]:
    """Every rating in the skill, as the calibration sees it."""
    return [
        Rating(ratee_id=learner_id, rater_id=item.rater_id, rating_id=item.evidence_id, value=item.mean)
        for learner_id, items in folded.items.items()
        for item in items
    ]


def calibration(folded: Folded) -> Calibration:
    return calibrate(ratings(folded))


def calibrated(population: Population, folded: Folded) -> dict[str, Scored]:
    return with_seniors(population, folded, calibration(folded).correction(), plain=False)


def models() -> dict[str, Model]:
    return {"plain": plain_mean, "shrunk": shrunk, "oracle": oracle, "calibrated": calibrated}


def figures(population: Population, scored: dict[str, Scored]) -> dict[str, float]:
    rated = [i for i in sorted(scored) if scored[i].tier > domain.TIER_CLAIMED]
    truth = [population.learners[i].quality for i in rated]
    shown_top = [i for i in rated if scored[i].tier == domain.TIER_PEER_ENDORSED]
    false_top = [i for i in shown_top if scored[i].true_tier <= domain.TIER_PRACTICING]
    return {
        "spearman_sci": spearman([scored[i].sci for i in rated], truth),
        "spearman_proof": spearman([scored[i].proof for i in rated], truth),
        "proof_mae": mae([scored[i].proof / domain.PROOF_MAX for i in rated], [(q - 1) / 4 for q in truth]),
        "tier_accuracy": sum(scored[i].tier == scored[i].true_tier for i in rated) / len(rated),
        "shown_peer_endorsed": len(shown_top) / len(rated),
        "false_peer_endorsed": len(false_top) / len(shown_top) if shown_top else 0.0,
    }


def tier_steps(folded: Folded, population: Population, model: str) -> dict[str, float]:
    """Replay each learner's evidence session by session (time order): the largest tier move on one session.

    ``ours`` replays with the calibration of the whole period (a hindsight approximation: the
    service would recalibrate as the rating set grows); ``plain`` with the plain mean.
    """
    correction = calibration(folded).correction() if model == "calibrated" else domain.UNCALIBRATED
    first = scored(stats(folded, correction), population, plain=model == "plain")
    senior = frozenset(i for i, s in first.items() if s.tier >= domain.TIER_PRACTITIONER)
    correction = replace(correction, senior=senior)  # in hindsight: the seniors at the end
    worst, jumped, learners = 0, 0, 0
    for items in folded.items.values():
        ordered = sorted(items, key=lambda i: (i.occurred_at, i.evidence_id))
        sessions: list[str] = []
        for item in ordered:
            if item.session_id not in sessions:
                sessions.append(item.session_id)
        tier, biggest = domain.TIER_CLAIMED, 0
        for k in range(1, len(sessions) + 1):
            seen = set(sessions[:k])
            prefix = [i for i in ordered if i.session_id in seen]
            s = domain.summarize(domain.facts_of(prefix), correction)
            base = domain.score_from_stats(s, prefix[-1].occurred_at)
            proof = round(domain.PROOF_MAX * s.weighted_sum / s.weight, 2) if model == "plain" else base.proof
            sci = round(base.practice + base.reliability + base.freshness + proof, 2)
            now = domain.tier_for(sci, proof, s)
            biggest, tier = max(biggest, abs(now - tier)), now
        learners += 1
        worst = max(worst, biggest)
        jumped += biggest > 1
    return {"max_tier_step": float(worst), "tier_jump_share": jumped / learners if learners else 0.0}
