"""Composition root of the evidence service. A test swaps the settings or the store."""

from __future__ import annotations

from fastapi import FastAPI

from services.evidence import api, consumers
from services.evidence.projection import EvidenceProjection
from shared.catalog import get_catalog
from shared.service import ServiceContext, create_app
from shared.settings import Settings, get_settings
from shared.store import Store

NAME = "evidence"
DEFAULT_PORT = 8104


def projection(settings: Settings) -> EvidenceProjection:
    """The service's projection (a rebuild folds the same, ``lemma replay``)."""
    return EvidenceProjection(get_catalog())


def bootstrap(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    ctx = ServiceContext.build(NAME, settings or get_settings(), store=store)
    runtime = ctx.runtime(projection(ctx.settings))
    return create_app(
        ctx,
        title="Lemma evidence",
        description="The evidence trail: one item per rating received in a completed session.",
        routers=[api.router],
        kafka_router=consumers.build_router(ctx.settings, runtime),
    )
