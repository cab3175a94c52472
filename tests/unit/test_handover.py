"""The service's side of a hand-over, on a real (in-memory SQLite) store: a batch fetched at the
live version's positions is never folded into the new version, the new version goes live only
past the frozen offsets, and what the live version already announced is not announced again."""

from __future__ import annotations

import asyncio
import json

from shared.events import decode, new_event
from shared.events.payloads import OperatorActed
from shared.handover import VersionSwitch
from shared.outbox import outbox_records
from shared.projection.runtime import ProjectionRuntime
from shared.projection.versions import VERSIONS, Versions
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from tests.unit.test_projection_runtime import ClaimCounter, claim, rec

TOPIC = "lemma.passport.v1"


async def handed_over(store: SqliteStore) -> None:
    versions, version, _ = Versions("counter").begin(at="", by="ops", owner="1@h", now=0.0, stale_s=15.0)
    await store.write([Change(VERSIONS, "counter", versions.hand_over(version.number).to_doc())])


async def test_a_batch_fetched_before_the_hand_over_is_read_again_not_folded_into_the_new_version() -> None:
    store = SqliteStore(":memory:")
    log = [rec(i, claim(f"l{i}")) for i in range(13)]
    projection = ClaimCounter()
    projection.broken = False
    live = ProjectionRuntime(projection, store, service="t")
    await live.handle(log[:10])  # the live version folded 0..9
    await ProjectionRuntime(projection, store, service="t", version=2, emit=False).handle(log[:5])
    await handed_over(store)  # the rebuild stopped at 4
    await store.ack_outbox([r.seq for r in await store.pending_outbox(100)])
    sought: list[int] = []

    async def reposition() -> None:  # what the listener does: seek every partition anew
        sought.append(live.version)

    live.on_reposition = reposition
    switch = VersionSwitch([live], store, service="t", on_switch=lambda: asyncio.sleep(0))
    await live.lock.acquire()  # a command or job of the service holds the lock
    stepping = asyncio.create_task(switch.step(live))
    await asyncio.sleep(0)
    late = asyncio.create_task(live.handle(log[10:]))  # fetched at the live version's positions
    await asyncio.sleep(0)
    live.lock.release()
    await stepping
    assert await late == 0 and sought == [2]  # dropped: the consumer reads it again
    assert await store.offsets("counter.v2") == {(TOPIC, 0): 4}

    assert await live.handle(log[5:]) == 8  # from the new version's position on
    announced = [json.loads(r.value)["data"]["evidence_id"] for r in await store.pending_outbox(100)]
    assert announced == [f"e-{decode(r.value or b'').id}" for r in log[10:]]  # 5..9: announced by v1
    assert (await _versions(store)).live == 1
    await switch.step(live)
    versions = await _versions(store)
    assert versions.live == 2 and versions.versions[1].state == "retired"
    assert sorted(k for k, _ in await live.store.scan("counts", limit=100)) == sorted(
        f"l{i}" for i in range(13)
    )


async def _versions(store: SqliteStore) -> Versions:
    return Versions.from_doc("counter", await store.get(VERSIONS, "counter"))


async def test_a_version_folding_the_services_own_topic_goes_live_only_at_its_end_with_no_outbox() -> None:
    """The service's commands write the live version and publish to a topic the projection
    folds: the new version waits for every such event, in the log and folded, so no command
    or reader finds it behind what a command wrote."""
    store = SqliteStore(":memory:")
    log = [rec(i, claim(f"l{i}")) for i in range(6)]
    projection = ClaimCounter()
    projection.broken = False
    # the service publishes to the topic it folds, and what its fold emits (evidence) too
    live = ProjectionRuntime(projection, store, service="t", own_topics=[TOPIC, "lemma.evidence.v1"])
    await live.handle(log[:3])
    await ProjectionRuntime(projection, store, service="t", version=2, emit=False).handle(log[:3])
    await handed_over(store)
    ends = {(TOPIC, 0): 5}  # a command published two more records the live version has not folded

    async def end_offsets(topics: object) -> dict[tuple[str, int], int]:
        return dict(ends)

    switch = VersionSwitch(
        [live], store, service="t", on_switch=lambda: asyncio.sleep(0), end_offsets=end_offsets
    )
    await switch.step(live)  # takes over; v2 stands where the frozen v1 does, but not at the end
    assert live.version == 2 and (await _versions(store)).live == 1
    await live.handle(log[3:5])  # folded to the end; the announcements wait in the outbox
    assert await store.pending_outbox(1)
    await store.write(
        outbox=outbox_records(
            [
                new_event(
                    OperatorActed(action="resume", service="t", projection="counter", by="ops"), source="t"
                )
            ]
        )
    )
    await switch.step(live)
    assert (await _versions(store)).live == 1  # an event not yet published may change it still
    await store.ack_outbox([r.seq for r in await store.pending_outbox(100) if r.topic != "lemma.ops.v1"])
    await switch.step(live)
    assert (await _versions(store)).live == 2  # an event of another topic in the outbox: no matter
