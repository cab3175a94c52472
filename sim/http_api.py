"""The drive's HTTP side: a few sharded clients and one call that counts what went wrong."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import httpx

from shared.auth import mint_token
from shared.settings import Settings
from sim.http_results import DriveResult


class Clients:
    """A few HTTP clients; each request goes to the one its key picks.

    httpx's connection pool scans every connection of the pool on each request and response,
    so with hundreds of long-polls held open in one pool the driver spends more CPU on that
    scan than on anything else (the stack runs on the same cores); shards of a few dozen
    connections keep it cheap.
    """

    def __init__(self, base_url: str, shards: int = 16) -> None:
        ssl = httpx.create_ssl_context()  # one for all: building one per client costs
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        self.clients = [
            httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits, verify=ssl)
            for _ in range(shards)
        ]

    def pick(self, key: str) -> httpx.AsyncClient:
        return self.clients[zlib.crc32(key.encode()) % len(self.clients)]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


class Api:
    """Calls as learners (tokens signed with the stack's secret); failures are counted in
    ``result``, never raised."""

    def __init__(self, http: Clients, secret: str, result: DriveResult) -> None:
        self.http = http
        self.settings = Settings(jwt_secret=secret)
        self.result = result
        self._headers: dict[str, dict[str, str]] = {}

    def headers(self, learner_id: str) -> dict[str, str]:
        if learner_id not in self._headers:
            token = mint_token(self.settings, learner_id)
            self._headers[learner_id] = {"Authorization": f"Bearer {token}"}
        return self._headers[learner_id]

    async def send(
        self,
        actor: str | None,
        method: str,
        path: str,
        route: str,
        *,
        json: dict[str, Any] | None = None,
        wait: int = 0,
        expect: tuple[int, ...] = (),
    ) -> httpx.Response | None:
        """The answer when 2xx or in ``expect``, else None (the failure is counted by route and status).

        A 502 from the gateway is tried once more: the gateway answers it when it wrote to a
        connection the service had just closed as idle, so the service never saw the call.
        """
        headers = self.headers(actor) if actor else None
        params = {"wait": wait} if wait else None
        timeout = httpx.Timeout(30.0 + 2 * wait)
        client = self.http.pick(actor or path)
        for attempt in (1, 2):
            try:
                r = await client.request(
                    method, path, json=json, params=params, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                self.result.errors[f"{method} {route} {type(exc).__name__}"] += 1
                return None
            if r.status_code != 502 or attempt == 2:
                break
            self.result.retried[f"{method} {route} 502"] += 1
        if r.is_success or r.status_code in expect:
            return r
        self.result.errors[f"{method} {route} {r.status_code}"] += 1
        return None
