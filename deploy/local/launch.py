"""How each process of the stack is started: its command line and environment.

``lemma stack up`` and the supervisor both start processes from here, so a replica started
again gets the very same ``LEMMA_INSTANCE``, port, brokers and store as the first time.
"""

from __future__ import annotations

import os
import sys

from deploy.local import cluster, prometheus
from deploy.local.binaries import venv_bin
from deploy.local.config import StackConfig
from deploy.local.credentials import jwt_secret
from deploy.local.gateway import render_caddyfile
from deploy.local.plan import ProcessSpec

Command = tuple[list[str], dict[str, str] | None]


def service_env(config: StackConfig, spec: ProcessSpec) -> dict[str, str]:
    """A replica's environment: its port and instance id, every broker, the cluster's
    replication settings, and the state folder (all replicas of a service share its store:
    ``<state>/data/<service>.db``, or ``LEMMA_STORE_URL`` when set)."""
    assert spec.role == "service" and spec.port is not None and spec.instance is not None
    return {
        **os.environ,
        "LEMMA_PORT": str(spec.port),
        "LEMMA_HOST": "127.0.0.1",
        "LEMMA_INSTANCE": str(spec.instance),
        "LEMMA_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "LEMMA_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",  # the stack's own broker
        "LEMMA_KAFKA_REPLICATION_FACTOR": str(config.replication_factor),
        "LEMMA_KAFKA_MIN_INSYNC_REPLICAS": str(config.min_insync_replicas),
        "LEMMA_STATE_DIR": str(config.state_dir),
        "LEMMA_ENVIRONMENT": os.environ.get("LEMMA_ENVIRONMENT", "development"),
        "LEMMA_JWT_SECRET": os.environ.get("LEMMA_JWT_SECRET") or jwt_secret(config.state_dir),
        "PYTHONUNBUFFERED": "1",
    }


def caddyfile_path(config: StackConfig) -> str:
    return str(config.state_dir / "Caddyfile")


def write_caddyfile(config: StackConfig) -> None:
    """The gateway's routes to every replica of every service (written at every ``up``)."""
    upstreams = {name: config.replica_ports(name) for name in config.services}
    text = render_caddyfile(config.gateway_port, upstreams, config.state_dir / "caddy")
    (config.state_dir / "Caddyfile").write_text(text)


def command(config: StackConfig, spec: ProcessSpec) -> Command:
    """The command line and environment (None: this process's) that start ``spec``."""
    if spec.role == "broker":
        node = next(n for n in cluster.nodes(config) if n.name == spec.name)
        return cluster.restart_argv(node), None
    if spec.role == "service":
        return [sys.executable, "-m", f"services.{spec.service}"], service_env(config, spec)
    if spec.role == "gateway":
        caddy_dir = config.state_dir / "caddy"
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(caddy_dir / "config"),
            "XDG_DATA_HOME": str(caddy_dir / "data"),
        }
        argv = [venv_bin("caddy"), "run", "--config", caddyfile_path(config), "--adapter", "caddyfile"]
        return argv, env
    if spec.role == "prometheus":
        return prometheus.argv(config), None
    argv = [sys.executable, "-m", "deploy.local.supervisor", "--state-dir", str(config.state_dir)]
    return argv, {**os.environ, "PYTHONUNBUFFERED": "1"}
