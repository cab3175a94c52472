"""The calibration job: a skill's rater calibration, recomputed from every rating stored in it.

Every ``LEMMA_SCI_CALIBRATION_INTERVAL_S`` the job looks at each catalog skill. When the number
of ratings has grown by ``GROWTH`` (2%, at least one rating) since the stored calibration, it
reads the skill's whole rating set, runs ``calibrate`` on it in a worker thread (it is a pure,
deterministic function of the set, seconds for tens of thousands of ratings), and then, under
the service's write lock, stores ``calibrations/{skill}`` (version, digest of the rating set,
ratings, per-rater bias and weight, prior) and emits SciUpdated for every learner whose score
moved, in one atomic write. A calibration is only ever replaced by one over more ratings, so
``SciUpdated.calibration`` only grows.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime

from services.sci.calibration import Rating, calibrate
from services.sci.domain import Correction, seniors
from services.sci.projection import (
    CALIBRATIONS,
    RECEIVED,
    SCORES,
    facts_at,
    received_prefix,
    rescored,
    score_key,
)
from shared.events.envelope import deterministic_id, new_event
from shared.service import ServiceContext
from shared.store import Change, Store

log = logging.getLogger(__name__)

GROWTH = 0.02
PAGE = 1000


async def ratings_in(store: Store, skill: str) -> list[Rating]:
    """Every rating received in ``skill``, from the ``received`` documents."""
    prefix = received_prefix(skill)
    ratings: list[Rating] = []
    after: str | None = None
    while page := await store.scan(RECEIVED, prefix, after=after, limit=PAGE):
        for key, doc in page:
            learner = key[len(prefix) :].split("/", 1)[0]
            ratings += [
                Rating(ratee_id=learner, rater_id=item["rater_id"], rating_id=evidence_id, value=item["mean"])
                for evidence_id, item in doc["items"].items()
            ]
        after = page[-1][0]
    return ratings


def due(ratings: int, calibrated: int) -> bool:
    """Whether ``ratings`` have grown enough past the ``calibrated`` count to recalibrate."""
    return ratings > calibrated and ratings - calibrated >= max(1, math.ceil(GROWTH * calibrated))


async def recalibrate(ctx: ServiceContext, skill: str) -> bool:
    """Recalibrate ``skill`` if due; returns whether a new calibration was stored."""
    stored = await ctx.store.get(CALIBRATIONS, skill)
    old = Correction.from_doc(stored)
    ratings = await ratings_in(ctx.store, skill)
    if not due(len(set(ratings)), old.ratings):
        return False
    calibration = await asyncio.to_thread(calibrate, ratings)
    new = calibration.correction()
    ratees = sorted({r.ratee_id for r in ratings})
    async with ctx.lock:
        current = Correction.from_doc(await ctx.store.get(CALIBRATIONS, skill))
        if new.ratings <= current.ratings:
            return False  # another run got there first
        docs = await ctx.store.get_many(SCORES, [score_key(learner, skill) for learner in ratees])
        ordered = [docs[k] for k in sorted(docs)]
        new = replace(new, senior=seniors((facts_at(doc) for doc in ordered if doc["raters"]), new))
        payloads = rescored(ordered, current, new)
        now = datetime.now(UTC)
        events = [
            new_event(
                payload,
                source=ctx.name,
                time=now,
                id=deterministic_id("sci-calibration", skill, new.digest, str(index)),
            )
            for index, payload in enumerate(payloads)
        ]
        await ctx.commit([Change(CALIBRATIONS, skill, new.to_doc())], events)
    log.info(
        "calibrated %s over %d ratings (%s, digest %s): %d scores moved",
        skill,
        new.ratings,
        new.version,
        new.digest,
        sum(1 for p in payloads if type(p).__name__ == "SciUpdated"),
    )
    return True


class Recalibrator:
    """The periodic tick: a skill is looked at only when its ``received`` documents changed in number."""

    def __init__(self, ctx: ServiceContext, skills: list[str]) -> None:
        self.ctx = ctx
        self.skills = sorted(skills)
        self._seen: dict[str, int] = {}

    async def tick(self) -> None:
        for skill in self.skills:
            count = await self.ctx.store.count(RECEIVED, received_prefix(skill))
            if self._seen.get(skill) == count:
                continue
            await recalibrate(self.ctx, skill)
            self._seen[skill] = count
