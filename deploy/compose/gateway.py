"""The compose deployment's Caddyfile, rendered by the local gateway's own ``render_caddyfile``
so it routes exactly as the local stack's gateway does; only the upstreams (the replicas'
container names), the listening address (every interface of the gateway's container) and the
root page's words differ.

The file is committed beside compose.yaml (Caddy reads it mounted read-only);
``python -m deploy.compose.gateway`` writes it again, and a unit test fails when the committed
file and the render differ.
"""

from __future__ import annotations

from pathlib import Path

from deploy.local.config import SERVICES
from deploy.local.gateway import deployed_site, render_caddyfile

HERE = Path(__file__).resolve().parent
CADDYFILE = HERE / "Caddyfile"

#: Replicas of every service in compose.yaml: ``<service>-1`` and ``<service>-2``.
REPLICAS = 2
#: The gateway's port inside its container (compose publishes it as LEMMA_GATEWAY_PORT).
GATEWAY_PORT = 8000
#: Where Caddy keeps its state in the container: writable by the image's non-root user.
CADDY_DIR = Path("/tmp/caddy")

SITE = deployed_site("`python -m deploy.compose.gateway` (deploy/compose/gateway.py)")


def replica_names(service: str) -> list[str]:
    """The compose services that run ``service``, replica 1 first."""
    return [f"{service}-{n}" for n in range(1, REPLICAS + 1)]


def upstreams() -> dict[str, list[str]]:
    """Each service's replicas as the gateway reaches them: container name and the service's port."""
    return {name: [f"{replica}:{port}" for replica in replica_names(name)] for name, port in SERVICES.items()}


def render() -> str:
    return render_caddyfile(GATEWAY_PORT, upstreams(), CADDY_DIR, SITE)


if __name__ == "__main__":
    CADDYFILE.write_text(render())
    print(f"wrote {CADDYFILE}")
