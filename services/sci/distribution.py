"""The SCI distribution gauge: how many learners' current SCI in each skill falls in each tenth of
the scale (``lemma_sci_learners{skill, range}``).

It is the whole store's distribution, whatever partitions this replica folds: every replica of
sci reports the same numbers, so a dashboard takes ``max by (skill, range)`` across them (a sum
would count each learner once per replica). A background job refreshes it: the current SCI
decays with Freshness and moves with each skill's calibration, so it is worked out from the
stored facts (``scores`` documents, what ``GET /v1/scores`` shows: a claim or evidence) at the
time of the refresh, page by page, giving the loop its turn between pages.

Only Freshness depends on the time, so what the rest of a score comes to (Practice + Proof +
Reliability) is kept per document, as long as the document and its skill's calibration are at the
revisions it was worked out at: a refresh lists the keys and revisions (``Store.scan_revisions``,
no bodies) and reads and scores only what changed since the last one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.sci.documents import CALIBRATIONS, SCORES, facts_from_doc, visible
from services.sci.domain import UNCALIBRATED, Correction, score_from_stats, summarize
from shared.freshness import freshness_points
from shared.metrics import SCI_LEARNERS
from shared.store import Store
from shared.store.base import ABSENT

log = logging.getLogger(__name__)

#: The ranges, as labelled: ``0-10`` holds 0 <= SCI < 10, ..., ``90-100`` holds 90 <= SCI <= 100.
RANGES = tuple(f"{low}-{low + 10}" for low in range(0, 100, 10))
#: Documents read per store call, and keys listed per call.
PAGE = 500
LIST_PAGE = 5000


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


@dataclass(frozen=True, slots=True)
class _Scored:
    """What a refresh keeps of one ``scores`` document, as of its revision and its skill's
    calibration's: the SCI at any time is ``base`` + Freshness then (``score_from_stats``)."""

    rev: str
    calibration: str
    skill: str
    shown: bool
    base: float
    last_evidence_at: datetime | None


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
        self._scored: dict[str, _Scored] = {}
        self._corrections: dict[str, tuple[str, Correction]] = {}
        #: what the last refresh found, (skill, range) -> learners; and how many documents it read
        self.counts: dict[tuple[str, str], int] = {}
        self.read = 0

    async def refresh(self) -> dict[tuple[str, str], int]:
        started = time.perf_counter()
        now = self.clock()
        calibrations = await self._calibrations()
        listed: list[tuple[str, str]] = []
        after: str | None = None
        while page := await self.store.scan_revisions(SCORES, after=after, limit=LIST_PAGE):
            listed += page
            after = page[-1][0]
            await asyncio.sleep(0)
        held = self._scored
        stale = [
            key
            for key, rev in listed
            if (old := held.get(key)) is None
            or old.rev != rev
            or old.calibration != calibrations.get(old.skill, (ABSENT,))[0]
        ]
        scored = {key: held[key] for key, _ in listed if key in held}
        for start in range(0, len(stale), PAGE):
            found = await self.store.read(SCORES, stale[start : start + PAGE])
            for key, stored in found.items():
                skill = stored.doc["skill"]
                rev, correction = calibrations.get(skill, (ABSENT, UNCALIBRATED))
                base, last = _base(stored.doc, correction)
                scored[key] = _Scored(stored.rev, rev, skill, visible(stored.doc), base, last)
            await asyncio.sleep(0)  # the folds, heartbeats and requests get their turn
        self._scored = scored
        self.read = len(stale)
        scores: dict[str, list[float]] = {skill: [] for skill in self.skills}
        for entry in scored.values():
            if entry.shown and entry.skill in scores:
                freshness = round(freshness_points(entry.last_evidence_at, now), 2)
                scores[entry.skill].append(round(entry.base + freshness, 2))
        self.counts = counts_by_range(scores)
        for (skill, skill_range), n in self.counts.items():
            SCI_LEARNERS.labels(self.service, skill, skill_range).set(n)
        log.debug(
            "sci distribution: %d scores, %d read, in %.3f s",
            len(scored),
            len(stale),
            time.perf_counter() - started,
        )
        return self.counts

    async def _calibrations(self) -> dict[str, tuple[str, Correction]]:
        """Each skill's calibration with its revision; read again only when it moved (a large
        skill's is a megabyte and more)."""
        revs = await self.store.revisions(CALIBRATIONS, self.skills)
        moved = [skill for skill, rev in revs.items() if self._corrections.get(skill, (None,))[0] != rev]
        if moved:
            for skill, stored in (await self.store.read(CALIBRATIONS, moved)).items():
                self._corrections[skill] = (stored.rev, Correction.from_doc(stored.doc))
        self._corrections = {skill: held for skill, held in self._corrections.items() if skill in revs}
        return self._corrections


def _base(doc: Mapping[str, Any], correction: Correction) -> tuple[float, datetime | None]:
    """Practice + Proof + Reliability of a ``scores`` document, and its newest evidence."""
    facts = facts_from_doc(doc)
    stats = summarize(facts, correction, doc["learner_id"])
    s = score_from_stats(stats, facts.last_evidence_at or datetime(2000, 1, 1, tzinfo=UTC))
    # not rounded: adding the rounded Freshness to it then rounds exactly as the score does
    return s.practice + s.proof + s.reliability, facts.last_evidence_at
