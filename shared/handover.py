"""The service's side of a rebuild: take a caught-up version over and switch readers to it.

A rebuild (``lemma replay``, ``cli/replay_commands.py``) folds a new version from the start of
the log in its own process and consumer group; once it has caught up with the head it stops
and marks the version ``handover`` (``shared.projection.versions``). This worker, in every
service process, looks at the versions document every ``interval_s``:

1. a version is handed over and the runtime still folds the live one: under the runtime's
   lock, note how far the live version got (``freeze``), point the runtime at the new version
   and reposition the consumer on its offsets. Readers still read the live version, which no
   longer moves;
2. the new version has folded at least as far as the frozen one on every partition: flip the
   document in one write with an ``OperatorActed`` switch event; readers (``LiveStore``) read
   the new version from their next look-up, and no reader sees a version behind what it saw.

At start-up (``prepare``, before the consumer joins its group) the runtime is pointed at the
live version, or at a handed-over one, so a service stopped during a hand-over picks it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from aiokafka.errors import KafkaError

from shared.events.envelope import deterministic_id, new_event
from shared.events.payloads import OperatorActed, Payload
from shared.outbox import outbox_records
from shared.projection.runtime import ProjectionRuntime
from shared.projection.versions import (
    HANDOVER,
    VERSIONS,
    Versions,
    consumer_of,
    parse_partition_key,
    partition_key,
)
from shared.store.base import Change, Store
from shared.store.versioned import VersionStore

#: What a version going live announces, from the retired version and the new one; with
#: ``every=True`` (the new one was built with other rules) every result, else what differs.
Announcer = Callable[[Store, Store, bool], Awaitable[list[Payload]]]

#: How many outbox rows a go-live looks at (more pending: it waits for the relay).
OUTBOX_LOOK = 500
#: How long a go-live waits for the log to say where it ends, holding the service's lock.
END_OFFSETS_S = 3.0

#: The end offsets of the given topics' partitions (``shared.log_records.end_offsets``).
EndOffsets = Callable[[Sequence[str]], Awaitable[dict[tuple[str, int], int]]]

log = logging.getLogger(__name__)


async def read_versions(store: Store, projection: str) -> Versions:
    return Versions.from_doc(projection, await store.get(VERSIONS, projection))


async def folded_offsets(store: Store, consumer: str) -> dict[str, int]:
    """A consumer's stored offsets keyed ``topic[partition]`` (as ``Version.freeze`` keeps them)."""
    return {partition_key(t, p): o for (t, p), o in (await store.offsets(consumer)).items()}


