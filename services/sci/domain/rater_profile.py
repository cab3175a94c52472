"""A rater's own profile in a skill, in plain words: how their ratings compare with their peers'.

Told their bias, raters rate better afterwards (Kulkarni et al. 2013, "Peer and self assessment
in massive online classes"): the profile shows a learner what the calibration learned of them as
a rater, and only to them and operators (never a public label).

- **bias**: how far their ratings run above (+) or below (-) what their peers give the same
  partners, in rubric points (the calibration's bias, 1..5 scale);
- **agreement**: how well their ratings tell stronger and weaker partners apart, as their peers'
  do (the calibration's informativeness: 1 as informative as expected, near 0 the same rating
  for everyone);
- **weight**: how much one of their ratings counts in a partner's Proof, relative to a typical
  rater of the skill (1: as much);
- **ratings**: how many of their ratings the calibration rests on.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.sci.domain.correction import Correction

#: Below this many ratings, the profile says its figures are still rough.
FEW_RATINGS = 5
#: A bias within this many points reads as "in line with your peers".
IN_LINE = 0.15


@dataclass(frozen=True)
class RaterProfile:
    skill: str
    ratings: int
    bias: float
    agreement: float
    weight: float  # relative to a typical rater of the skill
    summary: list[str]


def _bias_words(bias: float) -> str:
    if abs(bias) < IN_LINE:
        return "your ratings are in line with your peers' on this rubric"
    way = "above" if bias > 0 else "below"
    return f"your ratings run about {abs(bias):.1f} points {way} your peers' on this rubric"


def _agreement_words(agreement: float) -> str:
    if agreement >= 0.8:
        return "they tell stronger and weaker partners apart as well as your peers' do"
    if agreement >= 0.4:
        return "they tell stronger and weaker partners apart less clearly than your peers' do"
    return "they barely differ from partner to partner, so they say little about who did better"


def _weight_words(weight: float) -> str:
    if weight >= 0.9:
        return f"one of your ratings counts about {weight:.1f} times as much as a typical rater's"
    return f"one of your ratings counts about {weight:.2f} of a typical rater's"


def rater_profile(skill: str, rater_id: str, correction: Correction) -> RaterProfile | None:
    """The profile of ``rater_id`` under a skill's calibration; ``None`` if it saw no rating of theirs."""
    ratings = int(correction.given.get(rater_id, 0))
    if ratings == 0 or rater_id not in correction.bias:
        return None
    bias = round(float(correction.bias[rater_id]), 2)
    agreement = round(float(correction.informative.get(rater_id, 1.0)), 2)
    typical = correction.default_weight or 1.0
    weight = round(correction.weight_of(rater_id) / typical, 2)
    summary = [_bias_words(bias), _agreement_words(agreement), _weight_words(weight)]
    if ratings < FEW_RATINGS:
        summary.append(f"this rests on {ratings} of your ratings so far, so it is still rough")
    else:
        summary.append(f"this rests on {ratings} of your ratings")
    return RaterProfile(
        skill=skill, ratings=ratings, bias=bias, agreement=agreement, weight=weight, summary=summary
    )
