"""The calibration job: a skill's rater calibration, recomputed from every rating stored in it.

Every ``LEMMA_SCI_CALIBRATION_INTERVAL_S`` the job looks at each catalog skill. A skill is
calibrated once it has ``LEMMA_SCI_CALIBRATION_MIN_RATINGS`` ratings, then again when they have
grown by 2%, or by any amount once the stored calibration is a minute old (``due``). The job
reads the skill's whole rating set, runs ``calibrate`` on it in the service's worker process
(a pure, deterministic function of the set; ``services.sci.offload`` says why not a thread), and
then, under the replica's write lock, finds the senior learners and re-scores every learner with
ratings in the skill (in the worker process too) and, in one atomic write, stores
``calibrations/{skill}`` (version, digest of the rating set, ratings, per-rater bias and weight,
prior, seniors, when), emits SciUpdated (and TierChanged) for every score that moved and
announces the calibration as RatersCalibrated parts (``announcements``): the biases and all else
the score uses, so the log says which calibration was in force when (``lemma replay sci
--as-of``). A calibration is only ever replaced by one over more ratings, so
``SciUpdated.calibration`` only grows. The
events' ids derive from the skill, the digest, the learner and the event type (a score), or
from the skill, the digest and the part (an announcement).
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from prometheus_client import Gauge

from services.sci.calibration import Rating, calibrate, discounted_raters
from services.sci.domain import Correction, seniors
from services.sci.offload import ProcessOffload
from services.sci.projection import (
    CALIBRATIONS,
    RECEIVED,
    SCORES,
    facts_at,
    received_prefix,
    rescored,
    score_key,
)
from services.sci.rubric_calibration import residuals_of
from shared.events.envelope import deterministic_id, new_event
from shared.events.payloads import RATERS_PER_PART, RatersCalibrated, SciUpdated, TierChanged
from shared.projection.fold import Doc
from shared.projection.runtime import ProjectionRuntime
from shared.service import ServiceContext
from shared.store import Change, Store
from shared.store.base import ABSENT, Conflict

RATERS_DISCOUNTED = Gauge(
    "lemma_raters_discounted",
    "Raters the skill's last calibration discounts: careless (one rating for everyone) or 1.5 "
    "points or more from their peers",
    ["service", "skill"],
)

COLLUSION_SUSPECTS = Gauge(
    "lemma_collusion_suspects",
    "Learners in pairs or rings the skill's last calibration suspects of rating each other up "
    "(their ratings of each other are discounted; GET /ops/collusion lists them)",
    ["service", "skill"],
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

GROWTH = 0.02
MAX_AGE_S = 60.0
FULL_LOOK_EVERY = 6
PAGE = 1000
CHUNK = 1000  # documents read, or events built, between two yields to the event loop


async def ratings_in(store: Store, skill: str) -> list[Rating]:
    """Every rating received in ``skill``, from the ``received`` documents."""
    prefix = received_prefix(skill)
    ratings: list[Rating] = []
    after: str | None = None
    while page := await store.scan(RECEIVED, prefix, after=after, limit=PAGE):
        for key, doc in page:
            learner = key[len(prefix) :].split("/", 1)[0]
            ratings += [
                Rating(
                    ratee_id=learner,
                    rater_id=item["rater_id"],
                    rating_id=evidence_id,
                    value=item["mean"],
                    residuals=residuals_of(item["scores"]) if "scores" in item else (),
                )
                for evidence_id, item in doc["items"].items()
            ]
        after = page[-1][0]
        await asyncio.sleep(0)  # a store may answer without suspending: let the loop run between pages
    return ratings


def due(ratings: int, calibrated: int, *, minimum: int, age_s: float | None, growth: float = GROWTH) -> bool:
    """Whether to recalibrate over ``ratings`` when the stored calibration covers ``calibrated``.

    Never below ``minimum`` ratings (on a handful of ratings bias and noise are not
    identifiable: the estimates degenerate and would distort scores). Then on ``growth`` (2%),
    or on any growth once the stored calibration is ``MAX_AGE_S`` old (``age_s``; ``None``: none
    yet), so a rebuilt or a quiet skill ends calibrated over its whole rating set. (``growth`` is
    a parameter for the quality bench, which replays the job at a coarser step.)
    """
    if ratings < minimum or ratings <= calibrated:
        return False
    grown = ratings - calibrated >= max(1, math.ceil(growth * calibrated))
    return grown or age_s is None or age_s >= MAX_AGE_S


async def recalibrate(
    ctx: ServiceContext, skill: str, offload: ProcessOffload, runtime: ProjectionRuntime | None = None
) -> bool:
    """Recalibrate ``skill`` if due; returns whether a new calibration was stored.

    The loop only reads and writes; ``calibrate`` and the re-scoring run in ``offload``'s
    process, and every long read or build gives the loop back between chunks, so the
    consumer's heartbeats and the HTTP routes are never held for long.
    """
    stored = await ctx.store.get(CALIBRATIONS, skill)
    old = Correction.from_doc(stored)
    now = datetime.now(UTC)
    age_s = (now - datetime.fromisoformat(stored["calibrated_at"])).total_seconds() if stored else None
    ratings = await ratings_in(ctx.store, skill)
    # Each rating is one item of one received document, keyed by its id: the list has no duplicates.
    if not due(len(ratings), old.ratings, minimum=ctx.settings.sci_calibration_min_ratings, age_s=age_s):
        return False
    calibration = await offload.run(calibrate, ratings)
    del ratings
    RATERS_DISCOUNTED.labels(ctx.name, skill).set(len(discounted_raters(calibration)))
    COLLUSION_SUSPECTS.labels(ctx.name, skill).set(len(calibration.collusion.learners))
    new = calibration.correction()
    async with ctx.lock:
        read = (await ctx.store.read(CALIBRATIONS, [skill])).get(skill)
        current = Correction.from_doc(read.doc if read else None)
        if new.ratings <= current.ratings:
            return False  # another run got there first
        # Learners first rated since the scan above were scored with ``current``: include them.
        ratees = {r.ratee_id for r in await ratings_in(ctx.store, skill)}
        # The write expects the calibration and every score it re-scored as read: another
        # replica's job or fold that wrote one meanwhile makes it a conflict, tried at a later tick.
        expect = {(CALIBRATIONS, skill): read.rev if read else ABSENT}
        ordered = await _scores_of(ctx.store, sorted(score_key(learner, skill) for learner in ratees), expect)
        new, payloads = await offload.run(_rescore, ordered, current, new)
        at = datetime.now(UTC)
        events = []
        for start in range(0, len(payloads), CHUNK):
            events += [
                new_event(
                    payload,
                    source=ctx.name,
                    time=at,
                    id=deterministic_id(
                        "sci-calibration", skill, new.digest, payload.learner_id, type(payload).__name__
                    ),
                )
                for payload in payloads[start : start + CHUNK]
            ]
            await asyncio.sleep(0)
        events += [
            new_event(part, source=ctx.name, time=at, id=announcement_id(skill, new.digest, part.part))
            for part in announcements(skill, new)
        ]
        doc = {**new.to_doc(), "calibrated_at": at.isoformat()}
        try:
            await ctx.commit([Change(CALIBRATIONS, skill, doc)], events, expect=expect)
        except Conflict:
            log.info("calibrating %s met a concurrent write; trying again at the next tick", skill)
            return False
        if runtime is not None:
            runtime.changed([(CALIBRATIONS, skill)])  # the fold reads it again at its next batch
    log.info(
        "calibrated %s over %d ratings (%s, digest %s): %d scores moved",
        skill,
        new.ratings,
        new.version,
        new.digest,
        sum(1 for p in payloads if isinstance(p, SciUpdated)),
    )
    return True


async def _scores_of(
    store: Store, keys: list[str], revisions: dict[tuple[str, str], str] | None = None
) -> list[Doc]:
    """The score documents under ``keys`` (sorted) that hold ratings, in order, a chunk at a time;
    ``revisions`` gets the revision of each key read (``ABSENT`` for none)."""
    ordered: list[Doc] = []
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found = await store.read(SCORES, chunk)
        if revisions is not None:
            revisions.update(((SCORES, k), found[k].rev if k in found else ABSENT) for k in chunk)
        ordered += [found[k].doc for k in chunk if k in found and found[k].doc["raters"]]
        await asyncio.sleep(0)
    return ordered


async def calibrate_quietly(
    store: Store, skills: list[str], *, minimum: int, processes: int = 1
) -> list[str]:
    """Calibrate every skill of a version being rebuilt and store its ``calibrations/{skill}``,
    announcing nothing (the rebuild emits nothing until it is live). The same calibration the job
    would compute over the same ratings, so the new version reads calibrated from its first
    read. ``processes`` > 1: the skills are calibrated side by side in spawned processes (a
    rebuild's last step, where nothing else runs). Returns the skills calibrated."""
    due: dict[str, list[Rating]] = {}
    for skill in sorted(skills):
        ratings = await ratings_in(store, skill)
        if len(ratings) >= minimum:
            due[skill] = ratings
    if processes > 1 and len(due) > 1:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(processes, len(due)), mp_context=spawn) as pool:
            loop = asyncio.get_running_loop()
            # the largest first: it takes longest
            order = sorted(due, key=lambda skill: -len(due[skill]))
            found = await asyncio.gather(
                *(loop.run_in_executor(pool, calibrate, due[skill]) for skill in order)
            )
        calibrations = dict(zip(order, found, strict=True))
    else:
        calibrations = {skill: calibrate(ratings) for skill, ratings in due.items()}
    for skill, ratings in due.items():
        new = calibrations[skill].correction()
        ratees = {r.ratee_id for r in ratings}
        ordered = await _scores_of(store, sorted(score_key(learner, skill) for learner in ratees))
        new = replace(new, senior=seniors((facts_at(doc) for doc in ordered), new))
        doc = {**new.to_doc(), "calibrated_at": datetime.now(UTC).isoformat()}
        await store.write([Change(CALIBRATIONS, skill, doc)])
    return sorted(due)


