"""Request limits per token and per client address, answered with ``429`` and ``Retry-After``.

Counted with the ``limits`` library's moving window in the storage ``LEMMA_RATE_LIMIT_STORAGE``
names: in memory for one process (development), in Redis in production so every replica of every
service counts against the same totals. A request is counted once per scope:
per address by the middleware (every route but the probes and the scrape), per token when
``shared.auth`` has verified it (so a forged token cannot spend someone else's allowance; an
unverified one only spends its address's).

When the storage cannot be reached the request is let through and counted in
``lemma_rate_limit_errors_total``: a limit that fails closed would turn a storage outage into an
outage of the whole API.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response

from shared.problems import problem_response
from shared.settings import Settings

log = logging.getLogger(__name__)

RATE_LIMITED = Counter(
    "lemma_rate_limited_total",
    "Requests refused with 429 because their token or address went over its limit",
    ["service", "scope"],
)
RATE_LIMIT_ERRORS = Counter(
    "lemma_rate_limit_errors_total",
    "Requests let through unlimited because the limits' storage did not answer",
    ["service"],
)

#: One namespace for every service: a token's allowance is the same whichever service it calls.
NAMESPACE = "lemma"

#: Never limited by address: the orchestrator's probes and Prometheus's scrape.
UNLIMITED_PATHS: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"})


class RateLimited(Exception):
    """Over the limit: answer 429 after ``retry_after_s``."""

    def __init__(self, scope: str, limit: str, retry_after_s: int) -> None:
        super().__init__(f"too many requests for this {scope} (limit {limit}); retry after {retry_after_s} s")
        self.scope = scope
        self.retry_after_s = retry_after_s


@dataclass
class RateLimiter:
    """The two limits of a service process and the storage they are counted in."""

    service: str
    per_token: RateLimitItem | None
    per_ip: RateLimitItem | None
    storage: Storage

    def __post_init__(self) -> None:
        self._window = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, service: str, settings: Settings) -> RateLimiter:
        uri = _async_uri(settings.rate_limit_storage)
        # Redis through redis-py (a pinned dependency), not the library's default client
        options = {"implementation": "redispy"} if uri.startswith("async+redis") else {}
        storage = storage_from_string(uri, **options)
        assert isinstance(storage, Storage)
        return cls(
            service,
            parse(settings.rate_limit_per_token) if settings.rate_limit_per_token else None,
            parse(settings.rate_limit_per_ip) if settings.rate_limit_per_ip else None,
            storage,
        )

    async def hit(self, scope: str, who: str) -> None:
        """Count one request of ``who`` (a subject or an address); ``RateLimited`` if over."""
        item = self.per_token if scope == "token" else self.per_ip
        if item is None:
            return
        try:
            if await self._window.hit(item, NAMESPACE, scope, who):
                return
            stats = await self._window.get_window_stats(item, NAMESPACE, scope, who)
        except Exception as exc:  # the storage: let the request through (see the module's note)
            RATE_LIMIT_ERRORS.labels(self.service).inc()
            log.warning("rate limit storage failed; request not limited: %r", exc)
            return
        RATE_LIMITED.labels(self.service, scope).inc()
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(scope, str(item), retry)


def _async_uri(uri: str) -> str:
    """``limits`` names its asyncio storages ``async+<scheme>``."""
    return uri if uri.startswith("async+") else f"async+{uri}"


def limited_response(request: Request, exc: RateLimited) -> Response:
    return problem_response(
        request,
        429,
        str(exc),
        title="Too Many Requests",
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def address_limit_middleware(
    limiter: RateLimiter,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Count each request against its client's address (the proxy's X-Forwarded-For when the
    gateway is trusted: uvicorn puts it in ``request.client``)."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in UNLIMITED_PATHS:
            address = request.client.host if request.client else "unknown"
            try:
                await limiter.hit("address", address)
            except RateLimited as exc:
                return limited_response(request, exc)
        return await call_next(request)

    return middleware


async def hit_token(request: Request, subject: str) -> None:
    """Count a verified token's request against its subject (no limiter on the app: nothing)."""
    limiter = getattr(request.app.state, "limiter", None)
    if isinstance(limiter, RateLimiter):
        await limiter.hit("token", subject)
