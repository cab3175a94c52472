"""Typed view of ``skills.json`` and the checks every service makes against it."""

from __future__ import annotations

import json
from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Named(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str


class FaqEntry(BaseModel):
    model_config = ConfigDict(frozen=True)
    question: str
    answer: str


class PageText(BaseModel):
    """What the skill's public page says besides its live figures (data, not template text)."""

    model_config = ConfigDict(frozen=True)
    pitch: str
    facts: tuple[str, ...]
    why: tuple[str, ...]
    faq: tuple[FaqEntry, ...]


class Skill(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    category: str
    rubric: tuple[Named, ...]
    specialties: tuple[Named, ...]
    formats: tuple[Named, ...]
    page: PageText

    # cached: every rating is checked against them
    @cached_property
    def rubric_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.rubric)

    @cached_property
    def specialty_ids(self) -> frozenset[str]:
        return frozenset(s.id for s in self.specialties)

    @cached_property
    def format_ids(self) -> frozenset[str]:
        return frozenset(f.id for f in self.formats)


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)
    skills: tuple[Skill, ...]

    def get(self, skill_id: str) -> Skill | None:
        for skill in self.skills:
            if skill.id == skill_id:
                return skill
        return None

    def problems(
        self,
        skill_id: str,
        *,
        specialty: str | None = None,
        format: str | None = None,
        scores: dict[str, int] | None = None,
    ) -> list[str]:
        """Why the given skill, specialty, format or rubric scores are not acceptable (empty if fine)."""
        skill = self.get(skill_id)
        if skill is None:
            return [f"unknown skill {skill_id!r}"]
        found: list[str] = []
        if specialty is not None and specialty not in skill.specialty_ids:
            found.append(f"unknown specialty {specialty!r} for skill {skill_id!r}")
        if format is not None and format not in skill.format_ids:
            found.append(f"unknown format {format!r} for skill {skill_id!r}")
        if scores is not None:
            given = scores.keys()
            if given != skill.rubric_ids:
                unknown = sorted(given - skill.rubric_ids)
                missing = sorted(skill.rubric_ids - given)
                if unknown:
                    found.append(f"unknown rubric dimensions {unknown} for skill {skill_id!r}")
                if missing:
                    found.append(f"missing rubric dimensions {missing}")
            if not all(1 <= v <= 5 for v in scores.values()):
                found.append(
                    f"scores must be 1..5: {sorted(k for k, v in scores.items() if not 1 <= v <= 5)}"
                )
        return found


@lru_cache
def get_catalog() -> Catalog:
    return Catalog.model_validate(json.loads((Path(__file__).parent / "skills.json").read_text()))
