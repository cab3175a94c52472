"""Kafka wiring of the matching service.

- ``on_matching_passport_sci_sessions``: the matching projection (tickets, matches, levels,
  sessions' ends) folds the whole log into this process's store. Its consumer group is per
  process instance (``matching-<instance>``), so every process gets every partition.
- ``on_matching_ownership``: membership of the shared ``matching-engine`` group; the partitions
  it is assigned are the skills this process decides for (``matcher.Ownership``). The records
  themselves are not needed there.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from services.matching.matcher import ENGINE_GROUP, Ownership
from shared.bus import consumer_options, fold_batch, membership, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

#: The topics the projection folds (a rebuild reads the same).
TOPICS = (Topic.MATCHING, Topic.PASSPORT, Topic.SCI, Topic.SESSIONS)
#: The topics among them that the service's own commands and jobs publish to.
OWN_TOPICS = (Topic.MATCHING,)


def build_router(settings: Settings, runtime: ProjectionRuntime, ownership: Ownership) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, *TOPICS)
    async def on_matching_passport_sci_sessions(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    @router.subscriber(
        settings.topic(Topic.MATCHING),
        **membership(settings, ENGINE_GROUP),
        auto_offset_reset="latest",
        ack_policy=AckPolicy.ACK,
        listener=ownership,
        **consumer_options(settings),
    )
    async def on_matching_ownership(msg: KafkaMessage) -> None:
        return None  # membership is what counts: the assignment says which skills are ours

    return router
