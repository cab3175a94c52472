"""The gateway's Caddyfile (``base/gateway/Caddyfile``): the local stack's ``render_caddyfile``
with the in-cluster service names."""

from __future__ import annotations

from pathlib import Path

from deploy.k8s.service_specs import SERVICES, resource_name
from deploy.local.gateway import deployed_site, render_caddyfile

GATEWAY_PORT = 8000
#: Where the gateway keeps Caddy's state (an emptyDir: the root file system is read-only).
CADDY_DIR = Path("/var/lib/caddy")
#: The in-cluster gateway: every interface of its pod, tokens from the identity provider; the
#: ingress controller in front of it (in the cluster's private ranges) passes the client's
#: address in X-Forwarded-For, which the gateway keeps for the services (LEMMA_TRUSTED_PROXIES
#: trusts the gateway in turn), so request limits count per client and not per ingress pod.
CLUSTER_SITE = deployed_site(
    "`python -m deploy.k8s.render` (deploy/k8s/render.py)", trusted_proxies="private_ranges"
)


def caddyfile() -> str:
    upstreams = {s.name: [f"{resource_name(s.name)}:{s.port}"] for s in SERVICES}
    # one upstream per service: the Service balances over its ready pods (readiness: /readyz)
    return render_caddyfile(GATEWAY_PORT, upstreams, CADDY_DIR, CLUSTER_SITE)
