"""Ratings as integer micro-points of the 1..5 scale, so every sum the score keeps is exact."""

from __future__ import annotations

MICRO = 1_000_000


def to_micro(mean: float) -> int:
    """A mean rubric score (1..5) in integer micro-points."""
    return round(mean * MICRO)
