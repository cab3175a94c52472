"""A skill's rater calibrations read back from the log (pure): RatersCalibrated parts to the
``Correction`` the service scored with while each was in force.

The calibration job stores ``calibrations/{skill}`` and logs it as RatersCalibrated parts in one
write, so the calibration in force at a time is the one with the most ratings whose parts were
all logged by then (a stored calibration is only ever replaced by one over more ratings). A part
carries each rater's bias and weight, the default weight, the prior and a share of the seniors;
parts logged before they carried more than the biases give a calibration that is not ``whole``:
the biases are exact, the rest has to be recomputed (``services.sci.audit``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.sci.domain import DEFAULT_PRIOR, Correction, Prior
from services.sci.domain.correction import pair_of
from shared.events.payloads import RatersCalibrated


@dataclass(frozen=True)
class LoggedCalibration:
    """One calibration of ``skill`` as the log holds it."""

    skill: str
    correction: Correction = field(repr=False)
    #: when its last part was logged (the Kafka record time): from then on it was in force
    logged_at: datetime
    #: whether the parts carried weights, prior and seniors too (else only the biases are exact)
    whole: bool


def assemble(parts: Iterable[tuple[RatersCalibrated, datetime]]) -> LoggedCalibration | None:
    """The calibration the parts of one (skill, digest) make, or None while a part is missing."""
    by_part: dict[int, tuple[RatersCalibrated, datetime]] = {}
    for part, at in parts:
        held = by_part.get(part.part)
        by_part[part.part] = (part, at) if held is None else min(held, (part, at), key=lambda p: p[1])
    if not by_part:
        return None
    first = by_part[min(by_part)][0]
    if set(by_part) != set(range(first.parts)):
        return None
    ordered = [by_part[n][0] for n in range(first.parts)]
    whole = all(
        p.weight is not None and p.default_weight is not None and p.prior is not None for p in ordered
    )
    bias: dict[str, float] = {}
    weight: dict[str, float] = {}
    senior: set[str] = set()
    collusive: set[tuple[str, str]] = set()
    severity: dict[str, dict[str, float]] = {}
    for p in ordered:
        bias.update(p.bias)
        weight.update(p.weight or {})
        senior.update(p.senior)
        collusive.update(pair_of(a, b) for a, b in p.collusive)
        severity.update(p.severity)
    prior, default_weight = DEFAULT_PRIOR, 1.0
    if whole:
        assert first.prior is not None and first.default_weight is not None
        prior, default_weight = Prior(mean=first.prior[0], weight=first.prior[1]), first.default_weight
    correction = Correction(
        bias=dict(sorted(bias.items())),
        weight=dict(sorted(weight.items())),
        default_weight=default_weight,
        prior=prior,
        ratings=first.ratings,
        version=first.version,
        digest=first.digest,
        senior=frozenset(senior),
        collusive=frozenset(collusive),
        severity=dict(sorted(severity.items())),
        rubric_prior=first.rubric_prior,
    )
    return LoggedCalibration(
        skill=first.skill,
        correction=correction,
        logged_at=max(at for _, at in by_part.values()),
        whole=whole,
    )


@dataclass
class CalibrationLog:
    """RatersCalibrated parts as read from the log, per skill and digest."""

    _parts: dict[tuple[str, str], list[tuple[RatersCalibrated, datetime]]] = field(default_factory=dict)

    def add(self, part: RatersCalibrated, logged_at: datetime) -> None:
        self._parts.setdefault((part.skill, part.digest), []).append((part, logged_at))

    def calibrations(self, skill: str) -> list[LoggedCalibration]:
        """Every complete calibration of ``skill``, in the order they came into force."""
        found = [
            calibration
            for (of, _), parts in self._parts.items()
            if of == skill and (calibration := assemble(parts)) is not None
        ]
        return sorted(found, key=lambda c: (c.logged_at, c.correction.ratings, c.correction.digest))

    def in_force(self, skill: str, at: datetime | None = None) -> LoggedCalibration | None:
        """The calibration of ``skill`` in force at ``at`` (default: after everything read): of
        those complete by then, the one over the most ratings (None: the skill was uncalibrated)."""
        complete = [c for c in self.calibrations(skill) if at is None or c.logged_at <= at]
        return max(complete, key=lambda c: (c.correction.ratings, c.logged_at), default=None)
