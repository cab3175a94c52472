"""The operators' routes every service has (an ops token only; 403 otherwise).

``GET /ops/projections``: each projection of the service, its consumer group, and per
partition (those this process is assigned, and those its store has folded) how far the store
has folded, whether this process is assigned it, the lag as of the last batch and its state: folding,
checking (being positioned on the log), retrying or parked (a failed record; with why), or
refused (the log does not fit the store; with why). ``POST /ops/projections/{name}/resume``
tries a parked partition's record again now, with every try.

``/healthz`` and ``/readyz`` stay anonymous and say only up or ready: orchestrators and the
gateway probe them. The details are here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from shared.auth import OpsDep
from shared.projection.faults import PARKED, RETRYING
from shared.projection.fingerprint import CHECKING, recovery_hint
from shared.projection.order import Partition
from shared.projection.runtime import ProjectionRuntime

FOLDING = "folding"
REFUSED = "refused"


def partition_state(runtime: ProjectionRuntime, partition: Partition) -> tuple[str, str | None]:
    """(state, why) of one partition of ``runtime``."""
    fault = runtime.faults.get(partition)
    if fault is not None:
        return (PARKED if fault.parked else RETRYING), fault.describe()
    why = runtime.held.get(partition)
    if why is None:
        return FOLDING, None
    return (CHECKING, None) if why == CHECKING else (REFUSED, why)


async def projection_report(runtime: ProjectionRuntime, group: str) -> dict[str, Any]:
    """What ``GET /ops/projections`` says of one projection."""
    folded = await runtime.store.offsets(runtime.consumer)
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
                **({"why": why} if why else {}),
            }
        )
    states = {row["state"] for row in rows}
    worst = next((s for s in (REFUSED, PARKED, CHECKING, RETRYING) if s in states), FOLDING)
    return {
        "projection": runtime.consumer,
        "group": group,
        "state": worst,
        "partitions": rows,
        **({"recovery": recovery_hint(runtime.service)} if REFUSED in states else {}),
    }


def ops_router(runtimes: list[ProjectionRuntime], group_of: Any) -> APIRouter:
    """``group_of(consumer)``: the consumer group name of a projection (the settings' prefix)."""
    router = APIRouter(prefix="/ops", tags=["ops"])

    @router.get("/projections")
    async def projections(_: OpsDep) -> dict[str, Any]:
        return {"projections": [await projection_report(r, group_of(r.consumer)) for r in runtimes]}

    @router.post("/projections/{name}/resume")
    async def resume(name: str, _: OpsDep) -> dict[str, Any]:
        runtime = next((r for r in runtimes if r.consumer == name), None)
        if runtime is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"this service has no projection {name!r}")
        resumed = runtime.resume_parked()
        return {"projection": name, "resumed": [{"topic": t, "partition": p} for t, p in resumed]}

    return router