def announcement_id(skill: str, digest: str, part: int) -> str:
    """The id of one RatersCalibrated part: the same calibration announces the same events."""
    return deterministic_id("sci-raters", skill, digest, str(part))


def announcements(
    skill: str, correction: Correction, per_part: int = RATERS_PER_PART
) -> list[RatersCalibrated]:
    """A calibration as RatersCalibrated parts of at most ``per_part`` raters (sorted by id), each
    with their bias, weight and severity per rubric dimension, and at most ``per_part`` senior
    learners; one part when it knows
    no rater, so every calibration is announced. Every part carries the default weight and the
    prior, so the log holds all the score used (``services.sci.calibration_log`` reads it back).
    A rater whose bias or weight is not a finite number (no JSON for it) is left out: they read
    as unbiased, with the default weight."""
    raters = sorted(
        r for r, b in correction.bias.items() if math.isfinite(b) and math.isfinite(correction.weight_of(r))
    )
    chunks = [raters[i : i + per_part] for i in range(0, len(raters), per_part)]
    senior = sorted(correction.senior)
    seniors_of = [senior[i : i + per_part] for i in range(0, len(senior), per_part)]
    pairs = sorted(correction.collusive)
    pairs_of = [pairs[i : i + per_part] for i in range(0, len(pairs), per_part)]
    parts = max(len(chunks), len(seniors_of), len(pairs_of), 1)
    prior = (float(correction.prior.mean), float(correction.prior.weight))
    return [
        RatersCalibrated(
            skill=skill,
            version=correction.version,
            digest=correction.digest,
            ratings=correction.ratings,
            part=n,
            parts=parts,
            bias={rater: float(correction.bias[rater]) for rater in _nth(chunks, n)},
            weight={rater: float(correction.weight_of(rater)) for rater in _nth(chunks, n)},
            default_weight=float(correction.default_weight),
            prior=prior,
            senior=_nth(seniors_of, n),
            collusive=_nth(pairs_of, n),
            severity={r: dict(correction.severity[r]) for r in _nth(chunks, n) if r in correction.severity},
            rubric_prior=correction.rubric_prior,
        )
        for n in range(parts)
    ]


