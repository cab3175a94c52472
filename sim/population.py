"""A seeded population: learners with hidden true skill, raters with leniency and noise, sessions.

Everything is drawn from one ``random.Random(seed)``, so the same seed and settings give the
same population, session for session and rating for rating.

Model (1..5 scale):

- each learner has a true quality ``q`` in the skill (``1 + 4 * Beta(2, 2)``) and, per
  specialty, ``q`` plus a small offset (sd 0.3), clipped to 1..5;
- as a rater, each learner has a leniency (sd ``leniency_sd``) and a personal noise sd
  (``noise_sd`` times a log-normal factor with mean square 1, so some raters are more reliable
  than others while the population's noise sd, root mean square, stays ``noise_sd``);
- ``careless_share`` of raters give 4 on every dimension, whatever they saw;
- ``colluding_share`` of learners are paired off; a colluding pair meets for half of its
  sessions and each adds ``collusion_boost`` to the other's scores;
- each learner has a no-show rate; a session where someone does not show yields no ratings;
- sessions run in rounds spread over ``span_days``; each round pairs learners of similar level
  (sorted by ``q`` plus a wide jitter), which keeps the who-rated-whom graph connected;
- a rubric score is ``clip(round(q_specialty + leniency + noise), 1, 5)`` per dimension, with
  fresh noise per dimension;
- with ``dimension_sd``, a learner is not equally good on every rubric dimension: their true
  quality on dimension ``d`` is ``q + offset_d`` (offsets of sd ``dimension_sd``, centred so
  they average to zero and ``q`` stays the learner's overall quality); with
  ``dimension_severity_sd``, a rater is harsher on some dimensions than on others (centred
  offsets of that sd). Both are drawn from a generator of their own, so a population without
  them is, draw for draw, the one it always was, and a rubric score becomes
  ``clip(round(q_specialty + offset_d + leniency + severity_d + noise), 1, 5)``;
- with ``feedback``, raters are shown their bias from ``feedback_from`` of the rounds on and
  keep only ``1 - feedback`` of their leniency afterwards (as Kulkarni et al. 2013 observed of
  raters told their bias).

The HTTP mode does not replay these sessions: the matching engine chooses the pairs, so the
driver draws a session's absent learner (``draw_no_show``) and its ratings (``draw_scores``)
for the actual pair when it runs, from the same model, each from its own ``random.Random``
seeded by (seed, what, skill, round, learners): deterministic per pair and round, whatever
the order the sessions run in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

SKILL = "machine-learning"
DIMENSIONS = ("model-selection", "feature-engineering", "evaluation-metrics", "generalization", "deployment")
SPECIALTIES = ("nlp", "computer-vision", "reinforcement-learning", "tabular", "mlops")
START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Settings:
    learners: int = 1000
    sessions_per_learner: int = 8
    leniency_sd: float = 0.5
    noise_sd: float = 0.7
    noise_spread: float = 0.3  # log-normal sd of a rater's noise factor
    careless_share: float = 0.0
    colluding_share: float = 0.0
    collusion_boost: float = 1.0
    mean_no_show: float = 0.05
    specialty_sd: float = 0.3
    pairing_jitter: float = 0.6  # sd added to q before sorting into pairs each round
    span_days: float = 120.0
    #: Raters shown their bias (their rater profile) move this share of the way toward none ...
    feedback: float = 0.0
    #: ... from this share of the rounds on (the profile needs ratings to show anything).
    feedback_from: float = 0.5
    #: How much a learner's true quality differs between rubric dimensions (sd; 0: not at all) ...
    dimension_sd: float = 0.0
    #: ... and how much a rater's severity does (sd of their per-dimension offsets; 0: not at all).
    dimension_severity_sd: float = 0.0


SCENARIOS: dict[str, Settings] = {
    "biased": Settings(),
    "careless": Settings(careless_share=0.10),
    "colluding": Settings(colluding_share=0.02),
    "unbiased": Settings(leniency_sd=0.0, noise_spread=0.0),
}

#: Populations whose learners differ by rubric dimension (``bench.sci_rubric``): the biased
#: scenario with per-dimension quality, with and without raters' per-dimension severity.
RUBRIC_SCENARIOS: dict[str, Settings] = {
    "rubric": Settings(dimension_sd=0.6),
    "rubric-severity": Settings(dimension_sd=0.6, dimension_severity_sd=0.4),
}


def scenario(name: str, *, learners: int = 1000, sessions_per_learner: int = 8) -> Settings:
    settings = SCENARIOS.get(name) or RUBRIC_SCENARIOS[name]
    return replace(settings, learners=learners, sessions_per_learner=sessions_per_learner)


@dataclass(frozen=True)
class Learner:
    learner_id: str
    quality: float  # true skill, 1..5
    specialty_quality: dict[str, float]
    leniency: float
    noise_sd: float
    careless: bool
    no_show_rate: float
    partner: str | None = None  # colluding partner, if any
    #: true quality on each rubric dimension less ``quality`` (centred; empty: the same on all)
    dimension_offset: dict[str, float] = field(default_factory=dict)
    #: as a rater, how much above their leniency they score each dimension (centred; empty: none)
    severity: dict[str, float] = field(default_factory=dict)

    def dimension_quality(self, dimension: str) -> float:
        """True quality on one rubric dimension, 1..5."""
        return _clip(self.quality + self.dimension_offset.get(dimension, 0.0), 1.0, 5.0)

    @property
    def true_unit(self) -> float:
        """True skill on 0..1, the scale of Proof / 40."""
        return (self.quality - 1.0) / 4.0


@dataclass(frozen=True)
class Rating:
    """One rating received: ``rater_id`` rated ``ratee_id`` in a session."""

    rating_id: str
    session_id: str
    rater_id: str
    ratee_id: str
    specialty: str
    scores: dict[str, int]
    occurred_at: datetime


@dataclass(frozen=True)
class Session:
    session_id: str
    participants: tuple[str, str]
    specialty: str
    occurred_at: datetime
    no_show: str | None  # the learner who did not show, if any
    round_no: int = 0  # the round it ran in (raters may have been shown their bias by then)


@dataclass
class Population:
    settings: Settings
    seed: int
    learners: dict[str, Learner]
    sessions: list[Session] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return START + timedelta(days=self.settings.span_days)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _learners(settings: Settings, rng: random.Random, seed: int) -> dict[str, Learner]:
    ids = [f"L{i:05d}" for i in range(settings.learners)]
    careless = set(rng.sample(ids, round(settings.careless_share * len(ids))))
    colluders = rng.sample(ids, 2 * (round(settings.colluding_share * len(ids)) // 2))
    partner = {a: b for a, b in zip(colluders[::2], colluders[1::2], strict=True)}
    partner.update({b: a for a, b in list(partner.items())})
    learners: dict[str, Learner] = {}
    for learner_id in ids:
        quality = 1.0 + 4.0 * rng.betavariate(2.0, 2.0)
        learners[learner_id] = Learner(
            learner_id=learner_id,
            quality=quality,
            specialty_quality={
                s: _clip(quality + rng.gauss(0.0, settings.specialty_sd), 1.0, 5.0) for s in SPECIALTIES
            },
            leniency=rng.gauss(0.0, settings.leniency_sd),
            # exp(N(-s^2, s)) has E[f^2] = 1: the population noise sd (RMS) is noise_sd, as in the issue.
            noise_sd=settings.noise_sd
            * rng.lognormvariate(-(settings.noise_spread**2), settings.noise_spread),
            careless=learner_id in careless,
            no_show_rate=min(0.5, rng.expovariate(1.0 / settings.mean_no_show))
            if settings.mean_no_show
            else 0.0,
            partner=partner.get(learner_id),
        )
    if settings.dimension_sd or settings.dimension_severity_sd:
        learners = _with_dimensions(settings, learners, random.Random(f"{seed}|dimensions"))
    return learners


def _centred(rng: random.Random, sd: float) -> dict[str, float]:
    """Offsets of sd ``sd`` on the rubric dimensions that average to zero (empty for sd 0)."""
    if not sd:
        return {}
    drawn = [rng.gauss(0.0, sd) for _ in DIMENSIONS]
    centre = sum(drawn) / len(drawn)
    # centring shrinks the spread by sqrt((D - 1) / D); scaled back so the sd is ``sd``
    scale = (len(drawn) / (len(drawn) - 1)) ** 0.5
    return {d: (x - centre) * scale for d, x in zip(DIMENSIONS, drawn, strict=True)}


def _with_dimensions(
    settings: Settings, learners: dict[str, Learner], rng: random.Random
) -> dict[str, Learner]:
    return {
        i: replace(
            learner,
            dimension_offset=_centred(rng, settings.dimension_sd),
            severity=_centred(rng, settings.dimension_severity_sd),
        )
        for i, learner in learners.items()
    }


def _rate(
    rater: Learner,
    ratee: Learner,
    specialty: str,
    settings: Settings,
    rng: random.Random,
    leniency_kept: float = 1.0,
) -> dict[str, int]:
    """``leniency_kept``: the share of their leniency the rater still has (1 unless told their bias)."""
    if rater.careless:
        return dict.fromkeys(DIMENSIONS, 4)
    boost = settings.collusion_boost if rater.partner == ratee.learner_id else 0.0
    base = ratee.specialty_quality[specialty] + rater.leniency * leniency_kept + boost
    offset, severity = ratee.dimension_offset, rater.severity
    return {
        d: int(
            _clip(
                round(base + offset.get(d, 0.0) + severity.get(d, 0.0) + rng.gauss(0.0, rater.noise_sd)), 1, 5
            )
        )
        for d in DIMENSIONS
    }


def _absent(learners: dict[str, Learner], pair: tuple[str, str], rng: random.Random) -> str | None:
    """The learner who does not show up, if any: each in turn, at their no-show rate."""
    return next((x for x in pair if rng.random() < learners[x].no_show_rate), None)


def _pairs(settings: Settings, learners: dict[str, Learner], rng: random.Random) -> list[tuple[str, str]]:
    """One round: colluders half the time with their partner, everyone else by similar level."""
    pairs: list[tuple[str, str]] = []
    taken: set[str] = set()
    for learner_id in sorted(learners):
        partner = learners[learner_id].partner
        if partner and learner_id < partner and rng.random() < 0.5:
            pairs.append((learner_id, partner))
            taken.update((learner_id, partner))
    rest = [i for i in sorted(learners) if i not in taken]
    keyed = sorted(rest, key=lambda i: learners[i].quality + rng.gauss(0.0, settings.pairing_jitter))
    pairs.extend((a, b) for a, b in zip(keyed[::2], keyed[1::2], strict=False))
    return pairs


def simulate(settings: Settings, seed: int) -> Population:
    """A population and its sessions and ratings, fully determined by ``settings`` and ``seed``."""
    rng = random.Random(seed)
    learners = _learners(settings, rng, seed)
    population = Population(settings=settings, seed=seed, learners=learners)
    rounds = settings.sessions_per_learner
    for round_no in range(rounds):
        told = settings.feedback > 0 and round_no >= settings.feedback_from * rounds
        kept = 1.0 - settings.feedback if told else 1.0
        for pair_no, (a, b) in enumerate(_pairs(settings, learners, rng)):
            day = (round_no + rng.random()) * settings.span_days / rounds
            occurred_at = START + timedelta(days=day)
            specialty = rng.choice(SPECIALTIES)
            session_id = f"S{seed}-{round_no:02d}-{pair_no:05d}"
            no_show = _absent(learners, (a, b), rng)
            population.sessions.append(Session(session_id, (a, b), specialty, occurred_at, no_show, round_no))
            if no_show is not None:
                continue
            for rater, ratee in ((a, b), (b, a)):
                scores = _rate(learners[rater], learners[ratee], specialty, settings, rng, kept)
                rating_id = f"{session_id}-{rater}"
                population.ratings.append(
                    Rating(rating_id, session_id, rater, ratee, specialty, scores, occurred_at)
                )
    return population


# -- draws for a pair chosen at run time (the HTTP mode) ----------------------------------------


def draw_rng(population: Population, what: str, skill: str, round_no: int, *learners: str) -> random.Random:
    """A generator of its own for one draw: the same arguments give the same numbers, in any
    process (a string seed is hashed with SHA-512, not with the salted ``hash``)."""
    return random.Random("|".join((str(population.seed), what, skill, str(round_no), *learners)))


def draw_no_show(population: Population, a: str, b: str, *, skill: str, round_no: int) -> str | None:
    """Who of ``a`` and ``b`` (population ids) does not show up to their session in ``round_no``."""
    pair = (a, b) if a <= b else (b, a)
    return _absent(population.learners, pair, draw_rng(population, "no-show", skill, round_no, *pair))


def draw_scores(
    population: Population, rater: str, ratee: str, specialty: str, *, skill: str, round_no: int
) -> dict[str, int]:
    """The rubric scores ``rater`` gives ``ratee`` (population ids) after a session in ``specialty``
    (one of ``SPECIALTIES``): the model's rating, drawn for this pair and round."""
    rng = draw_rng(population, "rate", skill, round_no, rater, ratee)
    return _rate(population.learners[rater], population.learners[ratee], specialty, population.settings, rng)