class VersionSwitch:
    """Runs the hand-over of every runtime of a service (a ``Worker``)."""

    def __init__(
        self,
        runtimes: list[ProjectionRuntime],
        store: Store,
        *,
        service: str,
        on_switch: Callable[[], Awaitable[object]],
        announcers: Mapping[str, Announcer] | None = None,
        end_offsets: EndOffsets | None = None,
        interval_s: float = 0.5,
    ) -> None:
        """``announcers``: per projection, what a version going live announces, from the
        retired version and the new one (sci: the scores that changed). ``end_offsets``: where
        the log ends, for the runtimes that fold the service's own topics (``own_topics``)."""
        self.end_offsets = end_offsets
        self.runtimes = runtimes
        self.announcers = dict(announcers or {})
        self.store = store
        self.service = service
        self.on_switch = on_switch
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Point every runtime at the version it must fold now (before the consumers start)."""
        for runtime in self.runtimes:
            versions = await self._first_look(runtime)
            runtime.switch_to(versions.live)
            await self._take_over(runtime, versions, reposition=False)

    async def _first_look(self, runtime: ProjectionRuntime) -> Versions:
        """The versions of the runtime's projection; a store that has folded nothing yet records
        version 1 as built with the projection's rules now (its ``model``), so a rebuild with the
        same rules later announces only what differs. (A store without the record that has
        folded before was built by an earlier release: its model stays unknown, 0.)"""
        doc = await self.store.get(VERSIONS, runtime.name)
        versions = Versions.from_doc(runtime.name, doc)
        if doc is None and not await self.store.offsets(runtime.consumer):
            first = replace(versions.versions[1], model=int(getattr(runtime.projection, "model", 0)))
            versions = replace(versions, versions={1: first})
            await self.store.write([Change(VERSIONS, runtime.name, versions.to_doc())])
        return versions

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-version-switch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for runtime in self.runtimes:
                try:
                    await self.step(runtime)
                except Exception:
                    log.exception("%s: the version hand-over failed; trying again", runtime.name)

    async def step(self, runtime: ProjectionRuntime) -> None:
        versions = await read_versions(self.store, runtime.name)
        if runtime.version != versions.live and runtime.version not in versions.versions:
            async with runtime.lock:  # the version it folded was dropped: fold the live one
                runtime.switch_to(versions.live)
                await self._reposition(runtime)
            return
        await self._take_over(runtime, versions, reposition=True)
        await self._go_live(runtime)

    async def _take_over(self, runtime: ProjectionRuntime, versions: Versions, *, reposition: bool) -> None:
        pending = versions.in_progress
        if pending is None or pending.state != HANDOVER or runtime.version == pending.number:
            return
        async with runtime.lock:
            live = consumer_of(runtime.name, versions.live)
            frozen = pending.freeze or await folded_offsets(self.store, live)
            frozen_doc = versions.freeze(pending.number, frozen).to_doc()
            await self.store.write([Change(VERSIONS, runtime.name, frozen_doc)])
            runtime.switch_to(pending.number)
            # what the live version folded, it announced: up to there the new one stays quiet
            runtime.quiet_until = {parse_partition_key(key): offset for key, offset in frozen.items()}
            log.info(
                "%s takes version %d over from version %d (frozen at %s): readers stay on it until then",
                runtime.name,
                pending.number,
                versions.live,
                frozen,
            )
            if reposition:
                await self._reposition(runtime)

    async def _reposition(self, runtime: ProjectionRuntime) -> None:
        if runtime.on_reposition is not None:
            await runtime.on_reposition()

    async def _settled(self, runtime: ProjectionRuntime) -> bool:
        """Whether every event the service's commands wrote is in the log and folded into the
        runtime's version. Called under the service's lock, so no command writes meanwhile:
        the old version holds nothing the new one lacks, and readers never go back."""
        pending = await self.store.pending_outbox(limit=OUTBOX_LOOK)
        if len(pending) == OUTBOX_LOOK or any(r.topic in runtime.own_topics for r in pending):
            return False  # the relay has not published every event of the service's own yet
        assert self.end_offsets is not None, "a runtime with own topics needs end_offsets"
        try:  # under the lock: a broker that does not answer must not hold the commands long
            ends = await asyncio.wait_for(self.end_offsets(sorted(runtime.own_topics)), END_OFFSETS_S)
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("%s: where the log ends is not known (%r); going live later", runtime.name, exc)
            return False
        folded = await self.store.offsets(runtime.consumer)
        behind = {tp: end for tp, end in ends.items() if end > 0 and folded.get(tp, -1) < end - 1}
        if behind:
            log.info(
                "%s: version %d waits to fold its own events up to %s", runtime.name, runtime.version, behind
            )
        return not behind

    async def _go_live(self, runtime: ProjectionRuntime) -> None:
        async with runtime.lock:  # no command or job of the service between its read and write
            await self._go_live_locked(runtime)

    async def _go_live_locked(self, runtime: ProjectionRuntime) -> None:
        versions = await read_versions(self.store, runtime.name)
        number = runtime.version
        if number == versions.live or number not in versions.versions:
            return
        if not versions.ready(number, await folded_offsets(self.store, runtime.consumer)):
            return
        if runtime.own_topics and not await self._settled(runtime):
            return
        switched = versions.go_live(number)
        announcer = self.announcers.get(runtime.name)
        payloads: list[Payload] = []
        if announcer is not None:
            retired, new = VersionStore(self.store, versions.live), VersionStore(self.store, number)
            other_rules = versions.versions[number].model != versions.versions[versions.live].model
            payloads = await announcer(retired, new, other_rules)
        announced = [
            new_event(
                payload,
                source=self.service,
                id=deterministic_id(
                    runtime.name,
                    f"version-{number}",
                    type(payload).__name__,
                    str(getattr(payload, "learner_id", "")),
                    str(getattr(payload, "skill", "")),
                ),
            )
            for payload in payloads
        ]
        acted = OperatorActed(
            action="switch",
            service=self.service,
            projection=runtime.name,
            by=f"{self.service} (hand-over)",
            detail={"from": versions.live, "to": number, "announced": len(announced)},
        )
        event = new_event(acted, source=self.service)
        changes = [Change(VERSIONS, runtime.name, switched.to_doc())]
        await self.store.write(changes, outbox=outbox_records([*announced, event]))
        log.info(
            "%s: version %d is live (was %d); readers go over to it", runtime.name, number, versions.live
        )
        await self.on_switch()
