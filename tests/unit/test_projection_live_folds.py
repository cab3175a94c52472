"""What the projection runtime tells of the events it folds live: one log line per event, under the
event's correlation id and naming what it caused, and the runtime's ``observe`` hook; neither
while a rebuild folds a version (``emit=False``) nor for records a hand-over keeps quiet."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest

from shared.events import CloudEvent, decode, encode, new_event
from shared.events.payloads import SkillClaimed
from shared.log_context import EVENT
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec
from tests.unit.test_projection_runtime import T0, ClaimCounter


def claimed(learner: str, chain: str) -> bytes:
    payload = SkillClaimed(learner_id=learner, skill="machine-learning", self_level="beginner")
    return encode(new_event(payload, source="t", time=T0, correlationid=chain))


def rec(offset: int, value: bytes) -> Rec:
    return Rec("lemma.passport.v1", 0, offset, b"k", value)


class Seen:
    """Records what the runtime logged (with the event context of each line) and observed."""

    def __init__(self) -> None:
        self.observed: list[CloudEvent] = []
        self.lines: list[tuple[str, str | None]] = []

    def observe(self, events: Sequence[CloudEvent]) -> None:
        self.observed.extend(events)


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> Iterator[Seen]:
    caplog.set_level(logging.INFO, logger="lemma.folds")
    found = Seen()

    class Context(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = EVENT.get()
            found.lines.append((record.getMessage(), event.correlationid if event else None))

    handler = Context()
    logging.getLogger("lemma.folds").addHandler(handler)
    yield found
    logging.getLogger("lemma.folds").removeHandler(handler)


async def test_a_live_fold_logs_each_event_under_its_chain_and_observes_it(seen: Seen) -> None:
    runtime = ProjectionRuntime(ClaimCounter(), SqliteStore(":memory:"), service="test")
    runtime.observe = seen.observe
    first, second = claimed("ann", "chain-a"), claimed("bob", "chain-b")
    await runtime.handle([rec(0, first), rec(1, second)])
    assert [e.id for e in seen.observed] == [decode(first).id, decode(second).id]
    folded = [(m, c) for m, c in seen.lines if " folded " in m]
    assert [c for _, c in folded] == ["chain-a", "chain-b"]
    assert "lemma.passport.SkillClaimed.v1 from lemma.passport.v1[0]@0" in folded[0][0]
    assert folded[0][0].endswith("emits lemma.evidence.EvidenceRecorded.v1")


async def test_a_rebuild_neither_logs_each_event_nor_observes(seen: Seen) -> None:
    runtime = ProjectionRuntime(ClaimCounter(), SqliteStore(":memory:"), service="test", emit=False)
    runtime.observe = seen.observe
    assert await runtime.handle([rec(0, claimed("ann", "chain-a"))]) == 1
    assert seen.observed == [] and not any(" folded " in m for m, _ in seen.lines)


async def test_records_a_hand_over_keeps_quiet_are_not_news(seen: Seen) -> None:
    runtime = ProjectionRuntime(ClaimCounter(), SqliteStore(":memory:"), service="test")
    runtime.observe = seen.observe
    runtime.quiet_until[("lemma.passport.v1", 0)] = 0
    news = claimed("bob", "chain-b")
    await runtime.handle([rec(0, claimed("ann", "chain-a")), rec(1, news)])
    assert [e.id for e in seen.observed] == [decode(news).id]


async def test_an_observer_that_fails_does_not_fail_the_fold(seen: Seen) -> None:
    runtime = ProjectionRuntime(ClaimCounter(), SqliteStore(":memory:"), service="test")

    def broken(events: Sequence[CloudEvent]) -> None:
        raise RuntimeError("a bad measurement")

    runtime.observe = broken
    assert await runtime.handle([rec(0, claimed("ann", "chain-a"))]) == 1
    assert await runtime.store.offsets(runtime.consumer) == {("lemma.passport.v1", 0): 0}
