"""Kafka wiring of the sessions service: MatchFound on ``lemma.matching.v1`` schedules sessions."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import batch_subscription, highwater_of
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()
    subscriber = router.subscriber(Topic.MATCHING.value, **batch_subscription(settings, "sessions"))

    @subscriber
    async def on_matching(msg: KafkaMessage) -> None:
        records = msg.raw_message
        assert isinstance(records, tuple)
        await runtime.handle(records, highwater=highwater_of(getattr(msg, "consumer", None), records))

    return router
