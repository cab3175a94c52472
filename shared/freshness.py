"""Freshness decay: the one rule the sci service scores with and every reader shows scores with.

Freshness is at most 15 points and decays exponentially from the newest evidence, with a time
constant of 60 days (it halves about every 42 days). It lives here, not in the sci service,
because a reader (the passport) must show today's Freshness from the last ``SciUpdated``
without a new event arriving: both sides must apply the same formula.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

FRESHNESS_MAX = 15.0
FRESHNESS_TAU_DAYS = 60.0


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def days_between(earlier: datetime, later: datetime) -> float:
    """Days from ``earlier`` to ``later``; never negative (an as-of before the evidence is 0)."""
    return max(0.0, (utc(later) - utc(earlier)).total_seconds() / 86400.0)


def freshness_points(last_evidence_at: datetime | None, as_of: datetime) -> float:
    """Freshness at ``as_of`` (unrounded): 15 x exp(-days since the newest evidence / 60)."""
    if last_evidence_at is None:
        return 0.0
    return FRESHNESS_MAX * math.exp(-days_between(last_evidence_at, as_of) / FRESHNESS_TAU_DAYS)
