"""Composition root of the sessions service. A test swaps the settings or the store."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.sessions import api, consumers
from services.sessions.comments import CommentPurge
from services.sessions.projection import SessionsProjection
from services.sessions.sweep import DeadlineSweep, interval_for
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store
from shared.worker import PeriodicWorker

NAME = "sessions"
#: How often erased learners' comments are looked for (an erasure is carried out within this).
PURGE_INTERVAL_S = 2.0
DEFAULT_PORT = 8103


def projection(settings: Settings) -> SessionsProjection:
    """The service's projection (a rebuild folds the same, ``lemma replay``)."""
    return SessionsProjection()


def bootstrap(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    runtime = ctx.runtime(projection(ctx.settings), own_topics=consumers.OWN_TOPICS)
    window = timedelta(seconds=ctx.settings.session_confirm_window_s)
    sweep = PeriodicWorker("sessions-deadlines", interval_for(window), DeadlineSweep(ctx).tick)
    purge = PeriodicWorker("sessions-comment-purge", PURGE_INTERVAL_S, CommentPurge(ctx).tick)
    return create_app(
        ctx,
        title="Lemma sessions",
        description=(
            "Session lifecycle (scheduled, started, completed, abandoned), the partner's say "
            "(confirm, dispute, contest a no-show) and peer ratings."
        ),
        routers=[api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
        workers=[sweep, purge],
    )
