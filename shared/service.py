"""What every service process has: its store, its broker, its outbox relay and one write lock,
plus the FastAPI shell (health, readiness, metrics, problem details, API docs).

Each service's ``app.py`` is its composition root: it builds a ``ServiceContext`` (a
test can pass its own store or settings) and hands its routes and Kafka router here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from shared.api_contract import install_contract_docs
from shared.api_docs import install_api_docs
from shared.bus import BrokerPublisher, make_broker
from shared.consistency import Consistency, LogProgress
from shared.consistency_http import consistency_middleware, note_written
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import Payload
from shared.events.registry import Topic
from shared.handover import Announcer, VersionSwitch
from shared.http_security import allow_origins, security_headers_middleware
from shared.kafka_connection import KafkaConnection
from shared.log_context import ORIGIN, Origin, note_published, request_correlation
from shared.log_records import end_offsets
from shared.loop_lag import LoopLagMonitor
from shared.metrics import http_latency_middleware, metrics_response
from shared.ops import ops_router
from shared.outbox import OutboxRelay, outbox_records
from shared.problems import install_problem_handlers
from shared.projection.faults import RetryPolicy
from shared.projection.fold import Doc, DocRef, Projection
from shared.projection.runtime import ProjectionRuntime
from shared.rate_limits import RateLimiter, address_limit_middleware
from shared.readiness import Checks, ReadinessMonitor
from shared.request_log import request_log_middleware
from shared.settings import Settings
from shared.store import Change, Store, open_store
from shared.store.versioned import LiveStore
from shared.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    store: Store
    broker: KafkaBroker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    relay: OutboxRelay = field(init=False)
    #: the cluster's view of groups and topics, and the waiting on consistency tokens
    progress: LogProgress = field(init=False)
    consistency: Consistency = field(init=False)
    runtimes: list[ProjectionRuntime] = field(default_factory=list)
    #: the store as opened; ``store`` shows routes and commands the live version of the
    #: service's projection (``shared.store.versioned.LiveStore``), runtimes fold into theirs
    raw_store: Store = field(init=False)
    live: LiveStore = field(init=False)
    #: per projection, what a rebuilt version announces when it goes live (``shared.handover``)
    announcers: dict[str, Announcer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.raw_store = self.store
        self.live = LiveStore(self.raw_store, self.name)
        self.store = self.live
        publisher = BrokerPublisher(self.broker, self.settings.kafka_prefix)
        self.relay = OutboxRelay(self.raw_store, publisher, service=self.name, owner=self.replica)
        self.progress = LogProgress(KafkaConnection.of(self.settings))
        self.consistency = Consistency(
            self.name,
            topic_name=self.settings.topic,
            group_name=self.settings.group,
            folded=self.folded,
            progress=self.progress,
            bound_s=self.settings.consistency_wait_s,
        )

    async def folded(self) -> dict[tuple[str, int], int]:
        """The last offset folded per partition, by the service's projections as they are now."""
        out: dict[tuple[str, int], int] = {}
        for runtime in self.runtimes:
            for place, offset in (await runtime.store.offsets(runtime.consumer)).items():
                out[place] = max(out.get(place, -1), offset)
        return out

    @property
    def replica(self) -> str:
        """This replica, as the partitions it claims and the outbox records it holds name it."""
        return f"{self.name}-{self.settings.instance}@{socket.gethostname()}"

    @classmethod
    def build(cls, name: str, settings: Settings, *, store: Store | None = None) -> ServiceContext:
        return cls(
            name=name,
            settings=settings,
            store=store or open_store(settings.store_url_for(name)),
            broker=make_broker(settings, client_id=f"lemma-{name}"),
        )

    def runtime(
        self,
        projection: Projection,
        *,
        on_written: Callable[[], None] | None = None,
        own_topics: Sequence[Topic] = (),
    ) -> ProjectionRuntime:
        """The runtime of one of the service's projections, known to its readiness and ``/ops``;
        ``on_written`` runs after each batch written (default: kick the outbox relay);
        ``own_topics``: the topics it folds that the service itself publishes to."""
        retry = RetryPolicy(
            tries=self.settings.fold_retry_tries,
            first_delay_s=self.settings.fold_retry_first_delay_s,
            max_delay_s=self.settings.fold_retry_max_delay_s,
        )
        self.live.projection = projection.name  # one projection a service
        runtime = ProjectionRuntime(
            projection,
            self.raw_store,
            service=self.name,
            lock=self.lock,
            on_written=on_written or self.relay.kick,
            retry=retry,
            own_topics=[self.settings.topic(t) for t in own_topics],
            owner=self.replica,
        )
        runtime.relayed = self.relay.flush
        self.runtimes.append(runtime)
        return runtime

    def held_partitions(self) -> dict[str, str]:
        """Partitions nothing is folded from now (``shared.positions``: being checked, refused
        because their log does not fit the store, or stopped at a failed record):
        ``topic[p]`` -> why."""
        return {
            f"{topic}[{partition}]": why
            for runtime in self.runtimes
            for (topic, partition), why in sorted(runtime.held.items())
        }

    def event(
        self, payload: Payload, *, correlationid: str | None = None, time: datetime | None = None
    ) -> CloudEvent:
        """An event of this service's; under an HTTP request it carries the request's correlation
        id unless ``correlationid`` continues another chain."""
        correlationid = correlationid or request_correlation()
        return new_event(payload, source=self.name, correlationid=correlationid, time=time)

    async def commit(
        self,
        changes: Sequence[Change] | Mapping[DocRef, Doc | None],
        events: Sequence[CloudEvent] = (),
        *,
        expect: Mapping[DocRef, str] | None = None,
    ) -> None:
        """Write documents and the events they cause in one atomic store write; then relay.

        ``changes`` may be the ``{(collection, key): doc or None}`` a pure decision returns;
        ``expect``: the revisions read, refused with ``Conflict`` if any moved
        (``shared.commands``).
        """
        if isinstance(changes, Mapping):
            changes = [Change(collection, key, doc) for (collection, key), doc in changes.items()]
        if not changes and not events:
            return
        records = outbox_records(events)
        await self.store.write(changes, outbox=records, expect=expect)
        note_written(records)
        note_published(events)
        self.relay.kick()


