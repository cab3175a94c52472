"""A projection consumer on the real broker fetches again what the broker skipped.

Tansu 0.6.0 sometimes serves a consumer at the head of a partition a later batch before an
earlier one (several producers writing one partition), and does it rarely and by timing. Here
the skip is made on purpose, just before the runtime: the first time each partition's offset 1
arrives it is withheld. The runtime sees the gap, the subscriber seeks the real aiokafka
consumer back, and every event is folded once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter

from shared.bus import fold_batch, make_broker, projection_subscriber
from shared.events import CloudEvent, new_event
from shared.events.payloads import SkillClaimed
from shared.events.registry import Topic
from shared.metrics import BROKER_GAPS
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.projection.runtime import ProjectionRuntime, Record
from shared.settings import Settings
from shared.store.sqlite import SqliteStore
from tests.support.kafka import publish

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class ClaimsPerLearner:
    name = "gap-test"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        return [("claims", event.subject)]

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        if not isinstance(event.data, SkillClaimed):
            return NOTHING
        doc = docs[("claims", event.subject)] or {"skills": []}
        return Outcome(changes={("claims", event.subject): {"skills": [*doc["skills"], event.data.skill]}})


class SkippingRuntime(ProjectionRuntime):
    """Withholds each partition's offset 1 the first time it is served."""

    withheld: set[tuple[str, int]]

    async def handle(self, records: Sequence[Record], **kwargs: Any) -> int:
        served = []
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset == 1 and tp not in self.withheld:
                self.withheld.add(tp)
                continue
            served.append(record)
        return await super().handle(served, **kwargs)


async def test_records_the_broker_skipped_are_fetched_again_and_folded_once(
    private_tansu: str, tmp_path: Path
) -> None:
    settings = Settings(environment="test", kafka_bootstrap=private_tansu, state_dir=str(tmp_path))
    skills = ["machine-learning", "data-engineering", "statistics"]
    events = [
        new_event(SkillClaimed(learner_id=f"l{n}", skill=skill, self_level="beginner"), source="t", time=T0)
        for n in range(12)
        for skill in skills
    ]
    await publish(private_tansu, events)

    store = SqliteStore(":memory:")
    runtime = SkippingRuntime(ClaimsPerLearner(), store, service="test")
    runtime.withheld = set()
    router = KafkaRouter()

    @projection_subscriber(router, settings, runtime, Topic.PASSPORT)
    async def on_passport(msg: KafkaMessage) -> None:
        await fold_batch(runtime, msg)

    gaps_before = BROKER_GAPS.labels("test", "gap-test", Topic.PASSPORT.value)._value.get()
    broker = make_broker(settings, client_id="gap-test")
    broker.include_router(router)
    await broker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            offsets = await store.offsets("gap-test")
            if sum(last + 1 for last in offsets.values()) >= len(events):
                break
            await asyncio.sleep(0.2)
    finally:
        await broker.stop()

    assert runtime.withheld, "the test withheld nothing: no partition served an offset 1"
    claims = await store.get_many("claims", {f"l{n}" for n in range(12)})
    assert {learner: Counter(doc["skills"]) for learner, doc in claims.items()} == {
        f"l{n}": Counter(skills) for n in range(12)
    }
    gaps = BROKER_GAPS.labels("test", "gap-test", Topic.PASSPORT.value)._value.get() - gaps_before
    assert gaps == len(runtime.withheld)
