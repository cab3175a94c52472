"""Prometheus beside the local stack: scraping every replica of every service with the alert
rules production ships (``deploy/prometheus/alerts.yml``), so the alerts and the queries behind
the dashboards are tried against real numbers.

The scrape jobs are named as in production (``lemma-<service>``, one target per replica), so
the rules and dashboards need no local variant. Prometheus reads YAML, of which JSON is a part:
the configuration is written as JSON, with no YAML library at run time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from deploy.local.config import REPO_ROOT, StackConfig

#: The alert rules production loads, loaded here unchanged.
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Debian's package puts it here; ``make run`` installs it when it is missing.
BINARY = "/usr/bin/prometheus"
#: How often it scrapes and evaluates the rules: often, so a seeding's lag shows as a curve.
INTERVAL = "5s"
#: How long it keeps samples in ``<state>/prometheus/data``.
RETENTION = "7d"


def job_name(service: str) -> str:
    """The scrape job of a service's replicas, as the alert rules and dashboards expect it."""
    return f"lemma-{service}"


def scrape_config(config: StackConfig) -> dict[str, Any]:
    """Prometheus's configuration for ``config``: a job per service, a target per replica."""
    jobs = [
        {
            "job_name": job_name(name),
            "metrics_path": "/metrics",
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{port}" for port in config.replica_ports(name)],
                    "labels": {"stack": "local"},
                }
            ],
        }
        for name in config.services
    ]
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": jobs,
    }


def home(config: StackConfig) -> Path:
    return config.state_dir / "prometheus"


def config_path(config: StackConfig) -> Path:
    return home(config) / "prometheus.yml"


def write_config(config: StackConfig) -> Path:
    """Write the configuration (at every ``up``, so it follows the stack's ports and replicas)."""
    path = config_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scrape_config(config), indent=2) + "\n")
    return path


def binary() -> str:
    """The prometheus program: Debian's, else one on PATH."""
    found = BINARY if Path(BINARY).exists() else shutil.which("prometheus")
    if not found:
        raise FileNotFoundError(
            "prometheus is missing: `make run` installs Debian's package (apt-get install prometheus), "
            "or start the stack without it (--no-prometheus)"
        )
    return found


def argv(config: StackConfig) -> list[str]:
    """The command line: loopback only, its data and configuration under the state folder."""
    return [
        binary(),
        f"--config.file={config_path(config)}",
        f"--storage.tsdb.path={home(config) / 'data'}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address=127.0.0.1:{config.prometheus_port}",
    ]


def url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.prometheus_port}"
