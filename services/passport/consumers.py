"""Kafka wiring of the passport service: one batch subscriber per consumed topic.

All three feed the same projection runtime (consumer group "passport"): passports and
skill figures fold claims, evidence and scores into the same documents.
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, Topic.PASSPORT, settings, runtime)
    async def on_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    @projection_subscriber(router, Topic.EVIDENCE, settings, runtime)
    async def on_evidence(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    @projection_subscriber(router, Topic.SCI, settings, runtime)
    async def on_sci(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
