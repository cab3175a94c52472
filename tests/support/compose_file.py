"""The compose deployment (``deploy/compose/``) as the tests read it: its files, the compose file
loaded (or a broken copy of it), its services and their environment as compose gives it.

Each structural check of ``tests/unit/test_compose_*.py`` is a function returning the problems
it finds; beside each ``== []`` test stands one that breaks a copy of the file and sees the check
report it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from deploy.local.config import SERVICES

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "deploy" / "compose"
COMPOSE = HERE / "compose.yaml"
ENV_EXAMPLE = HERE / ".env.example"
MONGO_INIT = HERE / "mongo-init.js"
PROMETHEUS = HERE / "prometheus.yml"
GRAFANA = HERE.parent / "grafana" / "provisioning"

Doc = dict[str, Any]
REPLICAS = ("1", "2")
LEMMA_IMAGE = "${LEMMA_IMAGE:-lemma:latest}"
#: A variable reference that stops `docker compose up` when the variable is empty.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
#: Any variable reference compose interpolates (``$$`` is a literal dollar for the container).
REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEYFILE|TOKEN|_AUTH$|PRIVATE")
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
MEMBERS = ("mongo-1", "mongo-2", "mongo-3")
#: A URL's credentials; the password may be a variable reference (whose message has spaces).
CREDENTIALS = re.compile(r"(?P<scheme>[a-z+]+)://(?P<user>[^:/@\s]*):(?P<password>\$\{[^}]*\}|[^@/\s]*)@")


def load() -> Doc:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` as compose gives it to the container, with ``env`` as the .env file."""

    def one(match: re.Match[str]) -> str:
        name, rest = match["name"], match["rest"]
        if env.get(name):
            return env[name]
        if rest.startswith(":-"):
            return rest[2:]
        raise AssertionError(f"{name} is required and empty")

    return REFERENCE.sub(one, value).replace("$$", "$")


def services(doc: Doc) -> dict[str, Doc]:
    found = doc["services"]
    assert isinstance(found, dict)
    return found


def environment(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping throughout"
    return {str(k): str(v) for k, v in env.items()}


def replicas_of(doc: Doc, name: str) -> dict[str, Doc]:
    """The compose services that run service ``name`` (by their command)."""
    return {
        key: svc
        for key, svc in services(doc).items()
        if svc.get("command") == ["python", "-m", f"services.{name}"]
    }


def all_replicas(doc: Doc) -> dict[str, Doc]:
    return {key: svc for name in SERVICES for key, svc in replicas_of(doc, name).items()}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def broken(mutate: Callable[[Doc], object]) -> Doc:
    doc = copy.deepcopy(load())
    mutate(doc)
    return doc


def mount(svc: Doc, source: str) -> str:
    """Where ``source`` (as written in compose.yaml) is mounted in ``svc``'s container."""
    for volume in svc.get("volumes", []):
        parts = str(volume).split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")
