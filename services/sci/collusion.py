"""Collusion (pure): pairs or rings of learners who rate each other far above how everyone else
rates them.

For every rater and ratee with at least ``MIN_RATINGS`` ratings between them, the *excess* is
how far the rater's ratings of that ratee lie above the ratee's ratings from everyone else (each
less its rater's bias, weighed by the rater's weight), beyond the rater's own leniency toward
their other partners. A pair is suspected when the excesses of the two ways add up to ``MARGIN``
rubric points and each is at least ``EACH_WAY``: a lenient rater is corrected by the
calibration, one partner rated above what others see happens by chance, but two learners each
rated by the other far above what everyone else sees of them is the signature of a pact
(measured on the simulator: an honest pair's two excesses add up to a spread of about 0.6
points). Suspected pairs that share a learner form a ring.

What a suspicion does (``services.sci.calibration.calibrate``): the suspected pairs' ratings of
each other are left out of the calibration's estimates and weigh ``COLLUSIVE_WEIGHT`` (a
twentieth) of their weight in the pair's Proof, and operators see the pairs and rings (a metric
and an ops route, never a public label).
Everything is a function of the rating set, in sorted order, so it is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from services.sci.domain.correction import pair_of

MARGIN = 1.2  # rubric points above what everyone else gives, the two ways together ...
EACH_WAY = 0.2  # ... and at least this much each way
MIN_RATINGS = 2  # ratings each way before a pair can be suspected


class Rated(Protocol):
    @property
    def ratee_id(self) -> str: ...
    @property
    def rater_id(self) -> str: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True)
class Suspicion:
    """The suspected pairs (each sorted, the list sorted): each one's ratings of the other are discounted."""

    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def learners(self) -> frozenset[str]:
        return frozenset(learner for pair in self.pairs for learner in pair)

    @cached_property
    def _pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.pairs)

    def is_discounted(self, rater_id: str, ratee_id: str) -> bool:
        return pair_of(rater_id, ratee_id) in self._pairs


NONE = Suspicion()


def rings(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Connected groups of ``pairs`` (union-find), each sorted, the list sorted."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in sorted(pairs):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for learner in sorted(parent):
        groups.setdefault(root(learner), []).append(learner)
    return sorted(tuple(g) for g in groups.values())


def excesses(
    ratings: Iterable[Rated], bias: Mapping[str, float], weight: Mapping[str, float], default_weight: float
) -> dict[tuple[str, str], float]:
    """Per (rater, ratee) with ``MIN_RATINGS`` ratings or more: how far the rater's ratings of the
    ratee lie above what everyone else gives the ratee, beyond the rater's leniency toward their
    *other* partners, in rubric points.

    Everyone else's ratings count less their raters' bias, weighed by their weight. The rater's
    leniency is measured the same way on their other partners, not taken from the calibration,
    whose bias a pact inflates (a colluder rates their partner up in half their sessions).
    Ratees rated by nobody else are left out (there is nothing to compare with).
    """
    by_pair: dict[tuple[str, str], list[float]] = {}
    for r in sorted(ratings, key=lambda r: (r.ratee_id, r.rater_id, r.value)):
        by_pair.setdefault((r.rater_id, r.ratee_id), []).append(r.value)
    totals: dict[str, tuple[float, float]] = {}  # ratee -> (weighted corrected sum, weight), every rater
    for (rater, ratee), values in sorted(by_pair.items()):
        w, b = weight.get(rater, default_weight), bias.get(rater, 0.0)
        s, t = totals.get(ratee, (0.0, 0.0))
        totals[ratee] = (s + w * (math.fsum(values) - b * len(values)), t + w * len(values))
    above: dict[tuple[str, str], tuple[float, int]] = {}  # (rater, ratee) -> (mean above the rest, count)
    for (rater, ratee), values in sorted(by_pair.items()):
        w, b = weight.get(rater, default_weight), bias.get(rater, 0.0)
        s, t = totals[ratee]
        rest_sum, rest_weight = s - w * (math.fsum(values) - b * len(values)), t - w * len(values)
        if rest_weight > 1e-9 * t:
            above[(rater, ratee)] = (math.fsum(values) / len(values) - rest_sum / rest_weight, len(values))
    lenient: dict[str, tuple[float, int]] = {}  # rater -> (sum of count x above, count)
    for (rater, _), (mean, n) in sorted(above.items()):
        s, c = lenient.get(rater, (0.0, 0))
        lenient[rater] = (s + n * mean, c + n)
    found: dict[tuple[str, str], float] = {}
    for (rater, ratee), (mean, n) in sorted(above.items()):
        if n < MIN_RATINGS:
            continue
        s, c = lenient[rater]
        elsewhere = (s - n * mean) / (c - n) if c > n else 0.0
        found[(rater, ratee)] = mean - elsewhere
    return found


def suspect(
    ratings: Iterable[Rated], bias: Mapping[str, float], weight: Mapping[str, float], default_weight: float
) -> Suspicion:
    """The pairs (and rings: pairs sharing a learner) who rate each other far above the rest."""
    excess = excesses(ratings, bias, weight, default_weight)
    pairs = sorted(
        (a, b)
        for (a, b), e in excess.items()
        if a < b
        and (back := excess.get((b, a))) is not None
        and min(e, back) >= EACH_WAY
        and e + back >= MARGIN
    )
    return Suspicion(pairs=tuple(pairs)) if pairs else NONE