def _nth(chunks: list[list[_T]], n: int) -> list[_T]:
    return chunks[n] if n < len(chunks) else []


def _rescore(
    ordered: list[Doc], current: Correction, new: Correction
) -> tuple[Correction, list[SciUpdated | TierChanged]]:
    """The new correction with its seniors, and what it announces (run in the worker process)."""
    new = replace(new, senior=seniors((facts_at(doc) for doc in ordered), new))
    return new, rescored(ordered, current, new)


class Recalibrator:
    """The periodic tick. A skill is looked at when its ``received`` documents changed in number,
    and every ``FULL_LOOK_EVERY`` ticks anyway (a rating can join an existing document, and a
    calibration that was not due may become due by age)."""

    def __init__(
        self,
        ctx: ServiceContext,
        skills: list[str],
        offload: ProcessOffload,
        runtime: ProjectionRuntime | None = None,
    ) -> None:
        """``runtime``: the fold, told of each calibration stored."""
        self.ctx = ctx
        self.runtime = runtime
        self.skills = sorted(skills)
        self.offload = offload
        self._seen: dict[str, int] = {}
        self._ticks = 0

    async def tick(self) -> None:
        self._ticks += 1
        full = self._ticks % FULL_LOOK_EVERY == 0
        for skill in self.skills:
            try:
                count = await self.ctx.store.count(RECEIVED, received_prefix(skill))
                if self._seen.get(skill) == count and not full:
                    continue
                await recalibrate(self.ctx, skill, self.offload, self.runtime)
                self._seen[skill] = count
            except Exception:  # one skill failing must not hold the others back
                log.exception("calibrating %s failed; trying again at the next tick", skill)
