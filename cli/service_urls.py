"""Where the operator commands (``lemma projections``, ``lemma dlq redrive``) find each service's
replicas: the local stack's ports, or in a deployment ``LEMMA_OPS_URLS``.

``LEMMA_OPS_URLS`` names every service's replicas, ``service=url[,url...]``, services separated
by spaces or semicolons::

    LEMMA_OPS_URLS="passport=http://passport-1:8080,http://passport-2:8080 sci=dns+http://sci-pods:8080"

A ``dns+`` URL stands for every address its host name resolves to, one URL each: a Kubernetes
headless Service names every ready pod of a Deployment that way. Each replica folds and parks
its own partitions, so the commands ask every one of them.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from deploy.local.config import StackConfig

ENV = "LEMMA_OPS_URLS"
DNS_PREFIX = "dns+"

Resolve = Callable[[str, int], list[str]]


def _addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def expand(url: str, resolve: Resolve = _addresses) -> list[str]:
    """``url`` itself, or for a ``dns+`` URL one URL per address of its host."""
    if not url.startswith(DNS_PREFIX):
        return [url.rstrip("/")]
    plain = urlsplit(url[len(DNS_PREFIX) :])
    if not plain.hostname:
        raise ValueError(f"{url!r} names no host")
    port = plain.port or (443 if plain.scheme == "https" else 80)
    found = []
    for address in resolve(plain.hostname, port):
        host = f"[{address}]" if ":" in address else address
        found.append(f"{plain.scheme}://{host}:{port}{plain.path}".rstrip("/"))
    return found


def parse(value: str, resolve: Resolve = _addresses) -> dict[str, list[str]]:
    """``LEMMA_OPS_URLS`` as service -> the base URL of each replica."""
    urls: dict[str, list[str]] = {}
    for entry in (e for e in re.split(r"[;\s]+", value.strip()) if e):
        service, sep, listed = entry.partition("=")
        if not sep or not service or not listed:
            raise ValueError(f"{ENV}: {entry!r} is not service=url[,url...]")
        for url in listed.split(","):
            urls.setdefault(service, []).extend(expand(url, resolve))
    return urls


def service_urls(state_dir: Path | None) -> dict[str, list[str]]:
    """Every service's replicas: from ``LEMMA_OPS_URLS`` when it is set, else the local stack's."""
    from_env = os.environ.get(ENV, "").strip()
    if from_env:
        return parse(from_env)
    config = StackConfig.resolve(state_dir)
    saved = StackConfig.load(config.state_dir) or config
    return {
        name: [saved.service_url(name, n) for n in range(1, len(saved.replica_ports(name)) + 1)]
        for name in saved.services
    }
