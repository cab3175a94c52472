"""Redriving dead-lettered records into a version (on a real in-memory SQLite store): only a
record the version dead-lettered is folded, once; one still refused stays as it was."""

from __future__ import annotations

import json
from collections.abc import Mapping

from shared.errors import EventRefused
from shared.events import CloudEvent
from shared.events.payloads import SkillClaimed
from shared.projection.fold import Doc, DocRef, Outcome
from shared.projection.redrive import ALREADY, FOLDED, NOT_DEAD, STILL_REFUSED, redrive
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.unit.test_projection_runtime import ClaimCounter, claim, rec


class Fixable(ClaimCounter):
    """Refuses the skill 'boom' until it is fixed."""

    fixed = False

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        if isinstance(event.data, SkillClaimed) and event.data.skill == "boom" and not self.fixed:
            raise EventRefused("boom is not a skill yet")
        if isinstance(event.data, SkillClaimed) and event.data.skill == "boom":
            event = event.model_copy(
                update={"data": event.data.model_copy(update={"skill": "machine-learning"})}
            )
        return super().apply(docs, event)


async def test_only_a_dead_lettered_record_is_redriven_and_only_once() -> None:
    store = SqliteStore(":memory:")
    projection = Fixable()
    runtime = ProjectionRuntime(projection, store, service="test")
    log = [rec(0, claim("ann")), rec(1, claim("ann", skill="boom")), rec(2, b"{not json")]
    assert await runtime.handle(log) == 1
    assert await store.get("counts", "ann") == {"n": 1}

    first = await redrive(runtime, log, by="ops")
    assert [(r.offset, r.outcome) for r in first] == [(0, NOT_DEAD), (1, STILL_REFUSED), (2, STILL_REFUSED)]
    assert "boom is not a skill yet" in first[1].why
    projection.fixed = True
    second = await redrive(runtime, log, by="ops")
    assert [(r.offset, r.outcome) for r in second] == [(0, NOT_DEAD), (1, FOLDED), (2, STILL_REFUSED)]
    third = await redrive(runtime, log, by="ops")
    assert [(r.offset, r.outcome) for r in third] == [(0, NOT_DEAD), (1, ALREADY), (2, STILL_REFUSED)]
    assert await store.get("counts", "ann") == {"n": 2}  # folded once
    emitted = [json.loads(r.value) for r in await store.pending_outbox(100) if r.topic == "lemma.evidence.v1"]
    assert len(emitted) == 2 and len({e["id"] for e in emitted}) == 2


async def test_a_redrive_into_a_version_being_built_emits_nothing() -> None:
    store = SqliteStore(":memory:")
    projection = Fixable()
    building = ProjectionRuntime(projection, store, service="test", version=2, emit=False)
    log = [rec(0, claim("ann", skill="boom"))]
    await building.handle(log)
    projection.fixed = True
    assert [r.outcome for r in await redrive(building, log, by="rebuild")] == [FOLDED]
    assert await building.store.get("counts", "ann") == {"n": 1}
    assert [r.topic for r in await store.pending_outbox(100)] == ["lemma.dlq.v1"]  # the letter only
