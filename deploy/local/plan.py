"""The processes of a stack of a given shape: their names, roles, ports and replica ids.

Pure: the stack starts, the supervisor restarts, and the status reports from this one list,
so a restarted replica keeps its name, instance id and port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deploy.local.cluster import broker_name
from deploy.local.config import StackConfig

Role = Literal["broker", "service", "gateway", "prometheus", "supervisor"]
ROLES: tuple[Role, ...] = ("broker", "service", "gateway", "prometheus", "supervisor")
SUPERVISOR = "supervisor"
GATEWAY = "gateway"
PROMETHEUS = "prometheus"


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack. ``instance`` is a service replica's ``LEMMA_INSTANCE`` or a
    broker's node id; ``port`` is where it answers (a broker's client port)."""

    name: str
    role: Role
    port: int | None = None
    service: str | None = None
    instance: int | None = None


def service_process_name(service: str, instance: int, replicas: int) -> str:
    """``passport`` when a service runs once, ``passport-1``, ``passport-2``... when replicated."""
    return service if replicas == 1 else f"{service}-{instance}"


def brokers(config: StackConfig) -> list[ProcessSpec]:
    return [
        ProcessSpec(broker_name(node, config.brokers), "broker", port, instance=node)
        for node, port, _ in config.kafka_nodes
    ]


def services(config: StackConfig) -> list[ProcessSpec]:
    """Every replica of every service, the services in start order, replica 1 first."""
    return [
        ProcessSpec(service_process_name(name, instance, config.replicas), "service", port, name, instance)
        for name in config.services
        for instance, port in enumerate(config.replica_ports(name), start=1)
    ]


def process_plan(config: StackConfig, *, supervised: bool = True) -> list[ProcessSpec]:
    """Every process of the stack in start order: brokers, services, gateway, Prometheus (when
    the stack has it), supervisor."""
    plan = [*brokers(config), *services(config), ProcessSpec(GATEWAY, "gateway", config.gateway_port)]
    if config.prometheus:
        plan.append(ProcessSpec(PROMETHEUS, "prometheus", config.prometheus_port))
    return [*plan, ProcessSpec(SUPERVISOR, "supervisor")] if supervised else plan


def role_of(name: str) -> Role:
    """The role of a pid file's process the current plan does not name (another shape's)."""
    if name == SUPERVISOR:
        return "supervisor"
    if name == GATEWAY:
        return "gateway"
    if name == PROMETHEUS:
        return "prometheus"
    return "broker" if name == "kafka" or name.startswith("kafka-") else "service"
