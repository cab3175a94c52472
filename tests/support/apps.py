"""Run a service's FastAPI app in this test's event loop, on a real port, lifespan and all."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from shared.auth import mint_token
from shared.settings import Settings
from tests.support.processes import free_port


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await task


def ops_headers(settings: Settings) -> dict[str, str]:
    """An operator's bearer token for a service run with ``settings``."""
    return {"Authorization": f"Bearer {mint_token(settings, 'operator', role='ops')}"}


async def projections(client: httpx.AsyncClient, settings: Settings) -> list[dict[str, Any]]:
    """``GET /ops/projections`` of the service ``client`` talks to."""
    answer = await client.get("/ops/projections", headers=ops_headers(settings))
    answer.raise_for_status()
    return list(answer.json()["projections"])


async def partitions_in(
    client: httpx.AsyncClient, settings: Settings, *states: str
) -> dict[str, dict[str, Any]]:
    """``topic[p]`` -> its row, for every partition of every projection in one of ``states``."""
    return {
        f"{row['topic']}[{row['partition']}]": row
        for report in await projections(client, settings)
        for row in report["partitions"]
        if row["state"] in states
    }
