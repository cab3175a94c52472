"""Kafka wiring of the passport service: one batch subscriber (group "passport") over the
three topics it folds; claims, evidence and scores land in the same passport documents.
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

#: The topics the projection folds (a rebuild reads the same).
TOPICS = (Topic.PASSPORT, Topic.EVIDENCE, Topic.SCI)
#: The topics among them that the service's own commands and jobs publish to.
OWN_TOPICS = (Topic.PASSPORT,)


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, *TOPICS)
    async def on_passport_evidence_sci(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
