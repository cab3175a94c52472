"""The evidence trail of a passport, newest first, with calibrated ratings (thin I/O over the store).

Pages are read from ``passport_trail`` with one descending scan of the learner's prefix and one
``get_many`` of the raters' biases (``rater_bias``, from sci's RatersCalibrated). A page's
``next_before`` is the last key it returned; passed back as ``before`` it gives the next, older
page (the scan is strictly past it). The HTML pages and the JSON route both call
``evidence_trail``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.passport.domain import calibrated
from services.passport.projection import RATER_BIAS, TRAIL, bias_key, trail_prefix
from shared.store import Store

MAX_LIMIT = 50


class BadCursor(ValueError):
    """A ``before`` that is not a key of this learner's trail (the route answers 422)."""


@dataclass(frozen=True)
class TrailItem:
    """One evidence item. ``rating`` is the raw mean rubric score (1..5, rounded to 2 decimals);
    ``calibrated`` is it less the rater's bias, held to 1..5 (``domain.calibrated``);
    ``calibrated_by`` says whether a bias was known for the rater in the skill (if not,
    ``calibrated`` is the rating itself)."""

    evidence_id: str
    skill: str
    specialty: str | None
    format: str | None
    occurred_at: datetime
    rating: float
    calibrated: float
    calibrated_by: bool


@dataclass(frozen=True)
class TrailPage:
    """``items`` newest first; ``next_before`` is the ``before`` of the next, older page (``None``
    when there is no more)."""

    items: list[TrailItem]
    next_before: str | None


def check_before(learner_id: str, before: str | None) -> None:
    """Raise ``BadCursor`` unless ``before`` is absent or a key in the learner's trail."""
    if before is not None and not before.startswith(trail_prefix(learner_id)):
        raise BadCursor(f"before {before!r} is not a position in the evidence trail of {learner_id!r}")


async def evidence_trail(
    store: Store, learner_id: str, *, before: str | None = None, limit: int = 10
) -> TrailPage:
    """One page of ``learner_id``'s evidence trail, older than ``before`` (a ``next_before``).

    ``limit`` is held to 1..``MAX_LIMIT``. Raises ``BadCursor`` for a ``before`` outside the
    learner's trail. A learner without evidence (or unknown) gets an empty page.
    """
    check_before(learner_id, before)
    size = max(1, min(MAX_LIMIT, limit))
    # One row past the page, so next_before is only given when there is more.
    rows = await store.scan(TRAIL, trail_prefix(learner_id), after=before, limit=size + 1, descending=True)
    page = rows[:size]
    wanted = {bias_key(doc["skill"], doc["rater_id"]) for _, doc in page}
    biases = await store.get_many(RATER_BIAS, sorted(wanted)) if wanted else {}
    items = [_item(doc, biases.get(bias_key(doc["skill"], doc["rater_id"]))) for _, doc in page]
    return TrailPage(items=items, next_before=page[-1][0] if len(rows) > size else None)


def _item(doc: dict[str, Any], bias_doc: dict[str, Any] | None) -> TrailItem:
    rating = float(doc["rating"])
    bias = None if bias_doc is None else float(bias_doc["bias"])
    return TrailItem(
        evidence_id=doc["evidence_id"],
        skill=doc["skill"],
        specialty=doc.get("specialty"),
        format=doc.get("format"),
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        rating=round(rating, 2),
        calibrated=calibrated(rating, bias),
        calibrated_by=bias is not None,
    )
