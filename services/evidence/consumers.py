"""Kafka wiring of the evidence service: one batch subscriber per consumed topic."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import batch_subscription, highwater_of
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()
    subscriber = router.subscriber(Topic.SESSIONS.value, **batch_subscription(settings, "evidence"))

    @subscriber
    async def on_sessions(msg: KafkaMessage) -> None:
        records = msg.raw_message
        assert isinstance(records, tuple)
        await runtime.handle(records, highwater=highwater_of(getattr(msg, "consumer", None), records))

    return router
