"""Composition root of the passport service. A test swaps the settings or the store."""

from __future__ import annotations

from fastapi import FastAPI

from services.passport import api, consumers, pages, privacy, records
from services.passport.latency import rating_latency
from services.passport.projection import PassportProjection
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store

NAME = "passport"
DEFAULT_PORT = 8101


def projection(settings: Settings) -> PassportProjection:
    """The service's projection (a rebuild folds the same, ``lemma replay``)."""
    return PassportProjection()


def bootstrap(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    runtime = ctx.runtime(projection(ctx.settings), own_topics=consumers.OWN_TOPICS)
    runtime.observe = rating_latency(NAME)
    app = create_app(
        ctx,
        title="Lemma passport",
        description=(
            "Learners, skill claims and the waitlist; serves Skill Passports and skill pages, "
            "as JSON and as HTML pages."
        ),
        routers=[api.router, privacy.router, pages.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
        on_start=[records.move_personal_data],
    )
    pages.install_html_errors(app)
    return app
