"""Collusion: pairs and rings who rate each other far above how everyone else rates them are
found, their ratings of each other discounted in the calibration and in their Proof; honest
pairs, lenient raters and one-sided generosity are not."""

from __future__ import annotations

from services.sci.calibration import Rating, calibrate
from services.sci.collusion import excesses, rings, suspect
from services.sci.domain import Correction, facts_of, score
from services.sci.domain.facts import EvidenceItem
from tests.unit.test_sci_domain import T0

CROWD = [f"p{i:02d}" for i in range(24)]


def truth(learner: str) -> float:
    return 1.5 + (int(learner[1:]) % 7) * 0.45


def population(pacts: dict[tuple[str, str], float], lenient: frozenset[str] = frozenset()) -> list[Rating]:
    """Everyone rates the next four learners by their true skill (the lenient a point up); each
    pact (a, b): boost also has a and b rate each other three times with ``boost`` on top."""
    out: list[Rating] = []
    for i, rater in enumerate(CROWD):
        for k in range(1, 5):
            ratee = CROWD[(i + k) % len(CROWD)]
            value = truth(ratee) + (1.0 if rater in lenient else 0.0)
            out.append(Rating(ratee, rater, f"{rater}>{ratee}", min(5.0, value)))
    for (a, b), boost in pacts.items():
        for n in range(3):
            for rater, ratee in ((a, b), (b, a)):
                value = truth(ratee) + boost + (1.0 if rater in lenient else 0.0)
                out.append(Rating(ratee, rater, f"{rater}>{ratee}#{n}", min(5.0, value)))
    return out


def found(ratings: list[Rating]) -> tuple[tuple[str, str], ...]:
    first = calibrate(ratings, detect_collusion=False)
    return suspect(ratings, first.bias, first.weight, first.default_weight).pairs


def test_a_pact_is_found_and_a_ring_is_one_group() -> None:
    assert found(population({("p00", "p10"): 1.5})) == (("p00", "p10"),)
    ring = found(population({("p01", "p11"): 1.5, ("p11", "p21"): 1.5}))
    assert ring == (("p01", "p11"), ("p11", "p21")) and rings(ring) == [("p01", "p11", "p21")]


def test_honest_repeat_partners_lenient_raters_and_one_sided_generosity_are_not_suspected() -> None:
    assert found(population({("p02", "p12"): 0.0})) == ()  # met three times, rated honestly
    assert found(population({}, lenient=frozenset({"p03", "p13"}))) == ()  # lenient with everyone
    one_sided = population({}) + [Rating("p14", "p04", f"gift{n}", 5.0) for n in range(3)]
    assert found(one_sided) == ()
    assert found(population({("p05", "p15"): 0.4})) == ()  # a little warmer: within chance


def test_the_excess_is_beyond_the_raters_leniency_elsewhere() -> None:
    ratings = population({("p00", "p10"): 1.5}, lenient=frozenset({"p00"}))
    first = calibrate(ratings, detect_collusion=False)
    excess = excesses(ratings, first.bias, first.weight, first.default_weight)
    # p00 is a point lenient with everyone: toward p10 (2.85) the pact adds 1.5, 1.15 below the cap
    assert 0.8 < excess[("p00", "p10")] < 1.6 and 0.8 < excess[("p10", "p00")] < 1.6
    assert all(abs(e) < 0.6 for (a, b), e in excess.items() if {a, b} != {"p00", "p10"})


def test_the_calibration_leaves_the_pact_out_and_the_score_discounts_it() -> None:
    ratings = population({("p00", "p10"): 1.5})
    plain, defended = calibrate(ratings, detect_collusion=False), calibrate(ratings)
    assert defended.collusion.pairs == (("p00", "p10"),) and plain.collusion.pairs == ()
    assert defended.ratings == plain.ratings == len(ratings) and defended.digest == plain.digest
    assert defended.given["p00"] == plain.given["p00"] == 7
    correction = defended.correction()
    assert correction.collusive == frozenset({("p00", "p10")})
    assert Correction.from_doc(correction.to_doc()).collusive == correction.collusive
    items = [
        EvidenceItem(
            evidence_id=r.rating_id,
            session_id=r.rating_id,
            rater_id=r.rater_id,
            mean=r.value,
            specialty=None,
            occurred_at=T0,
        )
        for r in ratings
        if r.ratee_id == "p10"
    ]
    facts = facts_of(items)
    honest = 40 * (truth("p10") - 1) / 4
    kept = score(facts, T0, correction, learner_id="p10").proof
    inflated = score(facts, T0, plain.correction(), learner_id="p10").proof
    assert abs(kept - honest) < 0.5 * abs(inflated - honest) and inflated > honest + 2
    assert correction.weight_of("p00", "p10") == correction.weight_of("p00") * 0.05
