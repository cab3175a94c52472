"""What a learner's SCI was at a past time, from the log alone (``lemma replay sci --as-of``).

Read-only: the facts the log held at that time (``services.sci.log_scope``: each partition up to
its first record stamped later) are folded in memory by the service's own fold, and scored by
the route's own code (``services.sci.api.score_detail``) under the calibration in force then:
the one over the most ratings whose RatersCalibrated parts were all logged by that time
(``services.sci.calibration_log``), not the store's. Nothing is written, nothing is emitted.

Each score is given twice: with Freshness at the audited time (the SCI on that day), and as the
service last announced it by then (Freshness at the newest fact), which is the SciUpdated a
reader held at that time, unless a calibration logged after the newest fact re-scored it.

A calibration logged before its parts carried weights, prior and seniors is recomputed from the
ratings the log held when it was logged, as a rebuild calibrates (``calibrate_quietly``); when the
digest of that rating set is the logged one it is the same calibration, else the logged biases
are kept with the recomputed rest, and the audit says it is approximate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from aiokafka import TopicPartition

from services.sci.api import ScoreDetail, score_detail
from services.sci.calibration_log import CalibrationLog, LoggedCalibration
from services.sci.domain import UNCALIBRATED, Correction, Score
from services.sci.log_scope import Scope, ScopeFold, fold_scope
from services.sci.projection import CALIBRATIONS, current_score, visible
from services.sci.recalibration import calibrate_quietly
from shared.events.envelope import decode
from shared.events.payloads import RatersCalibrated
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.log_window import Record, Window, logged_at, partition_of, read, window
from shared.settings import Settings
from shared.store import Change
from shared.store.sqlite import SqliteStore


@dataclass(frozen=True)
class Calibration:
    """The calibration a score was audited under, and how it was had from the log."""

    logged: LoggedCalibration
    #: "logged" (every part carried it all), "recomputed" (from the ratings, same digest) or
    #: "approximate" (logged biases, the rest recomputed from a rating set of another digest)
    source: str
    recomputed_digest: str = ""


@dataclass(frozen=True)
class Audited:
    """One learner's score in one skill, as of the audited time."""

    detail: ScoreDetail  # Freshness at the audited time
    announced: Score | None  # as the service last announced it (Freshness at the newest fact)
    facts: int
    no_shows: int
    ratings: int
    claimed: bool
    newest_fact_at: datetime | None  # the latest event time folded (the score's as-of)
    calibration: Calibration | None


@dataclass
class Audit:
    scope: Scope
    until: datetime | None
    evaluated_at: datetime
    # large: kept out of the repr (asyncio formats the result of the task it ran)
    scores: list[Audited] = field(default_factory=list, repr=False)
    calibrations: dict[str, Calibration | None] = field(default_factory=dict, repr=False)
    folded: int = 0
    refused: list[str] = field(default_factory=list, repr=False)
    partitions: dict[str, list[int]] = field(default_factory=dict)
    read: int = 0  # records read from the log
    decoded: int = 0  # records kept by the filters and decoded
    seconds: float = 0.0


async def audit(
    settings: Settings,
    scope: Scope,
    until: datetime | None,
    *,
    min_ratings: int | None = None,
    on_batch: Callable[[Window], None] = lambda _: None,
) -> Audit:
    """The scores of ``scope`` as of ``until`` (None: now), from the log."""
    started = time.monotonic()
    evaluated_at = until or datetime.now(UTC)
    done = await fold_scope(settings, scope, until, on_batch=on_batch)
    docs = [doc for doc in done.scores() if visible(doc)]
    skills = sorted({doc["skill"] for doc in docs})
    logged = await logged_calibrations(settings, skills, until)
    minimum = settings.sci_calibration_min_ratings if min_ratings is None else min_ratings
    calibrations: dict[str, Calibration | None] = {}
    for skill in skills:
        found = logged.in_force(skill)
        calibrations[skill] = None if found is None else await _usable(settings, found, minimum)
    result = Audit(
        scope,
        until,
        evaluated_at,
        calibrations=calibrations,
        folded=done.folded.folded,
        refused=[f"{t}[{p}]@{o}: {why}" for (t, p, o), why in done.folded.refused],
        partitions={t: sorted(ps) for t, ps in done.partitions.items()},
        read=done.read,
        decoded=done.decoded,
    )
    for doc in docs:
        used = calibrations[doc["skill"]]
        correction = used.logged.correction if used else UNCALIBRATED
        items = done.items(doc["learner_id"], doc["skill"])
        result.scores.append(
            Audited(
                detail=score_detail(doc, items, correction, evaluated_at),
                announced=current_score(doc, correction) if doc["raters"] else None,
                facts=int(doc["facts"]),
                no_shows=int(doc["no_shows"]),
                ratings=len(items),
                claimed=bool(doc["claimed"]),
                newest_fact_at=datetime.fromisoformat(doc["as_of"]) if doc["as_of"] else None,
                calibration=used,
            )
        )
    result.seconds = time.monotonic() - started
    return result


async def logged_calibrations(
    settings: Settings, skills: list[str], until: datetime | None
) -> CalibrationLog:
    """The RatersCalibrated parts of ``skills`` the log held at ``until``: only the partitions of
    ``lemma.sci.v1`` their keys hash to, and only records keyed by one of them are decoded."""
    log = CalibrationLog()
    if not skills:
        return log
    topic = settings.topic(Topic.SCI)
    kafka = KafkaConnection.of(settings)
    count = len(await partitions_of(kafka, topic))
    if not count:
        return log
    partitions = {TopicPartition(topic, partition_of(skill, count)) for skill in skills}
    keys = {skill.encode() for skill in skills}

    def keep(record: Record) -> bool:
        return record.key in keys and b"RatersCalibrated" in (record.value or b"")

    span = await window(kafka, partitions, until)
    async for batch in read(kafka, span, keep):
        for record in batch:
            event = decode(record.value or b"")
            if isinstance(event.data, RatersCalibrated):
                log.add(event.data, logged_at(record))
    return log


async def _usable(settings: Settings, found: LoggedCalibration, minimum: int) -> Calibration:
    if found.whole:
        return Calibration(found, "logged")
    return await recompute(settings, found, minimum)


async def recompute(settings: Settings, found: LoggedCalibration, minimum: int) -> Calibration:
    """A calibration logged with its biases only, recomputed from the skill's ratings the log held
    when it was logged, by the code a rebuild calibrates with, in a throw-away store."""
    skill = found.skill
    folded: ScopeFold = await fold_scope(settings, Scope(skill=skill), found.logged_at)
    store = SqliteStore(":memory:")
    try:
        await store.write([Change(c, k, d) for (c, k), d in sorted(folded.folded.docs.items())])
        await calibrate_quietly(store, [skill], minimum=min(minimum, found.correction.ratings))
        again = Correction.from_doc(await store.get(CALIBRATIONS, skill))
    finally:
        await store.close()
    if again.digest == found.correction.digest:
        return Calibration(replace(found, correction=again), "recomputed", again.digest)
    logged = found.correction
    mixed = replace(
        again, bias=logged.bias, ratings=logged.ratings, digest=logged.digest, version=logged.version
    )
    return Calibration(replace(found, correction=mixed), "approximate", again.digest)
