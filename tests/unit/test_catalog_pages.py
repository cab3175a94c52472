"""Every skill in the catalog carries the texts of its public page, and the SCI scale adds up."""

from __future__ import annotations

from shared import sci_scale
from shared.catalog import get_catalog


def test_every_skill_has_its_page_texts() -> None:
    for skill in get_catalog().skills:
        page = skill.page
        assert page.pitch and len(page.facts) >= 3 and page.why
        questions = [entry.question for entry in page.faq]
        assert questions == [
            "What is a session?",
            "What does the SCI measure?",
            "How do specialties count?",
            "Which frameworks are fine?",
        ], skill.id
        assert all(entry.answer for entry in page.faq)


def test_the_parts_add_up_to_100_and_bands_follow_the_floors() -> None:
    assert sum(sci_scale.PART_MAX.values()) == 100
    assert [sci_scale.sci_band(v) for v in (None, 0, 49.99, 50, 69.99, 70, 100)] == [1, 2, 2, 3, 3, 4, 4]
