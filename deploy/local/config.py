"""The local stack's configuration: which processes, on which ports, with state in which folder.

The configuration is written to ``<state>/stack.json`` when the stack starts, so ``down``
and ``status`` (and a later ``up``) use the very same ports.
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


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which 127.0.0.1 ports it listens on."""

    state_dir: Path = DEFAULT_STATE_DIR
    gateway_port: int = 8000
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    kafka_port: int = 9092
    # the KRaft controller of the one-node cluster (the services never use it)
    kafka_controller_port: int = 9093

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())

    # --- derived -------------------------------------------------------------------------

    @property
    def services(self) -> list[str]:
        return list(self.service_ports)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

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
        return {"Kafka": self.kafka_port, "Kafka controller": self.kafka_controller_port}

    def ports(self) -> dict[str, int]:
        """Every port of the stack by what listens on it (for clash checks and the status)."""
        ports = {"gateway": self.gateway_port, **self.kafka_ports()}
        ports.update({f"service {name}": port for name, port in self.service_ports.items()})
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
    def resolve(cls, state_dir: Path | None = None, gateway_port: int | None = None) -> StackConfig:
        """The configuration ``lemma stack`` uses.

        The folder is ``state_dir``, else ``LEMMA_STATE_DIR``, else ``var/``. The ports are
        those saved in its ``stack.json`` (edit it to move a port), else the defaults; the
        gateway port is ``gateway_port``, else ``LEMMA_GATEWAY_PORT``, else that.
        """
        folder = Path(state_dir or os.environ.get("LEMMA_STATE_DIR") or DEFAULT_STATE_DIR)
        config = cls.load(folder) or cls(state_dir=folder)
        env_port = os.environ.get("LEMMA_GATEWAY_PORT")
        port = gateway_port or (int(env_port) if env_port else None)
        return replace(config, gateway_port=port) if port else config

    @classmethod
    def with_free_ports(cls, state_dir: Path) -> StackConfig:
        """A configuration whose every port is free right now."""
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
