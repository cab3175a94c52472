"""A population turned into the HTTP calls a client makes (pure: no I/O).

The population (``sim.population``) is drawn for one skill; over HTTP its sessions are spread
across the catalog's skills, one skill per round (see ``skill_index``), so every skill page
gets figures. Specialties, formats and rubric dimensions are mapped onto the
skill's own by position; a rating keeps the scores the population's model drew (true skill +
rater leniency + noise, clipped 1..5). Learner ids and handles carry a short run id, so seeding
a store twice does not collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.catalog import Catalog, Skill, get_catalog
from sim.population import DIMENSIONS, SPECIALTIES, Population

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
class Step:
    """One call: ``actor``'s token, ``path`` may hold ``{session}``, filled in once matched."""

    actor: str
    method: str
    path: str
    json: dict[str, Any] | None = None
    route: str = ""  # the path as a template, to count failures by route

    @property
    def label(self) -> str:
        return f"{self.method} {self.route or self.path}"


@dataclass(frozen=True)
class SessionPlan:
    key: str  # the population's session id
    skill: str
    specialty: str
    format: str
    first: str
    second: str
    no_show: str | None
    ratings: tuple[tuple[str, str, dict[str, int]], ...] = ()  # (rater, ratee, scores)

    @property
    def match_body(self) -> dict[str, Any]:
        return {"skill": self.skill, "specialty": self.specialty, "format": self.format}

    def match_steps(self) -> list[Step]:
        """Both learners ask for a match; the second request pairs with the waiting first."""
        return [Step(who, "POST", MATCH, self.match_body) for who in (self.first, self.second)]

    def session_steps(self) -> list[Step]:
        """After the match: start, complete and both ratings; or the present learner reports a no-show."""
        if self.no_show is not None:
            present = self.second if self.no_show == self.first else self.first
            body = {"reason": "no-show", "no_show": self.no_show}
            return [Step(present, "POST", f"{SESSION}/abandon", body)]
        steps = [
            Step(self.first, "POST", f"{SESSION}/start"),
            Step(self.second, "POST", f"{SESSION}/complete"),
        ]
        steps.extend(
            Step(rater, "POST", f"{SESSION}/ratings", {"ratee_id": ratee, "scores": scores})
            for rater, ratee, scores in self.ratings
        )
        return steps


@dataclass(frozen=True)
class HttpPlan:
    run_id: str
    learners: list[LearnerPlan]
    sessions: list[SessionPlan] = field(default_factory=list)

    @property
    def skills(self) -> list[str]:
        return sorted({s.skill for s in self.sessions})


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


def _scores(skill: Skill, scores: dict[str, int]) -> dict[str, int]:
    values = [scores[d] for d in DIMENSIONS]
    return {dim.id: values[i % len(values)] for i, dim in enumerate(skill.rubric)}


def build_plan(population: Population, run_id: str, catalog: Catalog | None = None) -> HttpPlan:
    """Every learner to register (with the skills they will practise) and every session to run."""
    skills = list((catalog or get_catalog()).skills)
    ids = {sim_id: learner_id(run_id, sim_id) for sim_id in population.learners}
    ratings: dict[str, list[tuple[str, str, dict[str, int]]]] = {}
    for r in population.ratings:
        ratings.setdefault(r.session_id, []).append((r.rater_id, r.ratee_id, r.scores))
    claims: dict[str, set[str]] = {sim_id: set() for sim_id in population.learners}
    sessions: list[SessionPlan] = []
    for s in population.sessions:
        skill = skills[skill_index(_round(s.session_id), len(skills))]
        a, b = s.participants
        claims[a].add(skill.id)
        claims[b].add(skill.id)
        sessions.append(
            SessionPlan(
                key=s.session_id,
                skill=skill.id,
                specialty=skill.specialties[SPECIALTIES.index(s.specialty) % len(skill.specialties)].id,
                format=skill.formats[_pair(s.session_id) % len(skill.formats)].id,
                first=ids[a],
                second=ids[b],
                no_show=ids[s.no_show] if s.no_show else None,
                ratings=tuple(
                    (ids[rater], ids[ratee], _scores(skill, scores))
                    for rater, ratee, scores in ratings.get(s.session_id, [])
                ),
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
    return HttpPlan(run_id=run_id, learners=learners, sessions=sessions)
