"""The replay's population: every learner's self-level, specialty and format preference per skill,
and the state of each (learner, skill) as the driver, the learner's client, knows it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from shared.catalog import get_catalog

LEVELS = (
    ("beginner", 1.0, 0.30),
    ("intermediate", 2.0, 0.35),
    ("advanced", 3.0, 0.25),
    ("expert", 4.0, 0.10),
)
FREE, TICKET, SESSION, REQUEUE = "free", "ticket", "session", "requeue"


@dataclass
class Slot:
    """A learner in a skill, as the driver (the learner's client) knows it."""

    learner_id: str
    skill: str
    level: float
    specialty: str | None
    format: str | None
    state: str = FREE
    ticket_id: str | None = None


def population(learners: int, rng: random.Random) -> dict[tuple[str, str], Slot]:
    slots: dict[tuple[str, str], Slot] = {}
    for n in range(learners):
        learner = f"learner-{n:05d}"
        for skill in get_catalog().skills:
            level = rng.choices([lv[1] for lv in LEVELS], weights=[lv[2] for lv in LEVELS])[0]
            specialties = [s.id for s in skill.specialties]
            specialty = (
                rng.choices(specialties, weights=range(len(specialties), 0, -1))[0]
                if rng.random() < 0.7
                else None
            )
            fmt = rng.choice([f.id for f in skill.formats]) if rng.random() < 0.6 else None
            slots[(learner, skill.id)] = Slot(learner, skill.id, level, specialty, fmt)
    return slots