async def stop_cleanly(ctx: ServiceContext, workers: Sequence[Worker]) -> None:
    """A replica's stop (SIGTERM: uvicorn has stopped taking requests and finished those in
    flight): its jobs stop, its consumers finish the batch in hand and commit it (leaving their
    groups, unless static members), the relay publishes what is left in the outbox and gives back
    its claims, then the producer and the store close. A rolling deploy loses nothing."""
    for worker in workers:
        await worker.stop()
    for subscriber in ctx.broker.subscribers:
        try:
            await subscriber.stop()
        except Exception:  # the others still stop; the broker's own stop tries again
            log.exception("stopping a consumer of %s failed", ctx.name)
    await ctx.relay.stop()
    await ctx.broker.stop()
    await ctx.progress.close()
    await ctx.store.close()


def context_of(request: Request) -> ServiceContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx


ContextDep = Annotated[ServiceContext, Depends(context_of)]


class Readiness(BaseModel):
    """Whether the process is ready to serve (the details are on ``GET /ops/projections``)."""

    ready: bool


def create_app(
    ctx: ServiceContext,
    *,
    title: str,
    routers: Sequence[APIRouter],
    kafka_router: KafkaRouter | None = None,
    description: str = "",
    workers: Sequence[Worker] = (),
    on_start: Sequence[Callable[[Store], Awaitable[object]]] = (),
) -> FastAPI:
    """``on_start``: what runs on the store as opened before anything is folded or served (a
    service moving documents written by an earlier release)."""
    if kafka_router is not None:
        ctx.broker.include_router(kafka_router)
    switch = VersionSwitch(
        ctx.runtimes,
        ctx.raw_store,
        service=ctx.name,
        on_switch=ctx.live.refresh,
        announcers=ctx.announcers,
        end_offsets=lambda topics: end_offsets(KafkaConnection.of(ctx.settings), topics),
    )
    checks = Checks(
        ctx.name,
        started=lambda: bool(app.state.started),
        store_ping=lambda: ctx.store.ping(),
        broker_ping=lambda timeout: ctx.broker.ping(timeout=timeout),
        runtimes=ctx.runtimes,
    )
    workers = [LoopLagMonitor(ctx.name), ReadinessMonitor(checks), switch, *workers]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # what runs from here (consumers, relay, jobs) logs as this service
        ORIGIN.set(Origin(ctx.name, ctx.settings.instance))
        for step in on_start:
            await step(ctx.raw_store)
        await switch.prepare()  # the version each runtime folds, before its consumer joins
        await ctx.live.refresh()
        await ctx.broker.start()
        await ctx.relay.start()
        ctx.relay.kick()
        for worker in workers:
            await worker.start()
        app.state.started = True
        try:
            yield
        finally:
            await stop_cleanly(ctx, workers)

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs without a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.settings = ctx.settings
    app.state.started = False
    # the last added runs first: the request's log line and latency see every answer, limits
    # come before any work
    app.state.limiter = RateLimiter.from_settings(ctx.name, ctx.settings)
    app.middleware("http")(consistency_middleware(ctx))
    app.middleware("http")(address_limit_middleware(app.state.limiter))
    app.middleware("http")(security_headers_middleware())
    app.middleware("http")(http_latency_middleware(ctx.name))
    app.middleware("http")(request_log_middleware(ctx.name, ctx.settings.instance))
    allow_origins(app, ctx.settings.cors_origins)
    install_problem_handlers(app)
    install_api_docs(app)
    for router in routers:
        app.include_router(router)
    app.include_router(ops_router(ctx))

    spec = AsyncAPI(ctx.broker, title=f"{title} events", version="1.0.0")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": ctx.name}

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready (yet, or any more)"}},
    )
    async def readyz() -> JSONResponse:
        ready = await checks.ready()
        # up or ready and nothing more to anyone: the details are on GET /ops/projections
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    @app.get("/asyncapi.json", tags=["ops"], include_in_schema=False)
    async def asyncapi() -> Any:
        return spec.to_specification().to_jsonable()

    install_contract_docs(app)
    return app
