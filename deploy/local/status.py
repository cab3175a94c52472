"""What runs in the local stack: each process's pid, role, replica, port, readiness and restarts.

Readiness is what an orchestrator would probe: a service replica's ``GET /readyz``, a broker's
client port, the gateway's root page; the supervisor is ready while it runs. Restart counts
come from the supervisor's ``run/supervisor.json``. All probes run at once, so a status of a
big stack takes as long as its slowest answer.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import asdict, dataclass
from typing import Any

from deploy.local import processes as proc
from deploy.local import prometheus
from deploy.local.config import StackConfig
from deploy.local.plan import ProcessSpec, Role, process_plan
from deploy.local.restarts import read_state


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    alive: bool
    ready: bool
    url: str
    role: Role = "service"
    service: str | None = None
    instance: int | None = None
    port: int | None = None
    restarts: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def url_of(config: StackConfig, spec: ProcessSpec) -> str:
    if spec.role == "broker":
        return f"kafka://127.0.0.1:{spec.port}"
    if spec.role == "gateway":
        return config.gateway_url
    if spec.role == "supervisor":
        return str(config.log_dir / "supervisor.log")
    if spec.role == "prometheus":
        return prometheus.url(config)
    return f"http://127.0.0.1:{spec.port}"


def probe(config: StackConfig, spec: ProcessSpec) -> bool:
    """Whether the process answers as it should when ready."""
    if spec.role == "broker":
        return spec.port is not None and proc.port_open(spec.port)
    if spec.role == "gateway":
        return proc.http_status(config.gateway_url + "/") == 200
    if spec.role == "service":
        return proc.http_status(f"http://127.0.0.1:{spec.port}/readyz", timeout=3.0) == 200
    if spec.role == "prometheus":
        return proc.http_status(prometheus.url(config) + "/-/ready") == 200
    return True


def stack_status(config: StackConfig) -> list[ProcessStatus]:
    """Every process of the stack in start order (the supervisor last)."""
    specs = process_plan(config)
    handles = {spec.name: proc.running(config.run_dir, spec.name) for spec in specs}
    supervised = read_state(config.run_dir)
    live = [spec for spec in specs if handles[spec.name] is not None]
    with concurrent.futures.ThreadPoolExecutor(max(1, min(16, len(live)))) as pool:
        ready = dict(zip([s.name for s in live], pool.map(lambda s: probe(config, s), live), strict=True))
    rows = []
    for spec in specs:
        handle = handles[spec.name]
        rows.append(
            ProcessStatus(
                name=spec.name,
                pid=handle.pid if handle else None,
                alive=handle is not None,
                ready=ready.get(spec.name, False),
                url=url_of(config, spec),
                role=spec.role,
                service=spec.service,
                instance=spec.instance,
                port=spec.port,
                restarts=supervised.restarts(spec.name) if supervised else 0,
            )
        )
    return rows


def status_json(config: StackConfig, rows: list[ProcessStatus]) -> dict[str, Any]:
    """``lemma stack status --json``: the stack's shape and every process."""
    return {
        "state_dir": str(config.state_dir),
        "gateway_url": config.gateway_url,
        "kafka_bootstrap": config.kafka_bootstrap,
        "brokers": config.brokers,
        "replicas": config.replicas,
        "replication_factor": config.replication_factor,
        "min_insync_replicas": config.min_insync_replicas,
        "prometheus_url": prometheus.url(config) if config.prometheus else None,
        "running": any(row.alive for row in rows),
        "processes": [row.to_json() for row in rows],
    }


COLUMNS = ("process", "role", "instance", "pid", "port", "alive", "ready", "restarts")


def table_rows(rows: list[ProcessStatus]) -> list[tuple[str, ...]]:
    """The plain ``lemma stack status`` table's cells, one row per process (see ``COLUMNS``)."""

    def yes_no(flag: bool) -> str:
        return "yes" if flag else "no"

    return [
        (
            row.name,
            row.role,
            str(row.instance) if row.instance is not None else "-",
            str(row.pid) if row.pid else "-",
            str(row.port) if row.port else "-",
            yes_no(row.alive),
            yes_no(row.ready),
            str(row.restarts),
        )
        for row in rows
    ]
