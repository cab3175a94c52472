"""The SCI distribution gauge: how many learners' current SCI in each skill falls in each tenth of
the scale (``lemma_sci_learners{skill, range}``).

It is the whole store's distribution, whatever partitions this replica folds: every replica of
sci reports the same numbers, so a dashboard takes ``max by (skill, range)`` across them (a sum
would count each learner once per replica). A background job refreshes it: the current SCI
decays with Freshness and moves with each skill's calibration, so it is worked out from the
stored facts (``scores`` documents, what ``GET /v1/scores`` shows: a claim or evidence) at the
time of the refresh, page by page, giving the loop its turn between pages.

Only Freshness depends on the time, so what the rest of a score comes to (Practice + Proof +
Reliability) is kept per document, as long as its facts and its skill's calibration are those it
was worked out with: a refresh scores only what changed since the last one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from services.sci.documents import CALIBRATIONS, SCORES, facts_from_doc, visible
from services.sci.domain import Correction, score_from_stats, summarize
from shared.freshness import freshness_points
from shared.metrics import SCI_LEARNERS
from shared.store import Store

log = logging.getLogger(__name__)

#: The ranges, as labelled: ``0-10`` holds 0 <= SCI < 10, ..., ``90-100`` holds 90 <= SCI <= 100.
RANGES = tuple(f"{low}-{low + 10}" for low in range(0, 100, 10))
#: Documents read per store call.
PAGE = 500


def sci_range(sci: float) -> str:
    """The range label of an SCI (the displayed value, rounded to hundredths as the API shows it)."""
    return RANGES[min(max(int(sci // 10), 0), len(RANGES) - 1)]


def counts_by_range(scores: Mapping[str, Sequence[float]]) -> dict[tuple[str, str], int]:
    """Skill -> SCIs, as (skill, range) -> learners, every range of every skill present (zeros
    included: a range that empties must read 0, not keep its last value)."""
    out = {(skill, r): 0 for skill in scores for r in RANGES}
    for skill, values in scores.items():
        for skill_range, n in Counter(sci_range(v) for v in values).items():
            out[(skill, skill_range)] = n
    return out


#: (facts folded, calibration's ratings) -> (Practice + Proof + Reliability, newest evidence)
_Kept = tuple[tuple[int, int], tuple[float, datetime | None]]


class SciDistribution:
    """Refreshes ``lemma_sci_learners`` from the store (``refresh``, run by a periodic worker)."""

    def __init__(
        self,
        store: Store,
        skills: Sequence[str],
        *,
        service: str = "sci",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.skills = list(skills)
        self.service = service
        self.clock = clock
        self._kept: dict[str, _Kept] = {}
        #: what the last refresh found, (skill, range) -> learners
        self.counts: dict[tuple[str, str], int] = {}

    async def refresh(self) -> dict[tuple[str, str], int]:
        started = time.perf_counter()
        now = self.clock()
        corrections = {
            skill: Correction.from_doc(doc)
            for skill, doc in (await self.store.get_many(CALIBRATIONS, self.skills)).items()
        }
        scores: dict[str, list[float]] = {skill: [] for skill in self.skills}
        kept: dict[str, _Kept] = {}
        after: str | None = None
        while page := await self.store.scan(SCORES, after=after, limit=PAGE):
            after = page[-1][0]
            for key, doc in page:
                if not visible(doc) or doc["skill"] not in scores:
                    continue
                correction = corrections.get(doc["skill"])
                stamp = (int(doc["facts"]), correction.ratings if correction else -1)
                held = self._kept.get(key)
                base, last = held[1] if held is not None and held[0] == stamp else _base(doc, correction)
                kept[key] = (stamp, (base, last))
                scores[doc["skill"]].append(round(base + round(freshness_points(last, now), 2), 2))
            await asyncio.sleep(0)  # the folds, heartbeats and requests get their turn
        self._kept = kept
        self.counts = counts_by_range(scores)
        for (skill, skill_range), n in self.counts.items():
            SCI_LEARNERS.labels(self.service, skill, skill_range).set(n)
        log.debug("sci distribution: %d scores in %.3f s", len(kept), time.perf_counter() - started)
        return self.counts


def _base(doc: Mapping[str, Any], correction: Correction | None) -> tuple[float, datetime | None]:
    """Practice + Proof + Reliability of a ``scores`` document, and its newest evidence: the SCI
    at any time is this plus Freshness then (``score_from_stats``)."""
    facts = facts_from_doc(doc)
    stats = summarize(facts, correction or Correction.from_doc(None), doc["learner_id"])
    at = facts.last_evidence_at or datetime(2000, 1, 1, tzinfo=UTC)
    s = score_from_stats(stats, at)
    # not rounded: adding the rounded Freshness to it then rounds exactly as the score does
    return s.practice + s.proof + s.reliability, facts.last_evidence_at
