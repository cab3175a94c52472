"""The band around the SCI: there exactly when ratings are, narrower with more and weightier
evidence, wider where raters differ more, and tiers earned at its low end."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sci import domain as d
from services.sci.domain import Correction, EvidenceItem, Prior, explain, facts_of, score, summarize
from tests.unit.test_sci_domain import T0, item, items_strategy

CALIBRATED = Correction(default_weight=15.0, prior=Prior(0.5, 1.5), ratings=5_000)
LENIENCIES = {f"x{i}": (-0.6 if i % 2 else 0.6) for i in range(50)}  # raters who differ a lot


def band(items: list[EvidenceItem], correction: Correction = d.UNCALIBRATED) -> float:
    return score(facts_of(items), T0, correction).band


def test_no_ratings_no_band_and_one_rating_a_wide_one() -> None:
    assert band([]) == 0.0
    one = score(facts_of([item(1, mean=4.0)]), T0)
    assert (
        one.band > 10 and one.low == round(one.sci - one.band, 2) and one.high == round(one.sci + one.band, 2)
    )
    assert "no band" in explain(facts_of([]), T0).band


def test_the_band_narrows_as_evidence_grows_and_is_narrower_once_calibrated() -> None:
    widths = [band([item(i, rater=f"r{i}") for i in range(n)]) for n in (1, 2, 4, 8, 16, 32)]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
    calibrated = [band([item(i, rater=f"r{i}") for i in range(n)], CALIBRATED) for n in (1, 4, 16)]
    assert calibrated == sorted(calibrated, reverse=True)
    assert calibrated[-1] < widths[4]  # 16 ratings from weighed raters say more than 16 unweighed ones


def test_raters_who_differ_in_leniency_widen_the_band() -> None:
    items = [item(i, rater=f"x{i}") for i in range(8)]
    weights = dict.fromkeys(LENIENCIES, 15.0)
    differing = Correction(bias=LENIENCIES, weight=weights, prior=Prior(0.5, 1.5), ratings=5_000)
    assert differing.bias_variance == 0.36
    same = Correction(weight=weights, prior=Prior(0.5, 1.5), ratings=5_000)
    assert band(items, differing) > band(items, same) > 0


def test_a_weightless_rater_adds_nothing_to_certainty() -> None:
    careless = Correction(default_weight=15.0, weight={"lazy": 0.02}, prior=Prior(0.5, 1.5), ratings=5_000)
    base = [item(i, rater=f"r{i}") for i in range(4)]
    with_lazy = [*base, item(9, rater="lazy")]
    honest = [*base, item(9, rater="r9")]
    assert band(honest, careless) < band(with_lazy, careless) <= band(base, careless)


def test_a_tier_is_earned_at_the_low_end_of_the_band() -> None:
    # five sessions from three raters rated 3.8: Practitioner on the score, not on its low end
    items = [item(i, mean=3.8, rater=f"r{i % 3}", at=T0 + timedelta(hours=i)) for i in range(5)]
    got = explain(facts_of(items), T0 + timedelta(hours=4))
    s = got.score
    stats = summarize(facts_of(items))
    assert d.tier_for(s.sci, s.proof, stats) == d.TIER_PRACTITIONER
    assert s.tier == d.TIER_PRACTICING
    assert got.next_tier is not None and "at the low end of your band" in got.next_tier
    assert f"SCI {s.sci:.0f} ± {s.band:.0f}" in got.band and "9 learners in 10" in got.band


@settings(max_examples=200)
@given(
    items_strategy(),
    st.floats(1.0, 10.0),
    st.floats(0.05, 30.0),
    st.integers(0, 10_000),
)
def test_one_more_rating_never_widens_the_band(
    items: list[EvidenceItem], prior_weight: float, weight: float, ratings: int
) -> None:
    correction = Correction(default_weight=weight, prior=Prior(0.5, prior_weight), ratings=ratings)
    extra = item(99, mean=3.0, rater="newcomer")
    before, after = band(items, correction), band([*items, extra], correction)
    assert 0.0 <= after <= before or not items
    assert after > 0
