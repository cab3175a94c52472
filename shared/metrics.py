"""Prometheus metrics every service exposes on ``GET /metrics``.

Defined once per process; the ``service`` label tells services apart when several
run in one process (as in tests).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_LATENCY = Histogram(
    "lemma_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["service", "method", "route", "status"],
)
EVENTS_PUBLISHED = Counter("lemma_events_published_total", "Events published, by type", ["service", "type"])
EVENTS_CONSUMED = Counter(
    "lemma_events_consumed_total", "Events folded, by type", ["service", "consumer", "type"]
)
FOLD_BATCH_SECONDS = Histogram(
    "lemma_fold_batch_seconds",
    "Time to fold one consumed batch and write it",
    ["service", "consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge(
    "lemma_consumer_lag", "Records behind the partition end", ["service", "consumer", "topic", "partition"]
)
DEAD_LETTERS = Counter(
    "lemma_dead_letters_total", "Records sent to the dead-letter topic", ["service", "consumer", "topic"]
)
FOLD_FAULTS = Counter(
    "lemma_fold_faults_total",
    "Folds that failed for a reason other than the data (store, bug); the partition retries",
    ["service", "consumer", "topic"],
)
PARTITIONS_PARKED = Gauge(
    "lemma_partitions_parked",
    "Partitions stopped at a record that failed every retry: not folded until the cause is fixed",
    ["service", "consumer"],
)

WRITE_CONFLICTS = Counter(
    "lemma_write_conflicts_total",
    "Writes refused because a document changed since it was read (another replica wrote it); "
    "retried from a fresh read",
    ["service", "writer"],
)
PARTITIONS_FENCED = Counter(
    "lemma_partitions_fenced_total",
    "Partitions this replica stopped folding because another replica claimed them",
    ["service", "consumer"],
)

RATING_TO_PASSPORT = Histogram(
    "lemma_rating_to_passport_seconds",
    "From a rating's submission (its RatingSubmitted's time) to the passport projection having "
    "written the score change it caused (the SciUpdated sci published for it); live folds only",
    ["service"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
SCI_LEARNERS = Gauge(
    "lemma_sci_learners",
    "Learners whose current SCI in the skill falls in the range (0-10 ... 90-100), over the whole "
    "sci store: every replica reports the same numbers (aggregate with max, never sum)",
    ["service", "skill", "range"],
)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def http_latency_middleware(
    service: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Observe each request under its route template (``/v1/sessions/{session_id}``), not its raw path."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        status = 500  # unless the handler answers
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            template = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(service, request.method, template, str(status)).observe(
                time.perf_counter() - start
            )

    return middleware
