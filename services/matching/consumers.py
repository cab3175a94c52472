"""Kafka wiring of the matching service: claims and SCI updates fold into learner levels
(one batch subscriber, group "matching", positioned from the offsets kept in the store).
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, Topic.PASSPORT, Topic.SCI)
    async def on_passport_sci(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
