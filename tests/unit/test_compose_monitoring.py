"""The compose deployment's Prometheus and Grafana: Prometheus scrapes exactly every replica and
loads the alert rules from where they are kept (promtool accepts the configuration), Grafana is
provisioned with the Prometheus data source and the dashboards folder. The scrape check also runs
on broken copies of the configuration."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.local.config import SERVICES
from tests.support.compose_file import (
    GRAFANA,
    HERE,
    PROMETHEUS,
    ROOT,
    Doc,
    environment,
    load,
    mount,
    replicas_of,
    services,
)


def scrape_problems(doc: Doc, config: Doc) -> list[str]:
    problems = []
    every = services(doc)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped: list[tuple[str, str]] = []
    for name, job in jobs.items():
        for target in [t for c in job.get("static_configs", []) for t in c["targets"]]:
            host, _, port = target.rpartition(":")
            if name == "prometheus" and host == "localhost":
                continue
            if host not in every:
                problems.append(f"{name}: target {target} is no compose service")
            elif environment(every[host]).get("LEMMA_PORT") != port:
                problems.append(f"{name}: target {target} is not where {host} listens")
            scraped.append((name, host))
    for name in SERVICES:
        for replica in replicas_of(doc, name):
            if scraped.count((f"lemma-{name}", replica)) != 1:
                problems.append(f"{replica} is not scraped once by job lemma-{name}")
    alerts = mount(every["prometheus"], "../prometheus/alerts.yml")
    if config.get("rule_files") != [alerts]:
        problems.append(f"rule_files {config.get('rule_files')} are not the mounted alerts ({alerts})")
    return problems


def test_prometheus_scrapes_exactly_every_replica_and_loads_the_alert_rules() -> None:
    doc = load()
    assert scrape_problems(doc, yaml.safe_load(PROMETHEUS.read_text())) == []
    # the rules are mounted from where they are kept and tested, not copied
    assert (HERE / "../prometheus/alerts.yml").resolve() == ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert not list(HERE.rglob("alerts*.yml"))
    # the alert rules select the jobs by this name
    assert 'job=~"lemma-.*"' in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert mount(services(doc)["prometheus"], "./prometheus.yml") == "/etc/prometheus/prometheus.yml"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["scrape_configs"][0]["static_configs"][0]["targets"].pop(),
        lambda c: c["scrape_configs"][1].update(job_name="matching"),
        lambda c: c["scrape_configs"][2]["static_configs"][0]["targets"].append("sessions-3:8103"),
        lambda c: c["scrape_configs"][4]["static_configs"][0]["targets"].__setitem__(0, "sci-1:9999"),
        lambda c: c.update(rule_files=["/etc/prometheus/alerts.yml"]),
    ],
)
def test_the_scrape_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    mutate(config)
    assert scrape_problems(load(), config)


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs it (Debian's package prometheus)"
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_grafana_provisions_the_prometheus_data_source_and_the_dashboards_folder() -> None:
    grafana = services(load())["grafana"]
    assert mount(grafana, "../grafana/provisioning") == "/etc/grafana/provisioning"
    [source] = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yaml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert url.hostname in services(load()) and url.hostname == "prometheus" and url.port == 9090
    [provider] = yaml.safe_load((GRAFANA / "dashboards" / "lemma.yaml").read_text())["providers"]
    assert provider["options"]["path"] == mount(grafana, "../grafana/dashboards")
    assert (HERE / "../grafana/dashboards").resolve() == ROOT / "deploy" / "grafana" / "dashboards"
