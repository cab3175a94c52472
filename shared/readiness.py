"""Whether a replica is ready to serve: what ``GET /readyz`` answers, and the same as metrics.

An orchestrator probes ``/readyz`` and stops sending traffic to a replica that is not ready, but
it raises nothing: a replica that stays unready (its store or the broker unreachable, a
partition refused or parked) is found by the alert on ``lemma_ready``. ``ReadinessMonitor``
checks every ``interval_s`` seconds so the gauge is fresh whoever probes; each answer of
``/readyz`` records it too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from prometheus_client import Gauge

from shared.worker import PeriodicWorker

READY = Gauge(
    "lemma_ready", "1 when this replica is ready to serve (GET /readyz answers 200), else 0", ["service"]
)
READY_CHECK = Gauge(
    "lemma_ready_check",
    "Each readiness check of this replica: 1 passing, 0 failing (started, store, broker, log)",
    ["service", "check"],
)
#: How long a store or broker ping may take before it counts as failed.
PING_TIMEOUT_S = 2.0


class Folding(Protocol):
    """What readiness reads of a projection runtime."""

    @property
    def checking(self) -> Collection[object]: ...

    @property
    def refused(self) -> Collection[object]: ...


class Checks:
    """The readiness checks of one replica: started, its store and the broker answer, and every
    partition positioned on the log its store folded, none refused or parked (one waiting to
    retry a failed record is still ready: it moves on its own)."""

    def __init__(
        self,
        service: str,
        started: Callable[[], bool],
        store_ping: Callable[[], Awaitable[bool]],
        broker_ping: Callable[[float], Awaitable[bool]],
        runtimes: Sequence[Folding],
    ) -> None:
        self.service = service
        self.started = started
        self.store_ping = store_ping
        self.broker_ping = broker_ping
        self.runtimes = runtimes

    async def run(self) -> dict[str, bool]:
        checks: dict[str, bool] = {"started": bool(self.started())}
        try:
            checks["store"] = bool(await self.store_ping())
        except Exception:
            checks["store"] = False
        try:
            checks["broker"] = bool(await self.broker_ping(PING_TIMEOUT_S))
        except Exception:
            checks["broker"] = False
        checks["log"] = not any(r.checking or r.refused for r in self.runtimes)
        return checks

    def record(self, checks: dict[str, bool]) -> bool:
        """Set the gauges from ``checks``; True when all pass."""
        ready = all(checks.values())
        READY.labels(self.service).set(1 if ready else 0)
        for name, passing in checks.items():
            READY_CHECK.labels(self.service, name).set(1 if passing else 0)
        return ready

    async def ready(self) -> bool:
        return self.record(await self.run())


class ReadinessMonitor(PeriodicWorker):
    """A background task of every service (started by ``shared.service.create_app``)."""

    def __init__(self, checks: Checks, interval_s: float = 10.0) -> None:
        super().__init__(f"{checks.service}-readiness", interval_s, checks.ready)
        checks.record({"started": False})  # exported from the start: not ready until checked
