"""A population turned into what its clients do over HTTP (pure: no I/O).

The population (``sim.population``) is drawn for one skill; over HTTP its rounds are spread
across the catalog's skills, one skill per round (see ``skill_index``), so every skill page
gets figures. In each round every learner of a planned session asks for a partner, with the
specialty and format of that planned session (so planned partners prefer each other, if the
engine finds their levels close enough); the matching engine chooses the actual pairs.
Specialties, formats and rubric dimensions are mapped onto the skill's own by position.

What happens in a session is drawn for the actual pair when it runs (``HttpPlan.no_show``,
``HttpPlan.scores``): the population's model (true skill per specialty, rater leniency and
noise, careless raters, colluding pairs, no-show rates), each draw from a generator seeded by
the population's seed, the skill, the round and the learners. Learner ids and handles carry a
short run id, so seeding a store twice does not collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.catalog import Catalog, Skill, get_catalog
from sim.population import DIMENSIONS, SPECIALTIES, Population, draw_no_show, draw_scores

MATCH = "/v1/match-requests"
SESSION = "/v1/sessions/{session}"
LEVELS = ("beginner", "intermediate", "advanced", "expert")


@dataclass(frozen=True)
class LearnerPlan:
    learner_id: str
    handle: str
    display_name: str
    claims: dict[str, str]  # skill -> self level


@dataclass(frozen=True)
class SessionPlan:
    """A session the population planned: its two learners ask for a match in its round with
    its specialty and format; whom the engine pairs them with is up to the engine."""

    key: str  # the population's session id
    round: int
    skill: str
    specialty: str
    format: str
    first: str
    second: str

    @property
    def match_body(self) -> dict[str, Any]:
        return {"skill": self.skill, "specialty": self.specialty, "format": self.format}


@dataclass(frozen=True)
class Request:
    """One learner's match request in a round."""

    learner_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class RoundPlan:
    number: int  # the population's round
    skill: str
    requests: tuple[Request, ...]
    planned: int  # sessions the population planned in it


@dataclass(frozen=True)
class HttpPlan:
    run_id: str
    learners: list[LearnerPlan]
    sessions: list[SessionPlan] = field(default_factory=list)
    population: Population | None = None  # the model the sessions' outcomes are drawn from
    sim_ids: dict[str, str] = field(default_factory=dict)  # learner id -> population id
    catalog: Catalog | None = field(default=None, compare=False, repr=False)

    @property
    def skills(self) -> list[str]:
        return sorted({s.skill for s in self.sessions})

    def rounds(self) -> list[RoundPlan]:
        """The rounds in order, each with every planned learner's request."""
        by_round: dict[int, list[SessionPlan]] = {}
        for s in self.sessions:
            by_round.setdefault(s.round, []).append(s)
        rounds: list[RoundPlan] = []
        for number in sorted(by_round):
            planned = by_round[number]
            requests = tuple(Request(who, s.match_body) for s in planned for who in (s.first, s.second))
            rounds.append(RoundPlan(number, planned[0].skill, requests, len(planned)))
        return rounds

    def knows(self, learner_id: str) -> bool:
        return learner_id in self.sim_ids

    def no_show(self, a: str, b: str, *, skill: str, round_no: int) -> str | None:
        """Which of ``a`` and ``b`` (learner ids) does not show up to their session, if either."""
        population = self._population()
        absent = draw_no_show(population, self.sim_ids[a], self.sim_ids[b], skill=skill, round_no=round_no)
        return None if absent is None else (a if absent == self.sim_ids[a] else b)

    def scores(
        self, rater: str, ratee: str, *, skill: str, specialty: str | None, round_no: int
    ) -> dict[str, int]:
        """The scores ``rater`` gives ``ratee`` (learner ids) after a session of ``skill`` in
        ``specialty`` (the skill's own id), on the skill's rubric."""
        catalog_skill = _skill(self.catalog or get_catalog(), skill)
        drawn = draw_scores(
            self._population(),
            self.sim_ids[rater],
            self.sim_ids[ratee],
            population_specialty(catalog_skill, specialty),
            skill=skill,
            round_no=round_no,
        )
        return _scores(catalog_skill, drawn)

    def _population(self) -> Population:
        if self.population is None:
            raise ValueError("this plan has no population to draw sessions from")
        return self.population


