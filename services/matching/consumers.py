"""Kafka wiring of the matching service: claims and SCI updates fold into learner levels."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import batch_subscription, highwater_of
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

GROUP_ID = "matching"


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    async def fold(msg: KafkaMessage) -> None:
        records = msg.raw_message
        assert isinstance(records, tuple)
        await runtime.handle(records, highwater=highwater_of(getattr(msg, "consumer", None), records))

    @router.subscriber(Topic.PASSPORT.value, **batch_subscription(settings, GROUP_ID))
    async def on_passport(msg: KafkaMessage) -> None:
        await fold(msg)

    @router.subscriber(Topic.SCI.value, **batch_subscription(settings, GROUP_ID))
    async def on_sci(msg: KafkaMessage) -> None:
        await fold(msg)

    return router
