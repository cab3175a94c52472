"""Kafka wiring of the sessions service: MatchFound on ``lemma.matching.v1`` schedules sessions;
the service's own events on ``lemma.sessions.v1`` are folded too (the log rebuilds the sessions)."""

from __future__ import annotations

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, projection_subscriber
from shared.events.registry import Topic
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings

#: The topics the projection folds (a rebuild reads the same); of the passport's, only
#: ``LearnerErased`` (the comments of a learner who erased their data are purged).
TOPICS = (Topic.MATCHING, Topic.SESSIONS, Topic.PASSPORT)
#: The topics among them that the service's commands publish to.
OWN_TOPICS = (Topic.SESSIONS,)


def build_router(settings: Settings, runtime: ProjectionRuntime) -> KafkaRouter:
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, *TOPICS)
    async def on_matching_sessions_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    return router
