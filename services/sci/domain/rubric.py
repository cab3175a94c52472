"""SCI depth per rubric dimension (pure): how good a learner is on each dimension of the rubric.

Proof rests on the mean of a rating's rubric scores; the rubric says more. A learner strong on
model selection and weak on deployment gets ratings whose scores lean the same way session
after session, while one rater's scores lean the way that rater leans (some raters are harsh
on deployment whoever they rate). Per rating, the model looks at each score's *residual*, the
score less the rating's own mean:

    residual(rating, d) = depth(ratee, d) + severity(rater, d) + noise

Both ``depth`` and ``severity`` average to zero over the dimensions, so they move no mean: Proof
is the same with or without them (under this model the rating's mean holds all a rating says
about overall quality). The calibration job estimates each rater's ``severity`` and how much
learners really differ between dimensions (the depth prior ``k``; ``services.sci.rubric_calibration``);
the fold keeps, per rater, the count and the residual sums of the ratings received
(``RubricTally``: integer micro-points, exact in any order), and a learner's depth on ``d`` is

    level(d) = 1 + 4 x Proof's shrunk mean  +  sum_r w_r (R_rd - n_r severity_rd) / (k + sum_r w_r n_r)

on the rubric's 1..5 scale: their overall level plus the deviations their raters saw, corrected
by each rater's severity, weighted like Proof (``w_r``, the raters' weights scaled to average 1),
and shrunk toward none by ``k`` pseudo-ratings, so a dimension stands out only once several
ratings agree that it does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.sci.domain.micro import MICRO, to_micro

#: Pseudo-ratings a learner's deviation on a dimension is shrunk by while no calibration has
#: measured how much learners differ between dimensions. Calibrations of the simulator's rubric
#: populations (deviations of sd 0.6) find 1.0 to 1.35 on the tuning seeds 1-3; a little more
#: here, so a skill not calibrated yet shows a little less depth than it might.
DEFAULT_RUBRIC_PRIOR = 1.5
#: Levels are kept to the tenth, as shown: a recalibration that moves them by less announces nothing.
LEVEL_DIGITS = 1


def residuals_micro(scores: Mapping[str, int]) -> dict[str, int]:
    """Each rubric score less the rating's mean, in integer micro-points (sorted by dimension).

    The mean is taken as the fold rounds it (``to_micro``), so the residuals of one rating add up
    to the rounding left in its mean, never more than a micro-point per dimension.
    """
    mean = to_micro(sum(scores.values()) / len(scores))
    return {d: scores[d] * MICRO - mean for d in sorted(scores)}


@dataclass(frozen=True)
class RubricTally:
    """The ratings received from one rater that carried rubric scores: how many, and per dimension
    the sum of their residuals (micro-points)."""

    ratings: int = 0
    residuals: Mapping[str, int] = field(default_factory=dict)

    def add(self, scores: Mapping[str, int]) -> RubricTally:
        sums = dict(self.residuals)
        for d, r in residuals_micro(scores).items():
            sums[d] = sums.get(d, 0) + r
        return RubricTally(self.ratings + 1, dict(sorted(sums.items())))

    def to_doc(self) -> list[Any]:
        return [self.ratings, dict(self.residuals)]

    @classmethod
    def from_doc(cls, doc: Iterable[Any]) -> RubricTally:
        ratings, residuals = doc
        return cls(int(ratings), {d: int(v) for d, v in sorted(residuals.items())})


@dataclass(frozen=True)
class DimensionDepth:
    """A learner's estimated level on one rubric dimension (1..5) and the ratings it rests on."""

    dimension: str
    level: float
    ratings: int


def depth(
    rubric: Mapping[str, RubricTally],
    weights: Mapping[str, float],
    severity: Mapping[str, Mapping[str, float]],
    overall_unit: float,
    prior: float = DEFAULT_RUBRIC_PRIOR,
) -> tuple[DimensionDepth, ...]:
    """Depth on each dimension any rating scored (sorted), from the learner's rubric tallies.

    ``weights``: each rater's weight, as Proof weighs them (a rater missing weighs 1);
    ``severity``: per rater and dimension, how far above their own mean they score it;
    ``overall_unit``: Proof's shrunk mean on 0..1; ``prior``: the pseudo-ratings a deviation is
    shrunk by. Raters are visited in sorted order, so the same facts give the same bits.
    """
    raters = sorted(r for r, t in rubric.items() if t.ratings)
    if not raters:
        return ()
    count = sum(rubric[r].ratings for r in raters)
    total_weight = sum(weights.get(r, 1.0) * rubric[r].ratings for r in raters)
    scale = count / total_weight if total_weight > 0 else 1.0
    overall = 1.0 + 4.0 * min(1.0, max(0.0, overall_unit))
    seen: dict[str, float] = {}
    weighed: dict[str, float] = {}
    ratings: dict[str, int] = {}
    for r in raters:  # per dimension, the raters' terms are added in rater order: the same bits
        tally = rubric[r]
        n = tally.ratings
        w = weights.get(r, 1.0) * scale
        lean = severity.get(r) or {}
        for d, residual in tally.residuals.items():
            seen[d] = seen.get(d, 0.0) + w * (residual / MICRO - n * lean.get(d, 0.0))
            weighed[d] = weighed.get(d, 0.0) + w * n
            ratings[d] = ratings.get(d, 0) + n
    return tuple(
        DimensionDepth(
            d, round(min(5.0, max(1.0, overall + seen[d] / (prior + weighed[d]))), LEVEL_DIGITS), ratings[d]
        )
        for d in sorted(seen)
    )
