"""Readiness as GET /readyz answers it and as the gauges the LemmaReplicaNotReady alert reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY

from shared.readiness import Checks, ReadinessMonitor


@dataclass
class Runtime:
    checking: list[object] = field(default_factory=list)
    refused: list[object] = field(default_factory=list)


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def checks(
    service: str, *, store: bool = True, broker: bool = True, runtime: Runtime | None = None
) -> Checks:
    async def store_ping() -> bool:
        if store:
            return True
        raise ConnectionError("no store")

    async def broker_ping(timeout: float) -> bool:
        assert timeout > 0
        return broker

    return Checks(service, lambda: True, store_ping, broker_ping, [runtime or Runtime()])


async def test_a_ready_replica_sets_every_gauge_to_one() -> None:
    assert await checks("ready-one").ready()
    assert gauge("lemma_ready", service="ready-one") == 1
    for check in ("started", "store", "broker", "log"):
        assert gauge("lemma_ready_check", service="ready-one", check=check) == 1


async def test_each_failing_check_makes_the_replica_unready_and_is_named() -> None:
    cases = {
        "store": checks("unready-store", store=False),
        "broker": checks("unready-broker", broker=False),
        "log": checks("unready-log", runtime=Runtime(refused=["lemma.sci.v1[0]"])),
    }
    for failing, case in cases.items():
        assert not await case.ready()
        assert gauge("lemma_ready", service=case.service) == 0
        assert gauge("lemma_ready_check", service=case.service, check=failing) == 0
        passing = {"started", "store", "broker", "log"} - {failing}
        assert all(gauge("lemma_ready_check", service=case.service, check=c) == 1 for c in passing)


def test_the_monitor_exports_not_ready_until_it_has_checked() -> None:
    ReadinessMonitor(checks("not-checked-yet"))
    assert gauge("lemma_ready", service="not-checked-yet") == 0
