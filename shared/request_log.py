"""One log line per HTTP request (uvicorn's access log is off), under the request's context.

The request starts a correlation id (``shared.log_context``): every line written while it is
handled carries it, so do the events its command publishes, and the answer tells the client in
``X-Correlation-ID`` (a support request can quote it). The line names the route template, not
the path (paths hold handles and ids, and the template is what the latency metric uses).
Probes and scrapes are logged at DEBUG only: the gateway checks ``/readyz`` every second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from shared.log_context import ORIGIN, REQUEST, Origin, request_scope

log = logging.getLogger("lemma.access")

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
#: Routes whose requests are logged at DEBUG: health probes and the metrics scrape.
QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


def request_log_middleware(
    service: str, instance: str
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    origin = Origin(service, instance)

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        scope = request_scope(request.headers.get(REQUEST_ID_HEADER))
        origin_token, request_token = ORIGIN.set(origin), REQUEST.set(scope)
        start = time.perf_counter()
        status = 500  # unless the handler answers
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[CORRELATION_HEADER] = scope.correlation_id
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            level = logging.DEBUG if route in QUIET else logging.WARNING if status >= 500 else logging.INFO
            if log.isEnabledFor(level):
                took_ms = round((time.perf_counter() - start) * 1000, 1)
                log.log(
                    level,
                    "%s %s %d %.1f ms",
                    request.method,
                    route,
                    status,
                    took_ms,
                    extra={
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "duration_ms": took_ms,
                    },
                )
            REQUEST.reset(request_token)
            ORIGIN.reset(origin_token)

    return middleware
