"""The gateway in front of several replicas: one health-checked pool per service, and a
Caddyfile Caddy itself accepts (``caddy adapt``: parsed, nothing started)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from deploy.local.binaries import venv_bin
from deploy.local.config import StackConfig
from deploy.local.gateway import HEALTH_URI, ROUTES, render_caddyfile, reverse_proxy


def pooled(config: StackConfig) -> str:
    upstreams = {name: config.replica_ports(name) for name in config.services}
    return render_caddyfile(config.gateway_port, upstreams, config.state_dir / "caddy")


def proxy_blocks(text: str, name: str) -> list[str]:
    """The reverse_proxy blocks of service ``name``: its routes', then its API documents'."""
    found = []
    for handle in (f"@{name}", f"@{name}_docs"):
        block = re.search(rf"\thandle {handle} {{\n(.*?)\n\t}}\n", text, re.DOTALL)
        assert block is not None, handle
        found.append(block.group(1))
    return found


def test_each_service_is_a_pool_of_its_replicas_with_active_and_passive_health_checks(
    tmp_path: Path,
) -> None:
    config = StackConfig.with_free_ports(tmp_path, replicas=3)
    text = pooled(config)
    for name in config.services:
        upstreams = " ".join(f"127.0.0.1:{p}" for p in config.replica_ports(name))
        for block in proxy_blocks(text, name):
            assert f"reverse_proxy {upstreams} {{" in block
            options = dict(line.strip().split(" ", 1) for line in block.splitlines()[1:-1] if " " in line)
            assert options["health_uri"] == HEALTH_URI == "/readyz"  # active: readiness every second
            assert options["health_interval"] == "1s"
            assert options["health_status"] == "200"
            assert options["fail_duration"] and options["max_fails"] == "1"  # passive
            assert options["lb_try_duration"]  # a request a dead replica refused goes to another
            assert options["lb_policy"] == "round_robin"
    assert f"@passport path {' '.join(ROUTES['passport'])}" in text


def test_one_replica_is_proxied_to_as_before(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    text = pooled(config)
    assert "health_uri" not in text and "lb_policy" not in text
    assert reverse_proxy(["127.0.0.1:8101"]) == "\t\treverse_proxy 127.0.0.1:8101"
    # a bare port and a list of one render the same
    one = render_caddyfile(8000, {"sci": 8105}, tmp_path)
    assert one == render_caddyfile(8000, {"sci": [8105]}, tmp_path)


def test_the_root_page_lists_every_replica_for_operators(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path, replicas=2)
    text = pooled(config)
    for port in config.replica_ports("sci"):
        assert f"http://127.0.0.1:{port}" in text


def test_caddy_accepts_the_pooled_caddyfile(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path, replicas=2)
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(pooled(config))
    argv = [venv_bin("caddy"), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert '"health_checks"' in done.stdout and '"/readyz"' in done.stdout