def self_level(quality: float) -> str:
    """The claim a learner of true quality 1..5 makes: the nearest of the four levels (1..4)."""
    level = 1.0 + 3.0 * (quality - 1.0) / 4.0
    return LEVELS[min(3, max(0, round(level) - 1))]


def learner_id(run_id: str, sim_id: str) -> str:
    return f"sim-{run_id}-{sim_id.lower()}"


def handle(run_id: str, sim_id: str) -> str:
    return f"{run_id}-{sim_id.lower()}"


def _round(session_key: str) -> int:
    """The round of a population session id ``S<seed>-<round>-<pair>``."""
    return int(session_key.split("-")[1])


def _pair(session_key: str) -> int:
    return int(session_key.split("-")[2])


def skill_index(round_no: int, skills: int) -> int:
    """Odd rounds in the first skill, even rounds cycle through all: the first skill (the
    demo's skill page) gets most sessions per learner, enough for the higher tiers."""
    return 0 if round_no % 2 else (round_no // 2) % skills


def _skill(catalog: Catalog, skill_id: str) -> Skill:
    skill = catalog.get(skill_id)
    if skill is None:
        raise ValueError(f"unknown skill {skill_id!r}")
    return skill


def skill_specialty(skill: Skill, specialty: str) -> str:
    """The skill's specialty for a population specialty (by position)."""
    return skill.specialties[SPECIALTIES.index(specialty) % len(skill.specialties)].id


def population_specialty(skill: Skill, specialty: str | None) -> str:
    """The population specialty a skill's specialty stands for (the first with its position)."""
    ids = [s.id for s in skill.specialties]
    return SPECIALTIES[ids.index(specialty)] if specialty in ids else SPECIALTIES[0]


def _scores(skill: Skill, scores: dict[str, int]) -> dict[str, int]:
    values = [scores[d] for d in DIMENSIONS]
    return {dim.id: values[i % len(values)] for i, dim in enumerate(skill.rubric)}


def build_plan(population: Population, run_id: str, catalog: Catalog | None = None) -> HttpPlan:
    """Every learner to register (with the skills they will practise) and every round to run."""
    catalog = catalog or get_catalog()
    skills = list(catalog.skills)
    ids = {sim_id: learner_id(run_id, sim_id) for sim_id in population.learners}
    claims: dict[str, set[str]] = {sim_id: set() for sim_id in population.learners}
    sessions: list[SessionPlan] = []
    for s in population.sessions:
        round_no = _round(s.session_id)
        skill = skills[skill_index(round_no, len(skills))]
        a, b = s.participants
        claims[a].add(skill.id)
        claims[b].add(skill.id)
        sessions.append(
            SessionPlan(
                key=s.session_id,
                round=round_no,
                skill=skill.id,
                specialty=skill_specialty(skill, s.specialty),
                format=skill.formats[_pair(s.session_id) % len(skill.formats)].id,
                first=ids[a],
                second=ids[b],
            )
        )
    learners = [
        LearnerPlan(
            learner_id=ids[sim_id],
            handle=handle(run_id, sim_id),
            display_name=f"Sim learner {sim_id}",
            claims={sk: self_level(learner.quality) for sk in sorted(claims[sim_id])},
        )
        for sim_id, learner in population.learners.items()
    ]
    sim_ids = {http_id: sim_id for sim_id, http_id in ids.items()}
    return HttpPlan(run_id, learners, sessions, population=population, sim_ids=sim_ids, catalog=catalog)
