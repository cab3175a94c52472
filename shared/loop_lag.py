"""How late the event loop runs a task that is due: the measure of a starved heartbeat.

aiokafka sends a consumer's heartbeats from a task on the service's event loop. Work that holds
the loop (a fold of a large batch, a synchronous store call, CPU work not moved to a thread)
delays every task on it, heartbeats included; a member whose heartbeats stop for the session
timeout is thrown out of its group and its partitions move. ``LoopLagMonitor`` sleeps
``interval_s`` over and over and records how much later than asked it woke:
``lemma_event_loop_lag_seconds`` (histogram) and ``lemma_event_loop_lag_max_seconds`` (the
worst since the start). Heartbeats are never starved while the worst lag stays well under the
heartbeat interval (3 s, or a third of ``LEMMA_CONSUMER_SESSION_TIMEOUT_MS`` when that is
shorter) and far under the session timeout (45 s).
"""

from __future__ import annotations

import time

from prometheus_client import Gauge, Histogram

from shared.worker import PeriodicWorker

LOOP_LAG = Histogram(
    "lemma_event_loop_lag_seconds",
    "How much later than due the event loop ran a waiting task",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
LOOP_LAG_MAX = Gauge(
    "lemma_event_loop_lag_max_seconds", "The event loop's worst lag since the process started", ["service"]
)


class LoopLagMonitor(PeriodicWorker):
    """A background task of every service (started by ``shared.service.create_app``)."""

    def __init__(self, service: str, interval_s: float = 0.1) -> None:
        super().__init__(f"{service}-loop-lag", interval_s, self._tick)
        self.service = service
        self.worst_s = 0.0
        self._due = 0.0

    async def start(self) -> None:
        self._due = time.monotonic() + self.interval_s
        await super().start()

    def record(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        LOOP_LAG.labels(self.service).observe(lag_s)
        if lag_s > self.worst_s:
            self.worst_s = lag_s
            LOOP_LAG_MAX.labels(self.service).set(lag_s)

    async def _tick(self) -> None:
        now = time.monotonic()
        self.record(now - self._due)
        self._due = now + self.interval_s  # the worker sleeps again as soon as this returns
