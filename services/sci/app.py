"""Composition root of the sci service. A test swaps the settings or the store."""

from __future__ import annotations

import os

from fastapi import FastAPI

from services.sci import api, consumers, ops_api, rater_api
from services.sci.announce import changed_scores
from services.sci.distribution import SciDistribution
from services.sci.offload import ProcessOffload
from services.sci.projection import CALIBRATIONS, SciProjection
from services.sci.recalibration import Recalibrator, calibrate_quietly
from shared.catalog import get_catalog
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store
from shared.worker import PeriodicWorker

NAME = "sci"
#: Fields ``lemma replay sci --verify`` does not compare: when the job ran, not what it found.
VERIFY_IGNORE = {CALIBRATIONS: frozenset({"calibrated_at"})}
DEFAULT_PORT = 8105


def projection(settings: Settings) -> SciProjection:
    """The service's projection (a rebuild folds the same, ``lemma replay``)."""
    return SciProjection(skill.id for skill in get_catalog().skills)


async def finish_rebuild(store: Store, settings: Settings) -> None:
    """What a rebuild of the sci projection does before it hands over: calibrate each skill of
    the new version, quietly (``lemma replay``)."""
    skills = [skill.id for skill in get_catalog().skills]
    cores = os.cpu_count() or 1
    processes = min(settings.rebuild_workers or cores, cores)  # a skill a core at most: one takes longest
    await calibrate_quietly(store, skills, minimum=settings.sci_calibration_min_ratings, processes=processes)


def bootstrap(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    skills = [skill.id for skill in get_catalog().skills]
    runtime = ctx.runtime(projection(ctx.settings))
    ctx.announcers[runtime.name] = changed_scores  # what a rebuilt version announces going live
    offload = ProcessOffload()
    recalibrator = Recalibrator(ctx, skills, offload, runtime)
    distribution = SciDistribution(ctx.store, skills, service=NAME)
    return create_app(
        ctx,
        title="Lemma sci",
        description="SCI per learner and skill: the four parts, the tier and why.",
        routers=[api.router, rater_api.router, ops_api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
        workers=[
            PeriodicWorker("sci-calibration", ctx.settings.sci_calibration_interval_s, recalibrator.tick),
            PeriodicWorker(
                "sci-distribution", ctx.settings.sci_distribution_interval_s, distribution.refresh
            ),
            offload,  # stopped after the job that uses it
        ],
    )
