"""Composition root of the matching service. A test swaps the settings or the store."""

from __future__ import annotations

from fastapi import FastAPI

from services.matching import api, consumers
from services.matching.projection import MatchingProjection
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store

NAME = "matching"
DEFAULT_PORT = 8102


def bootstrap(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    runtime = ctx.runtime(MatchingProjection())
    return create_app(
        ctx,
        title="Lemma matching",
        description="Match tickets: pairs learners of a skill by level; MatchFound creates the session.",
        routers=[api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
    )
