"""Composition root of the matching service. A test swaps the settings, the store or the rules."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.matching import api, consumers
from services.matching.projection import MatchingProjection
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store

NAME = "matching"
DEFAULT_PORT = 8102


class MatchingRules(BaseSettings):
    """Tunables of the pairing rule, from ``LEMMA_MATCHING_*`` (kept here until shared settings has them)."""

    model_config = SettingsConfigDict(env_prefix="LEMMA_MATCHING_", extra="ignore")

    #: The widest level gap paired; unset pairs any gap (the closest still wins).
    max_level_gap: float | None = None


def bootstrap(
    settings: Settings | None = None, store: Store | None = None, *, rules: MatchingRules | None = None
) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    runtime = ctx.runtime(MatchingProjection())
    app = create_app(
        ctx,
        title="Lemma matching",
        description="Match tickets: pairs learners of a skill by level; MatchFound creates the session.",
        routers=[api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
    )
    app.state.max_level_gap = (rules or MatchingRules()).max_level_gap
    return app
