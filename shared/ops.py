"""The operators' routes every service has (an ops token only; 403 otherwise).

``GET /ops/projections``: each projection of the service, its consumer group, and per
partition (those this process is assigned, and those its store has folded) how far the store
has folded, whether this process is assigned it, the lag as of the last batch and its state: folding,
checking (being positioned on the log), retrying or parked (a failed record; with why), or
refused (the log does not fit the store; with why). ``POST /ops/projections/{name}/resume``
tries a parked partition's record again now, with every try. ``POST
/ops/projections/{name}/redrive`` folds given records of the log again, each at most once ever
(``shared.projection.redrive``): what ``lemma dlq redrive`` sends after a fix; a record of a
partition the cluster does not have is refused (422) before anything is read. Each action is
recorded as an ``OperatorActed`` event on ``lemma.ops.v1`` with the operator's id.

``/healthz`` and ``/readyz`` stay anonymous and say only up or ready: orchestrators and the
gateway probe them. The details are here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from shared.auth import OpsDep, Principal
from shared.events.payloads import OperatorActed, OperatorAction
from shared.kafka_connection import KafkaConnection
from shared.log_records import missing_partitions, read_records
from shared.problems import Problem
from shared.projection.faults import PARKED, RETRYING
from shared.projection.fingerprint import CHECKING, recovery_hint
from shared.projection.holds import FENCED
from shared.projection.order import Partition
from shared.projection.redrive import redrive
from shared.projection.runtime import ProjectionRuntime
from shared.projection.versions import VERSIONS, Versions

if TYPE_CHECKING:
    from shared.service import ServiceContext

FOLDING = "folding"
REFUSED = "refused"
FENCED_STATE = "fenced"


def partition_state(runtime: ProjectionRuntime, partition: Partition) -> tuple[str, str | None]:
    """(state, why) of one partition of ``runtime``."""
    fault = runtime.faults.get(partition)
    if fault is not None:
        return (PARKED if fault.parked else RETRYING), fault.describe()
    why = runtime.held.get(partition)
    if why is None:
        return FOLDING, None
    if why == FENCED:
        return FENCED_STATE, why
    return (CHECKING, None) if why == CHECKING else (REFUSED, why)


async def projection_report(runtime: ProjectionRuntime, group: str) -> dict[str, Any]:
    """What ``GET /ops/projections`` says of one projection."""
    folded = await runtime.store.offsets(runtime.consumer)
    owners = await runtime.store.owners(runtime.consumer)
    partitions = sorted(
        set(folded) | runtime.assigned | set(runtime.lag) | set(runtime.held) | set(runtime.faults)
    )
    rows = []
    for partition in partitions:
        state, why = partition_state(runtime, partition)
        rows.append(
            {
                "topic": partition[0],
                "partition": partition[1],
                "folded_to": folded.get(partition),
                "lag": runtime.lag.get(partition),
                "state": state,
                "assigned": partition in runtime.assigned,
                **(
                    {"epoch": owners[partition][0], "owner": owners[partition][1]}
                    if partition in owners
                    else {}
                ),
                **({"why": why} if why else {}),
            }
        )
    versions = Versions.from_doc(runtime.name, await runtime.raw_store.get(VERSIONS, runtime.name))
    states = {row["state"] for row in rows}
    worst = next((s for s in (REFUSED, PARKED, CHECKING, RETRYING) if s in states), FOLDING)
    return {
        "projection": runtime.name,
        "version": runtime.version,
        "live_version": versions.live,
        "versions": [
            {"version": v.number, "state": v.state, "started_at": v.started_at, "by": v.by}
            for v in sorted(versions.versions.values(), key=lambda v: v.number)
        ],
        "group": group,
        "state": worst,
        "partitions": rows,
        **({"recovery": recovery_hint(runtime.service)} if REFUSED in states else {}),
    }


class RecordPlace(BaseModel):
    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class RedriveRequest(BaseModel):
    """Records of the log to fold again (the places their dead letters name)."""

    records: list[RecordPlace] = Field(min_length=1, max_length=10_000)


def _runtime(ctx: ServiceContext, name: str) -> ProjectionRuntime:
    runtime = next((r for r in ctx.runtimes if r.name == name), None)
    if runtime is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"this service has no projection {name!r}")
    return runtime


async def record_action(
    ctx: ServiceContext, action: OperatorAction, projection: str, by: Principal, detail: dict[str, Any]
) -> None:
    """Every operator action is an event on ``lemma.ops.v1``, with who did it."""
    acted = OperatorActed(
        action=action, service=ctx.name, projection=projection, by=by.learner_id, detail=detail
    )
    await ctx.commit([], [ctx.event(acted)])


def ops_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/ops", tags=["ops"])

    @router.get("/projections")
    async def projections(_: OpsDep) -> dict[str, Any]:
        reports = [await projection_report(r, ctx.settings.group(r.name)) for r in ctx.runtimes]
        return {"projections": reports}

    no_projection: dict[int | str, dict[str, Any]] = {404: {"description": "No such projection here"}}

    @router.post("/projections/{name}/resume", responses=no_projection)
    async def resume(name: str, operator: OpsDep) -> dict[str, Any]:
        resumed = [{"topic": t, "partition": p} for t, p in _runtime(ctx, name).resume_parked()]
        await record_action(ctx, "resume", name, operator, {"partitions": resumed})
        return {"projection": name, "resumed": resumed}

    @router.post(
        "/projections/{name}/redrive",
        responses={
            **no_projection,
            422: {"description": "A record of a partition the cluster does not have, or a bad body"},
        },
    )
    async def redrive_records(name: str, body: RedriveRequest, operator: OpsDep) -> dict[str, Any]:
        """Fold the records again (each at most once ever); what came of each."""
        runtime = _runtime(ctx, name)
        places = [(r.topic, r.partition, r.offset) for r in body.records]
        kafka = KafkaConnection.of(ctx.settings)
        missing = await missing_partitions(kafka, ((t, p) for t, p, _ in places))
        if missing:
            named = ", ".join(f"{topic}[{partition}]" for topic, partition in missing[:10])
            raise Problem(422, f"no such partition on the cluster: {named}")
        read = await read_records(kafka, places)
        results = await redrive(runtime, [read[p] for p in places if p in read], by=operator.learner_id)
        rows = [asdict(r) for r in results]
        rows += [
            {"topic": t, "partition": p, "offset": o, "outcome": "gone", "why": "the log no longer holds it"}
            for t, p, o in places
            if (t, p, o) not in read
        ]
        counts = dict(Counter(row["outcome"] for row in rows))
        await record_action(ctx, "redrive", name, operator, {"outcomes": counts, "records": len(places)})
        return {"projection": name, "outcomes": counts, "records": rows}

    return router
