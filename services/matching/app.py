"""Composition root of the matching service. A test swaps the settings, the store or the rules."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.matching import api, consumers
from services.matching.engine import Expansion, Rules
from services.matching.matcher import Matcher
from services.matching.projection import MatchingProjection
from services.matching.waits import WaitSlots
from shared.catalog import get_catalog
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store

NAME = "matching"
DEFAULT_PORT = 8102


class MatchingRules(BaseSettings):
    """Tunables of the pairing rule and the matcher, from ``LEMMA_MATCHING_*``."""

    model_config = SettingsConfigDict(env_prefix="LEMMA_MATCHING_", extra="ignore")

    #: The widening window: ``after_s:max_gap`` steps, e.g. ``0:0.25,10:0.5,30:1,60:2,120:3``.
    expansions: str = Field(default="0:0.25,10:0.5,30:1.0,60:2.0,120:3.0", pattern=r"^[0-9.:,]+$")
    recent_partners: int = Field(default=3, ge=0, le=10)
    ttl_s: float = Field(default=900.0, gt=0)
    sweep_interval_s: float = Field(default=1.0, gt=0)
    #: How long a command waits for the log to settle its ticket before answering.
    settle_s: float = Field(default=3.0, ge=0)

    def rules(self) -> Rules:
        steps = []
        for part in self.expansions.split(","):
            after, gap = part.split(":")
            steps.append(Expansion(float(after), float(gap)))
        return Rules(expansions=tuple(steps), recent_partners=self.recent_partners, ttl_s=self.ttl_s)


class TicketWatch:
    """Wakes requests waiting for a ticket to change (``?wait=``) after every fold write."""

    def __init__(self) -> None:
        self.changed = asyncio.Condition()

    def notify(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


def projection(settings: Settings) -> MatchingProjection:
    """The service's projection (a rebuild folds the same, ``lemma replay``): one for every
    replica, whatever its instance."""
    return MatchingProjection(NAME)


def bootstrap(
    settings: Settings | None = None, store: Store | None = None, *, rules: MatchingRules | None = None
) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    tunables = rules or MatchingRules()
    matcher = Matcher(
        ctx,
        tunables.rules(),
        [skill.id for skill in get_catalog().skills],
        sweep_interval_s=tunables.sweep_interval_s,
    )
    watch = TicketWatch()

    def written() -> None:
        ctx.relay.kick()
        watch.notify()

    runtime = ctx.runtime(projection(ctx.settings), on_written=written, own_topics=consumers.OWN_TOPICS)
    app = create_app(
        ctx,
        title="Lemma matching",
        description="Match tickets: pairs learners of a skill by level, in a window widening with waiting.",
        routers=[api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime, matcher),
        workers=[matcher],
    )
    app.state.watch = watch
    app.state.matcher = matcher
    app.state.rules = tunables
    app.state.waits = WaitSlots(NAME, ctx.settings.max_waits_per_caller)
    return app
