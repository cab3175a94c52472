"""The Prometheus beside the local stack: a job per service named as production names it, a
target per replica, the shipped alert rules; Prometheus's own promtool accepts the file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from deploy.local import prometheus
from deploy.local.config import StackConfig
from deploy.local.plan import process_plan, role_of


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs it (Debian's package prometheus)"
    return found


def test_every_replica_is_scraped_in_its_service_job(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, replicas=2, prometheus=True)
    jobs = {job["job_name"]: job for job in prometheus.scrape_config(config)["scrape_configs"]}
    assert set(jobs) == {f"lemma-{name}" for name in config.services}
    for name in config.services:
        targets = jobs[f"lemma-{name}"]["static_configs"][0]["targets"]
        assert targets == [f"127.0.0.1:{port}" for port in config.replica_ports(name)]
        assert len(targets) == 2
    assert prometheus.scrape_config(config)["rule_files"] == [str(prometheus.ALERT_RULES)]


def test_promtool_accepts_the_written_configuration_and_its_rules(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, replicas=3, prometheus=True)
    path = prometheus.write_config(config)
    assert json.loads(path.read_text())["scrape_configs"]  # JSON, which Prometheus reads as YAML
    out = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr and "rules found" in out.stdout + out.stderr


def test_promtool_refuses_a_broken_configuration(tmp_path: Path) -> None:
    """The check above can fail: a job without a name is refused."""
    config = StackConfig(state_dir=tmp_path, prometheus=True)
    broken = prometheus.scrape_config(config)
    broken["scrape_configs"][0].pop("job_name")
    path = tmp_path / "broken.yml"
    path.write_text(json.dumps(broken))
    out = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True)
    assert out.returncode != 0


def test_prometheus_runs_after_the_gateway_only_when_asked(tmp_path: Path) -> None:
    without = [spec.name for spec in process_plan(StackConfig(state_dir=tmp_path))]
    assert "prometheus" not in without
    config = StackConfig(state_dir=tmp_path, prometheus=True)
    names = [spec.name for spec in process_plan(config)]
    assert names[-3:] == ["gateway", "prometheus", "supervisor"]
    assert role_of("prometheus") == "prometheus"
    assert config.ports()["Prometheus"] == config.prometheus_port
    argv = prometheus.argv(config)
    assert f"--web.listen-address=127.0.0.1:{config.prometheus_port}" in argv
    assert f"--config.file={prometheus.config_path(config)}" in argv


def test_the_shape_with_prometheus_is_saved_and_read_back(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, prometheus=True, prometheus_port=9300)
    config.save()
    loaded = StackConfig.load(tmp_path)
    assert loaded == config
    assert StackConfig.resolve(tmp_path, prometheus=False).prometheus is False
    assert StackConfig.resolve(tmp_path).prometheus is True
