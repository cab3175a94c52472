"""The bound: the best Proof any model could show, from the ratings a learner received.

For each rated learner, the posterior **median** of their true quality ``q`` given every rating
they received, under the simulator's own generative model (``sim.population``) with its true
parameters, which no model of the service knows:

- ``q ~ 1 + 4 Beta(2, 2)``; per specialty ``q_s = clip(q + N(0, specialty_sd), 1, 5)``, the
  offsets independent across specialties;
- a rubric score is ``clip(round(q_s + shift + N(0, sd)), 1, 5)``, the noise fresh per
  dimension, with ``shift`` the rater's true leniency (the share of it kept, once told their
  bias) plus ``collusion_boost`` when rater and ratee are colluding partners, and ``sd`` the
  rater's true noise. So a score ``k`` has probability ``Phi((k + 1/2 - mu) / sd) -
  Phi((k - 1/2 - mu) / sd)`` with ``mu = q_s + shift``, the ends taking the clipped tails;
- a careless rater gives 4 whatever they saw: their ratings carry no information.

The likelihood is integrated numerically over a grid of ``q`` (step ``STEP``) and, per
specialty, of the offset (the same step, out to ``OFFSET_SDS`` standard deviations): the
offsets are independent, so the likelihood factorises per specialty. The median minimises the
expected absolute error, and Proof error is a mean absolute error, so Proof = 40 (median - 1) / 4
has the least expected error any model can reach with this information (it also knows every
rater's true leniency and noise, and who colludes with whom). Who was paired with whom also
says something about ``q`` (pairs are formed by similar level); the bound leaves that out, as
the service's model does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.population import Population

LOW, HIGH = 1.0, 5.0  # the rubric's scale
SCORES = (1, 2, 3, 4, 5)
STEP = 0.02  # grid step of q and of the specialty offsets (1..5 scale)
OFFSET_SDS = 5.0  # the offset grid reaches this many specialty standard deviations
_TINY = 1e-300  # a probability is never taken as exactly 0 (its log would be -inf)

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class Observed:
    """One informative rating received: in ``specialty``, ``counts[k - 1]`` of its rubric scores
    were ``k``, from a rater whose scores sit ``shift`` above the ratee's specialty quality with
    noise sd ``noise_sd`` (both true values, known to the bound only)."""

    specialty: str
    counts: tuple[int, int, int, int, int]
    shift: float
    noise_sd: float


def grid(step: float = STEP) -> Vector:
    """The grid of ``q`` (and of ``q_s``): 1 to 5 in steps of ``step`` (which must divide 4)."""
    points = round((HIGH - LOW) / step)
    if not math.isclose(points * step, HIGH - LOW):
        raise ValueError(f"the grid step {step} does not divide the scale")
    return np.linspace(LOW, HIGH, points + 1)


def prior(q: Vector) -> Vector:
    """The density of ``1 + 4 Beta(2, 2)`` at ``q`` (up to a constant): u (1 - u), u = (q - 1) / 4."""
    u = (q - LOW) / (HIGH - LOW)
    return u * (1.0 - u)


def _lower_tail(z: Vector) -> Vector:
    """Phi(z), accurate in the lower tail."""
    return np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in z.ravel()]).reshape(z.shape)


def score_log_likelihood(q_s: Vector, shift: float, noise_sd: float) -> Vector:
    """log P(score = k | q_s) for k = 1..5 (rows) at each point of ``q_s`` (columns).

    P(k) = Phi((k + 1/2 - mu) / sd) - Phi((k - 1/2 - mu) / sd), mu = q_s + shift, with 1 and 5
    taking the tails below 1.5 and above 4.5 (clipping). Each difference is taken in the tail it
    lies in (Phi(b) - Phi(a), or Phi(-a) - Phi(-b) above the mean), so it keeps its precision.
    """
    if noise_sd <= 0:
        raise ValueError("a rater's noise sd must be positive")
    mu = q_s + shift
    cuts = [(k + 0.5 - mu) / noise_sd for k in SCORES[:-1]]  # the 4 thresholds, standardised
    below = [_lower_tail(c) for c in cuts]  # Phi(c)
    above = [_lower_tail(-c) for c in cuts]  # 1 - Phi(c)
    rows = [below[0]]
    for k in range(1, 4):
        a, b = cuts[k - 1], cuts[k]
        rows.append(np.where(a + b <= 0, below[k] - below[k - 1], above[k - 1] - above[k]))
    rows.append(above[3])
    return np.log(np.maximum(np.vstack(rows), _TINY))


def _offset_kernel(specialty_sd: float, step: float) -> Vector:
    """Weights of the specialty offsets j * step, j = -J..J (normal, summing to 1)."""
    if specialty_sd <= 0:
        return np.ones(1)
    reach = math.ceil(OFFSET_SDS * specialty_sd / step)
    offsets = np.arange(-reach, reach + 1) * step
    weights = np.exp(-0.5 * (offsets / specialty_sd) ** 2)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def specialty_log_likelihood(log_lik: Vector, kernel: Vector) -> Vector:
    """log L_s(q) = log of the sum over offsets d of w(d) exp(log_lik(clip(q + d))).

    ``log_lik`` is the log-likelihood of the specialty's ratings at each point of the ``q_s``
    grid; the offset grid has the same step, so ``q + d`` lands on a grid point, and past either
    end it is clipped to the end (the padding).
    """
    top = float(log_lik.max())
    values = np.exp(log_lik - top)
    reach = (len(kernel) - 1) // 2
    padded = np.concatenate([np.full(reach, values[0]), values, np.full(reach, values[-1])])
    smoothed = np.convolve(padded, kernel[::-1], mode="valid")
    return np.asarray(np.log(np.maximum(smoothed, _TINY)) + top, dtype=np.float64)


def median(q: Vector, density: Vector) -> float:
    """The median of a density given at the points of ``q`` (trapezoids; linear within a cell)."""
    cells = 0.5 * (density[1:] + density[:-1]) * np.diff(q)
    cumulative = np.concatenate([[0.0], np.cumsum(cells)])
    half = 0.5 * float(cumulative[-1])
    i = int(np.searchsorted(cumulative, half, side="left"))
    if i == 0:
        return float(q[0])
    lo, hi = float(cumulative[i - 1]), float(cumulative[i])
    share = (half - lo) / (hi - lo) if hi > lo else 0.0
    return float(q[i - 1] + share * (q[i] - q[i - 1]))


class Likelihoods:
    """Score log-likelihood tables on the grid, one per (shift, noise sd), computed once each."""

    def __init__(self, q: Vector) -> None:
        self.q = q
        self._tables: dict[tuple[float, float], Vector] = {}

    def table(self, shift: float, noise_sd: float) -> Vector:
        key = (shift, noise_sd)
        found = self._tables.get(key)
        if found is None:
            found = self._tables[key] = score_log_likelihood(self.q, shift, noise_sd)
        return found


def posterior_median(
    observed: Iterable[Observed],
    specialty_sd: float,
    step: float = STEP,
    likelihoods: Likelihoods | None = None,
) -> float:
    """The posterior median of ``q`` (1..5) given ``observed`` (the prior's, 3.0, given nothing)."""
    tables = likelihoods or Likelihoods(grid(step))
    q = tables.q
    by_specialty: dict[str, Vector] = {}
    for o in observed:
        counts = np.asarray(o.counts, dtype=np.float64)
        log_lik = counts @ tables.table(o.shift, o.noise_sd)
        held = by_specialty.get(o.specialty)
        by_specialty[o.specialty] = log_lik if held is None else held + log_lik
    kernel = _offset_kernel(specialty_sd, float(q[1] - q[0]))
    log_post = np.zeros_like(q)
    for log_lik in by_specialty.values():
        log_post += specialty_log_likelihood(log_lik, kernel)
    density = prior(q) * np.exp(log_post - log_post.max())
    return median(q, density)


def counts_of(scores: Mapping[str, int]) -> tuple[int, int, int, int, int]:
    """How many of a rating's rubric scores are 1, 2, 3, 4 and 5."""
    values = list(scores.values())
    return (values.count(1), values.count(2), values.count(3), values.count(4), values.count(5))


def leniency_kept(population: Population) -> dict[str, float]:
    """Per session, the share of their leniency its raters kept (1 unless shown their bias)."""
    settings = population.settings
    rounds = settings.sessions_per_learner
    kept: dict[str, float] = {}
    for session in population.sessions:
        told = settings.feedback > 0 and session.round_no >= settings.feedback_from * rounds
        kept[session.session_id] = 1.0 - settings.feedback if told else 1.0
    return kept


def observations(population: Population) -> dict[str, list[Observed]]:
    """Per learner with ratings, what the truth knows of each rating they received (careless
    raters' ratings left out: they say nothing)."""
    learners, settings = population.learners, population.settings
    kept = leniency_kept(population)
    out: dict[str, list[Observed]] = {}
    for r in population.ratings:
        rater = learners[r.rater_id]
        seen = out.setdefault(r.ratee_id, [])  # one rated by careless raters only is rated all the same
        if rater.careless:
            continue
        boost = settings.collusion_boost if rater.partner == r.ratee_id else 0.0
        shift = rater.leniency * kept[r.session_id] + boost
        seen.append(Observed(r.specialty, counts_of(r.scores), shift, rater.noise_sd))
    return out


def bound_quality(population: Population, step: float = STEP) -> dict[str, float]:
    """Per learner who received a rating, the posterior median of their true quality (1..5)."""
    tables = Likelihoods(grid(step))
    sd = population.settings.specialty_sd
    return {
        learner: posterior_median(seen, sd, step, tables)
        for learner, seen in sorted(observations(population).items())
    }


def bound_proof(population: Population, step: float = STEP) -> dict[str, float]:
    """Per learner who received a rating, the bound's Proof: 40 (median - 1) / 4."""
    return {
        learner: 40.0 * (q - LOW) / (HIGH - LOW) for learner, q in bound_quality(population, step).items()
    }
