"""The query parameter every score reader takes for the time Freshness decays to.

``freshness_at`` only moves the clock Freshness decays to: it is not a view of the past (later
facts and today's calibration still count; the score at a past time is audited from the log,
``lemma replay sci --as-of``). It was called ``as_of``, which promised a past view; ``as_of``
still works with the same meaning, deprecated (a ``Deprecation`` header says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Response

from shared.freshness import utc
from shared.problems import Problem

FreshnessAt = Annotated[
    datetime | None,
    Query(
        description="ISO 8601 time to decay Freshness to (default now; naive means UTC). Every stored "
        "fact and today's calibration still count: for the score at a past time, audit the log "
        "(`lemma replay sci --as-of`)"
    ),
]
DeprecatedAsOf = Annotated[
    datetime | None,
    Query(
        deprecated=True,
        description="The former name of `freshness_at`, with the same meaning; deprecated because it "
        "is not a view of the past",
    ),
]
#: When ``as_of`` was deprecated (RFC 9745 ``Deprecation``: a Unix time), and where to read why.
AS_OF_DEPRECATED = "@1796428800"  # 2026-12-05
AS_OF_LINK = '</docs>; rel="deprecation"'


def freshness_time(freshness_at: datetime | None, as_of: datetime | None, response: Response) -> datetime:
    """The time Freshness decays to, in UTC; 422 for a time UTC cannot hold (e.g. year 1 at
    +01:00) or for both names given different times. ``as_of`` marks the answer deprecated."""
    if as_of is not None:
        response.headers["Deprecation"] = AS_OF_DEPRECATED
        response.headers["Link"] = AS_OF_LINK
        if freshness_at is not None and _same(freshness_at) != _same(as_of):
            raise Problem(
                422, "as_of is the deprecated name of freshness_at: give one of them, or the same time"
            )
    when = freshness_at if freshness_at is not None else as_of
    name = "freshness_at" if freshness_at is not None else "as_of"
    if when is None:
        return datetime.now(UTC)
    try:
        return utc(when)
    except (OverflowError, ValueError) as error:
        raise Problem(422, f"{name} {when.isoformat()} is outside the range of UTC times") from error


def _same(moment: datetime) -> datetime | str:
    """A time to compare by (naive means UTC); one UTC cannot hold compares as its text."""
    try:
        return utc(moment)
    except (OverflowError, ValueError):
        return moment.isoformat()
