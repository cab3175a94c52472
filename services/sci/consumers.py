"""Kafka wiring of the sci service: one batch subscriber (group "sci") over evidence, sessions
and claims. Positions come from the offsets in the store, so a rebuild into an empty store
re-reads every topic from the start.
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

#: The topics the projection folds (a rebuild reads the same).
TOPICS = (Topic.EVIDENCE, Topic.SESSIONS, Topic.PASSPORT)


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, *TOPICS)
    async def on_evidence_sessions_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
