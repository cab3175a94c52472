"""The compose deployment's gateway: its committed Caddyfile is the local gateway's render for the
compose replicas, routes exactly as the local one, and Caddy adapts it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from deploy.compose import gateway as compose_gateway
from deploy.local.binaries import venv_bin
from deploy.local.config import SERVICES
from deploy.local.gateway import render_caddyfile
from tests.support.compose_file import load, mount, replicas_of, services


def test_the_committed_caddyfile_is_the_local_gateways_render_for_the_compose_replicas() -> None:
    assert compose_gateway.CADDYFILE.read_text() == compose_gateway.render(), (
        "deploy/compose/Caddyfile is stale: run `python -m deploy.compose.gateway`"
    )
    doc = load()
    assert mount(services(doc)["gateway"], "./Caddyfile") in services(doc)["gateway"]["command"]
    for name, upstreams in compose_gateway.upstreams().items():
        assert [u.rsplit(":", 1)[0] for u in upstreams] == sorted(replicas_of(doc, name))
        assert {u.rsplit(":", 1)[1] for u in upstreams} == {str(SERVICES[name])}


def test_the_compose_gateway_routes_exactly_as_the_local_one(tmp_path: Path) -> None:
    def routes(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if re.match(r"\s*(@\S+ path|handle|uri) ", line)]

    local = render_caddyfile(8000, dict(SERVICES), tmp_path)
    deployed = compose_gateway.CADDYFILE.read_text()
    assert routes(deployed) == routes(local) and len(routes(local)) > 3 * len(SERVICES)
    assert "\tbind " not in deployed  # every interface of its container
    for name in SERVICES:
        upstreams = " ".join(compose_gateway.upstreams()[name])
        assert deployed.count(f"reverse_proxy {upstreams} {{") == 2  # the routes and the API documents


def test_caddy_accepts_the_compose_caddyfile() -> None:
    argv = [venv_bin("caddy"), "adapt", "--config", str(compose_gateway.CADDYFILE), "--adapter", "caddyfile"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["apps"]["http"]["servers"]
