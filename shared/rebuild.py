"""Rebuilding a projection beside the live one, from the start of the log (``lemma replay``).

The rebuild runs in its own process, reads every partition of the projection's topics itself
(no consumer group) and folds them into a new version of the store
(``shared.projection.versions``): its own collections and offsets, invisible to readers. It
emits no events while it builds (the announcements come when it goes live). A projection that
can fold facts alone is folded in catch-up mode (``shared.projection.catchup``: no scoring,
documents held in memory and written a window at a time with their offsets), by as many
processes as its phases allow (``shared.rebuild_workers``); any other through the service's
``ProjectionRuntime``. Its position is its store offsets, so a rebuild that was killed and
started again goes on where it stopped; a heartbeat in the versions document tells a second
``lemma replay`` that this one is alive.

Once every partition is folded up to the log's head it stops and hands the version over
(``handover``); the service takes it from there (``shared.handover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from aiokafka import TopicPartition

from shared.events.envelope import new_event
from shared.events.payloads import OperatorActed
from shared.events.registry import Topic
from shared.gc_tuning import folding
from shared.handover import read_versions
from shared.kafka_connection import KafkaConnection
from shared.log_records import end_offsets, partitions_of
from shared.outbox import outbox_records
from shared.projection.catchup import CatchUpRuntime
from shared.projection.fold import Projection
from shared.projection.redrive import FOLDED, carry_over
from shared.projection.versions import RETIRED, VERSIONS, Version, Versions, consumer_of
from shared.rebuild_fold import Progress, RebuildStopped, fold_to_head, make_runtime
from shared.rebuild_workers import Job, fold_in_processes, plan
from shared.settings import Settings
from shared.store.base import Change, Store
from shared.store.versioned import VersionStore

log = logging.getLogger(__name__)

__all__ = ["Progress", "Rebuild", "RebuildStopped", "this_process"]

HEARTBEAT_S = 2.0
#: Records left to fold from which a rebuild folds in several processes (when it may).
APART_FROM = 200_000
#: A rebuild not heard of for this long is taken for dead: the next ``lemma replay`` resumes it.
STALE_S = 15.0


def this_process() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def on_this_host(owner: str) -> bool:
    return owner.partition("@")[2] == socket.gethostname()


def dead_here(owner: str) -> bool:
    """Whether ``owner`` (``pid@host``) is a process of this host that no longer runs."""
    pid, _, host = owner.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Rebuild:
    """One rebuild of ``projection`` (read from ``topics``) into a new version of ``store``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        projection: Projection,
        topics: Sequence[Topic],
        *,
        service: str,
        by: str,
        owner: str | None = None,
        finish: Callable[[Store], Awaitable[object]] | None = None,
    ) -> None:
        """``finish``: what the projection's own jobs would have added to the new version
        (the sci calibration), run on it once caught up and before it is handed over."""
        self.settings = settings
        self.store = store
        self.projection = projection
        self.topics = [settings.topic(t) for t in topics]
        self.service = service
        self.by = by
        self.owner = owner or this_process()
        self.finish = finish
        self.version: Version | None = None
        self.resumed = False

    async def begin(self) -> Version:
        """Claim the version to build: a new one, or the one a killed rebuild left (resumed).
        Raises ``VersionError`` while another rebuild is alive."""
        versions = await read_versions(self.store, self.projection.name)
        at = datetime.now(UTC).isoformat()
        current = versions.in_progress
        # a rebuild of this host is known dead or alive at once; elsewhere, by its silence
        stale_s = STALE_S
        if current is not None and on_this_host(current.owner):
            stale_s = 0.0 if dead_here(current.owner) else float("inf")
        versions, version, resumed = versions.begin(
            at=at,
            by=self.by,
            owner=self.owner,
            now=time.time(),
            stale_s=stale_s,
            model=int(getattr(self.projection, "model", 0)),
        )
        acted = OperatorActed(
            action="replay",
            service=self.service,
            projection=self.projection.name,
            by=self.by,
            detail={"version": version.number, "resumed": resumed, "from": versions.live},
        )
        event = new_event(acted, source=self.service)
        await self.store.write(
            [Change(VERSIONS, self.projection.name, versions.to_doc())], outbox=outbox_records([event])
        )
        self.version, self.resumed = version, resumed
        return version

    async def run(
        self, on_progress: Callable[[Progress], None] = lambda _: None, *, hand_over: bool = True
    ) -> Progress:
        """Fold from where the version stands to the head of the log, then hand it over (unless
        ``hand_over`` is False: a version built to compare, ``abandon`` it after)."""
        assert self.version is not None, "begin() first"
        with folding():
            return await self._run(on_progress, hand_over)

    async def _run(self, on_progress: Callable[[Progress], None], hand_over: bool) -> Progress:
        assert self.version is not None
        number = self.version.number
        runtime = make_runtime(
            self.projection,
            self.store,
            service=self.service,
            version=number,
            window=self.settings.rebuild_window,
        )
        partitions = {t: await partitions_of(KafkaConnection.of(self.settings), t) for t in self.topics}
        progress = Progress()
        beat = time.monotonic()

        async def tick() -> None:
            nonlocal beat
            if time.monotonic() - beat >= HEARTBEAT_S:
                await self._beat(number)
                beat = time.monotonic()

        parallel = await self._worth_processes(number)
        for phase in plan(self.projection, partitions, self.settings, parallel=parallel):
            own = fold_to_head(self.settings, runtime, phase.shares[0], progress, on_progress, tick)
            if len(phase.shares) == 1:
                await own
                continue
            assert self.store.url is not None and isinstance(runtime, CatchUpRuntime)
            runtime.defer = phase.defer
            jobs = [
                Job(
                    self.settings,
                    self.store.url,
                    self.projection,
                    self.service,
                    number,
                    tuple((tp.topic, tp.partition) for tp in share),
                    phase.defer,
                )
                for share in phase.shares[1:]
            ]
            try:
                await fold_in_processes(jobs, progress, lambda _: on_progress(progress), tick, own)
            finally:
                runtime.defer = {}
            if phase.defer:
                deferred = await runtime.fold_deferred()
                progress.folded += deferred
        if parallel:  # what came in meanwhile, every partition at once, to the head
            everything = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
            await fold_to_head(self.settings, runtime, everything, progress, on_progress, tick)
        beating = asyncio.create_task(self._beat_every(number, HEARTBEAT_S))
        try:
            live = (await read_versions(self.store, self.projection.name)).live
            carried = await carry_over(
                runtime, VersionStore(self.store, live), KafkaConnection.of(self.settings)
            )
            progress.redriven = sum(1 for r in carried if r.outcome == FOLDED)
            if self.finish is not None:
                await self.finish(runtime.store)
        finally:
            beating.cancel()  # and wait: a beat still being written could undo the hand-over
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        if hand_over:
            await self._hand_over(number)
        return progress

    async def _worth_processes(self, number: int) -> bool:
        """Whether to fold in several processes: the store can be opened from another one, and
        ``LEMMA_REBUILD_WORKERS`` asks for them, or leaves it to the rebuild (0) and at least
        ``APART_FROM`` records are left to fold (a worker takes a second or two of a core to
        start: not worth it for a short log)."""
        if self.store.url is None or self.settings.rebuild_workers == 1:
            return False
        if self.settings.rebuild_workers > 1:
            return True
        ends = await end_offsets(KafkaConnection.of(self.settings), self.topics)
        done = await self.store.offsets(consumer_of(self.projection.name, number))
        return sum(end - done.get(tp, -1) - 1 for tp, end in ends.items()) >= APART_FROM

    async def abandon(self) -> int:
        """Delete the version this rebuild built (to compare) and forget it; returns the
        documents deleted."""
        assert self.version is not None
        number = self.version.number
        versions = await read_versions(self.store, self.projection.name)
        kept = versions.abandon(number, self.owner)
        # retired first: killed while deleting, it is never resumed nor handed over half gone
        # (``lemma projections drop`` finishes the deletion)
        retired = replace(
            versions,
            versions={**versions.versions, number: replace(versions.versions[number], state=RETIRED)},
        )
        await self.store.write([Change(VERSIONS, self.projection.name, retired.to_doc())])
        built = VersionStore(self.store, number)
        deleted = 0
        for collection in await built.collections():
            deleted += await built.drop_collection(collection)
        await self.store.drop_offsets(consumer_of(self.projection.name, number))
        await self.store.write([Change(VERSIONS, self.projection.name, kept.to_doc())])
        return deleted

    async def _beat_every(self, number: int, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._beat(number)

    async def _beat(self, number: int) -> None:
        versions = await read_versions(self.store, self.projection.name)
        beaten = versions.beat(number, self.owner, time.time())  # VersionError: taken over
        await self.store.write([Change(VERSIONS, self.projection.name, beaten.to_doc())])

    async def _hand_over(self, number: int) -> None:
        versions = await read_versions(self.store, self.projection.name)
        versions.beat(number, self.owner, time.time())  # still ours
        handed = versions.hand_over(number)
        await self.store.write([Change(VERSIONS, self.projection.name, handed.to_doc())])
        log.info("%s: version %d caught up with the log; handed over", self.projection.name, number)

    async def wait_live(self, timeout_s: float, poll_s: float = 0.3) -> Versions | None:
        """The versions once the built one is live (the service switched), or None on timeout."""
        assert self.version is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            versions = await read_versions(self.store, self.projection.name)
            if versions.live == self.version.number:
                return versions
            await asyncio.sleep(poll_s)
        return None
