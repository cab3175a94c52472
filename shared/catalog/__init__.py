"""The skill catalog: skills, their rubrics, specialties and session formats, kept as data."""

from shared.catalog.model import Catalog, Skill, get_catalog

__all__ = ["Catalog", "Skill", "get_catalog"]
