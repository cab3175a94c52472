"""The local stack's configuration: which processes, on which ports, with state in which folder.

The configuration is written to ``<state>/stack.json`` when the stack starts, so ``down``
and ``status`` (and a later ``up``) use the very same ports, brokers and replicas.

The stack's shape: ``brokers`` Kafka nodes (1, or a KRaft cluster of combined broker and
controller nodes) and ``replicas`` processes of every service. Node 1 and replica 1 keep the
historic ports (``kafka_port``, ``service_ports``); the others' ports are in
``more_kafka_ports`` and ``more_service_ports``, by default two ports up per node
(9094/9095, 9096/9097) and ten up per replica (8111-8115, 8121-8125).
"""

from __future__ import annotations

import json
import os
import random
import socket
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: The services of the stack with their default ports, in start order. The one list.
SERVICES: dict[str, int] = {
    "passport": 8101,
    "matching": 8102,
    "sessions": 8103,
    "evidence": 8104,
    "sci": 8105,
}

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / "var"
#: The most Kafka nodes and service replicas a local stack runs (the default port steps leave
#: room for this many).
MAX_BROKERS = 5
MAX_REPLICAS = 9
#: Default port steps of node n and replica n after the first.
BROKER_PORT_STEP = 2
REPLICA_PORT_STEP = 10


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which 127.0.0.1 ports it listens on."""

    state_dir: Path = DEFAULT_STATE_DIR
    gateway_port: int = 8000
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    kafka_port: int = 9092
    # the KRaft controller of node 1 (the services never use it)
    kafka_controller_port: int = 9093
    brokers: int = 1
    replicas: int = 1
    # [client port, controller port] of nodes 2.. (filled with defaults when missing)
    more_kafka_ports: list[list[int]] = field(default_factory=list)
    # the ports of replicas 2.. of each service (filled with defaults when missing)
    more_service_ports: dict[str, list[int]] = field(default_factory=dict)
    # Prometheus beside the stack (deploy/local/prometheus.py), scraping every replica. Not
    # 9090: Debian's package may run a system Prometheus there.
    prometheus: bool = False
    prometheus_port: int = 9190

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())
        if not 1 <= self.brokers <= MAX_BROKERS:
            raise ValueError(f"brokers must be 1 to {MAX_BROKERS}, not {self.brokers}")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be 1 to {MAX_REPLICAS}, not {self.replicas}")
        # exactly the ports of this shape, so two configurations of one shape compare equal
        nodes = []
        for n in range(2, self.brokers + 1):
            saved = self.more_kafka_ports[n - 2] if len(self.more_kafka_ports) >= n - 1 else None
            step = BROKER_PORT_STEP * (n - 1)
            default = [self.kafka_port + step, self.kafka_controller_port + step]
            nodes.append([int(p) for p in saved] if saved else default)
        object.__setattr__(self, "more_kafka_ports", nodes)
        replicas: dict[str, list[int]] = {}
        for name, port in self.service_ports.items():
            saved_ports = list(self.more_service_ports.get(name, []))
            replicas[name] = [
                int(saved_ports[r - 2]) if len(saved_ports) >= r - 1 else port + REPLICA_PORT_STEP * (r - 1)
                for r in range(2, self.replicas + 1)
            ]
        object.__setattr__(self, "more_service_ports", replicas)

    # --- derived -------------------------------------------------------------------------

    @property
    def services(self) -> list[str]:
        return list(self.service_ports)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def kafka_nodes(self) -> list[tuple[int, int, int]]:
        """(node id, client port, controller port) of every Kafka node, node 1 first."""
        first = (1, self.kafka_port, self.kafka_controller_port)
        return [first, *((n, p, c) for n, (p, c) in enumerate(self.more_kafka_ports, start=2))]

    @property
    def kafka_bootstrap(self) -> str:
        """Every node's client address, comma-separated (what the services are given)."""
        return ",".join(f"127.0.0.1:{port}" for _, port, _ in self.kafka_nodes)

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic, internal ones included: one per node, at most 3."""
        return min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        """Copies a write needs (acks=all): 2 of 3, so one node may be down; 1 below 3 nodes."""
        return 2 if self.replication_factor >= 3 else 1

    def replica_ports(self, name: str) -> list[int]:
        """The HTTP port of each replica of service ``name``, replica 1 first."""
        return [self.service_ports[name], *self.more_service_ports.get(name, [])]

    def service_url(self, name: str, instance: int = 1) -> str:
        """The base URL of replica ``instance`` of service ``name`` (replica 1 by default)."""
        return f"http://127.0.0.1:{self.replica_ports(name)[instance - 1]}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def kafka_home(self) -> Path:
        """The broker's folder: server.properties and its log (data/)."""
        return self.state_dir / "kafka"

    def kafka_ports(self) -> dict[str, int]:
        if self.brokers == 1:
            return {"Kafka": self.kafka_port, "Kafka controller": self.kafka_controller_port}
        ports: dict[str, int] = {}
        for node, port, controller in self.kafka_nodes:
            ports.update({f"Kafka {node}": port, f"Kafka {node} controller": controller})
        return ports

    def ports(self) -> dict[str, int]:
        """Every port of the stack by what listens on it (for clash checks and the status)."""
        ports = {"gateway": self.gateway_port, **self.kafka_ports()}
        if self.prometheus:
            ports["Prometheus"] = self.prometheus_port
        for name in self.service_ports:
            for instance, port in enumerate(self.replica_ports(name), start=1):
                ports[f"service {name}" if self.replicas == 1 else f"service {name} {instance}"] = port
        return ports

    # --- persistence ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        # SERVICES decides which services run; a saved file only keeps their ports.
        saved = values.get("service_ports") or {}
        values["service_ports"] = {name: int(saved.get(name, port)) for name, port in SERVICES.items()}
        more = values.get("more_service_ports") or {}
        values["more_service_ports"] = {name: list(more[name]) for name in SERVICES if name in more}
        return cls(**values)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(self.config_file)

    @classmethod
    def load(cls, state_dir: Path) -> StackConfig | None:
        """The configuration saved in ``state_dir``, or None when the stack never ran there."""
        path = Path(state_dir) / "stack.json"
        if not path.exists():
            return None
        # The folder it was found in wins over the one recorded (the folder may have moved).
        return cls.from_json({**json.loads(path.read_text()), "state_dir": state_dir})

    # --- construction --------------------------------------------------------------------

    @classmethod
    def resolve(
        cls,
        state_dir: Path | None = None,
        gateway_port: int | None = None,
        *,
        brokers: int | None = None,
        replicas: int | None = None,
        prometheus: bool | None = None,
    ) -> StackConfig:
        """The configuration ``lemma stack`` uses.

        The folder is ``state_dir``, else ``LEMMA_STATE_DIR``, else ``var/``. The ports and the
        shape are those saved in its ``stack.json`` (edit it to move a port), else the
        defaults (one broker, one replica, no Prometheus); the gateway port is ``gateway_port``,
        else ``LEMMA_GATEWAY_PORT``, else that; ``brokers``, ``replicas`` and ``prometheus``
        change the shape.
        """
        folder = Path(state_dir or os.environ.get("LEMMA_STATE_DIR") or DEFAULT_STATE_DIR)
        config = cls.load(folder) or cls(state_dir=folder)
        env_port = os.environ.get("LEMMA_GATEWAY_PORT")
        port = gateway_port or (int(env_port) if env_port else None)
        if port:
            config = replace(config, gateway_port=port)
        return config.reshaped(brokers, replicas, prometheus)

    def reshaped(
        self, brokers: int | None = None, replicas: int | None = None, prometheus: bool | None = None
    ) -> StackConfig:
        """This configuration with another number of brokers or replicas, or with or without
        Prometheus (None: unchanged)."""
        return replace(
            self,
            brokers=self.brokers if brokers is None else brokers,
            replicas=self.replicas if replicas is None else replicas,
            prometheus=self.prometheus if prometheus is None else prometheus,
        )

    @classmethod
    def with_free_ports(
        cls, state_dir: Path, *, brokers: int = 1, replicas: int = 1, prometheus: bool = False
    ) -> StackConfig:
        """A configuration of this shape whose every port is free right now."""
        taken: set[int] = set()

        def pick() -> int:
            # Below the kernel's ephemeral range (32768+), where clients' own ports come from.
            for _ in range(2000):
                port = random.randint(10000, 32767)
                if port in taken or not port_is_free(port):
                    continue
                taken.add(port)
                return port
            raise RuntimeError("no free port found")

        return cls(
            state_dir=state_dir,
            gateway_port=pick(),
            service_ports={name: pick() for name in SERVICES},
            kafka_port=pick(),
            kafka_controller_port=pick(),
            brokers=brokers,
            replicas=replicas,
            more_kafka_ports=[[pick(), pick()] for _ in range(brokers - 1)],
            more_service_ports={name: [pick() for _ in range(replicas - 1)] for name in SERVICES},
            prometheus=prometheus,
            prometheus_port=pick(),
        )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``port`` now (connections in TIME_WAIT do not count:
    the servers of the stack set SO_REUSEADDR, so does this check)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
