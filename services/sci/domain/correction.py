"""SCI rater correction: each rater's bias and weight, and the prior Proof shrinks toward."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

PROOF_PRIOR = 0.5  # Proof shrinks toward the middle of the scale (3/5) ...
PROOF_PRIOR_WEIGHT = 3.0  # ... worth this many pseudo-ratings
COLLUSIVE_WEIGHT = 0.05  # what a suspected pair's rating of each other weighs, as a share


def pair_of(a: str, b: str) -> tuple[str, str]:
    """The pair of two learners, in a fixed order."""
    return (a, b) if a <= b else (b, a)


def rating_to_unit(mean: float) -> float:
    """A mean rubric score on 1..5 as 0..1."""
    return min(1.0, max(0.0, (mean - 1.0) / 4.0))


@dataclass(frozen=True)
class Prior:
    """What Proof shrinks toward while evidence is thin: a mean on 0..1 worth ``weight`` pseudo-ratings."""

    mean: float
    weight: float


DEFAULT_PRIOR = Prior(mean=PROOF_PRIOR, weight=PROOF_PRIOR_WEIGHT)


@dataclass(frozen=True)
class Correction:
    """A rater calibration as the score uses it: per rater a bias (1..5 scale) and a weight.

    ``ratings`` is how many ratings it was computed over (0: no calibration yet); it only grows,
    so it orders calibrations, and ``digest`` names the exact rating set.
    """

    bias: Mapping[str, float] = field(default_factory=dict)
    weight: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0  # for a rater the calibration has not seen
    prior: Prior = DEFAULT_PRIOR
    ratings: int = 0
    version: str = "none"
    digest: str = ""
    senior: frozenset[str] = frozenset()  # learners at tier 3 or 4 in the skill when calibrated
    #: Per rater, for their own rater profile only (the score reads neither): how much their
    #: ratings tell partners apart (0..1) and how many ratings the calibration saw from them.
    informative: Mapping[str, float] = field(default_factory=dict, compare=False)
    given: Mapping[str, int] = field(default_factory=dict, compare=False)
    #: Pairs of learners (each sorted) suspected of rating each other up: each one's ratings of
    #: the other weigh ``COLLUSIVE_WEIGHT`` of their weight (``services.sci.collusion``).
    collusive: frozenset[tuple[str, str]] = frozenset()
    #: Per rater and rubric dimension, how far above their own mean they score that dimension,
    #: and the pseudo-ratings a learner's depth on a dimension is shrunk by (``domain.rubric``;
    #: None: not measured yet). They move no SCI, only the depth per dimension.
    severity: Mapping[str, Mapping[str, float]] = field(default_factory=dict, compare=False)
    rubric_prior: float | None = field(default=None, compare=False)

    def bias_of(self, rater_id: str) -> float:
        return self.bias.get(rater_id, 0.0)

    @cached_property
    def bias_variance(self) -> float:
        """How much the raters differ in leniency: the variance of the biases (0 without any).

        Worked out once per calibration (raters in id order, so the same biases give the same bits)
        and kept to the hundredth: it widens every learner's band alike, so a recalibration that
        barely moves the raters' spread does not re-announce every learner of the skill.
        """
        if not self.bias:
            return 0.0
        values = [float(self.bias[r]) for r in sorted(self.bias)]
        centre = math.fsum(values) / len(values)
        return round(math.fsum((v - centre) ** 2 for v in values) / len(values), 2)

    def weight_of(self, rater_id: str, ratee_id: str | None = None) -> float:
        """The weight of ``rater_id``'s ratings (of ``ratee_id``, if a suspected pair's)."""
        weight = self.weight.get(rater_id, self.default_weight)
        if ratee_id is not None and self.collusive and pair_of(rater_id, ratee_id) in self.collusive:
            return weight * COLLUSIVE_WEIGHT
        return weight

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "ratings": self.ratings,
            "prior": [self.prior.mean, self.prior.weight],
            "default_weight": self.default_weight,
            "bias": dict(self.bias),
            "weight": dict(self.weight),
            "senior": sorted(self.senior),
            "informative": dict(self.informative),
            "given": dict(self.given),
            "collusive": [list(pair) for pair in sorted(self.collusive)],
            "severity": {rater: dict(lean) for rater, lean in self.severity.items()},
            "rubric_prior": self.rubric_prior,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Correction:
        if doc is None:
            return UNCALIBRATED
        mean, weight = doc["prior"]
        return cls(
            bias=doc["bias"],
            weight=doc["weight"],
            default_weight=float(doc["default_weight"]),
            prior=Prior(mean=float(mean), weight=float(weight)),
            ratings=int(doc["ratings"]),
            version=str(doc["version"]),
            digest=str(doc["digest"]),
            senior=frozenset(doc.get("senior", ())),
            informative=doc.get("informative", {}),
            given=doc.get("given", {}),
            collusive=frozenset(pair_of(a, b) for a, b in doc.get("collusive", ())),
            severity=doc.get("severity", {}),
            rubric_prior=doc.get("rubric_prior"),
        )


UNCALIBRATED = Correction()
