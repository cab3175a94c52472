"""Kafka wiring of the matching service.

- ``on_matching_passport_sci_sessions``: the matching projection (tickets, matches, levels,
  sessions' ends) folds the log into the service's one store. Every replica joins the one
  consumer group ``matching`` and folds the partitions it is assigned.
- ``on_matching_engine``: the ``matching-engine`` group over ``lemma.matching.v1`` (keyed by
  skill). The partitions it assigns a replica are the skills that replica decides for
  (``ownership.Ownership``), and their records, in offset order, keep its in-memory book of
  those skills' queues (``matcher.Matcher.on_records``).
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaMessage, KafkaRouter

from services.matching.matcher import ENGINE_GROUP, Matcher
from shared.bus import consumer_options, fold_batch, membership, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

#: The topics the projection folds (a rebuild reads the same).
TOPICS = (Topic.MATCHING, Topic.PASSPORT, Topic.SCI, Topic.SESSIONS)
#: The topics among them that the service's own commands and jobs publish to.
OWN_TOPICS = (Topic.MATCHING,)


def build_router(settings: Settings, runtime: ProjectionRuntime, matcher: Matcher) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, *TOPICS)
    async def on_matching_passport_sci_sessions(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    engine = router.subscriber(
        settings.topic(Topic.MATCHING),
        **membership(settings, ENGINE_GROUP),
        auto_offset_reset="earliest",  # every partition is positioned where its book was loaded
        ack_policy=AckPolicy.ACK,
        # an empty poll is followed by a sleep this long: it bounds how long an arrival waits
        # for its decision when the partitions were quiet (20 ms: 50 idle polls a second)
        batch_timeout_ms=20,
        listener=matcher.ownership,
        **consumer_options(settings),
    )
    matcher.ownership.bind(engine)

    @engine
    async def on_matching_engine(msg: KafkaMessage) -> None:
        records = msg.raw_message
        await matcher.on_records(records if isinstance(records, tuple) else (records,))

    return router
