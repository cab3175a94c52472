"""A simulated log as records on their topics, and the calibrations a job would hold over it."""

from __future__ import annotations

import zlib

from bench.replay_log import log_events
from services.sci.calibration import calibrate
from services.sci.projection import CALIBRATIONS, SciProjection
from services.sci.recalibration import ratings_in
from shared.catalog import get_catalog
from shared.events import encode
from shared.projection.runtime import ProjectionRuntime
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec

SKILLS = [s.id for s in get_catalog().skills]


def log(events: int, seed: int) -> list[Rec]:
    """The events as records in three partitions of their topics, keyed as the services key them."""
    out: list[Rec] = []
    offsets: dict[tuple[str, int], int] = {}
    for event in log_events(events, seed):
        key = event.key.encode()
        at = (event.topic, zlib.crc32(key) % 3)
        offsets[at] = offsets.get(at, -1) + 1
        out.append(Rec(event.topic, at[1], offsets[at], key, encode(event)))
    return out


LOG = log(2500, seed=5)
SCI_LOG = [r for r in LOG if r.topic in ("lemma.evidence.v1", "lemma.sessions.v1", "lemma.passport.v1")]
EVIDENCE_LOG = [r for r in LOG if r.topic == "lemma.sessions.v1"]


_CALIBRATIONS: list[Change] = []


async def calibrations() -> list[Change]:
    """Every skill's calibration over the whole log, as the job stores it."""
    if _CALIBRATIONS:
        return _CALIBRATIONS
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(SciProjection(SKILLS), store, service="test", emit=False)
    await runtime.handle(SCI_LOG)
    for skill in SKILLS:
        ratings = await ratings_in(store, skill)
        if ratings:
            _CALIBRATIONS.append(Change(CALIBRATIONS, skill, calibrate(ratings).correction().to_doc()))
    await store.close()
    return _CALIBRATIONS
