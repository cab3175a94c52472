"""Kafka wiring of the sci service: one batch subscriber per consumed topic, one projection.

Consumer groups derive from the projection's name ``sci`` (``shared.bus.projection_subscriber``
makes one group per topic, ``sci.<topic>``); positions come from the offsets in the store, so
a rebuild into an empty store re-reads every topic from the start.
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, Topic.EVIDENCE, settings, runtime)
    async def on_evidence(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    @projection_subscriber(router, Topic.SESSIONS, settings, runtime)
    async def on_sessions(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    @projection_subscriber(router, Topic.PASSPORT, settings, runtime)
    async def on_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
