"""The Kubernetes manifests (deploy/k8s) as the tests read them: both overlays rendered with
``kubectl kustomize`` (once each), the few ways the tests look objects up, and a container's
environment as the kubelet makes it.

Each check of ``tests/unit/test_k8s_*.py`` is a function returning what is wrong (a ``Check``),
run on the rendered overlays (nothing) and on a copy broken on purpose (something, a ``Break``),
so none can pass by never looking.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploy.k8s.service_specs import SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICE_NAMES = tuple(s.name for s in SERVICES)
WORKLOADS = ("Deployment", "StatefulSet", "Job")

Obj = dict[str, Any]
Check = Callable[[list[Obj]], list[str]]
#: How a test breaks a copy: the check that must see it, the overlay, what it changes.
Break = tuple[str, str, Callable[[list[Obj]], None]]


def problems_after(checks: dict[str, Check], broken: Break) -> list[str]:
    """What ``broken``'s check finds in its overlay once ``broken`` has changed it."""
    check, overlay, breaks = broken
    objs = objects(overlay)
    breaks(objs)
    return checks[check](objs)


@cache
def _rendered(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (kubectl kustomize)"
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay} failed:\n{done.stderr}"
    return done.stdout


def objects(overlay: str) -> list[Obj]:
    """A fresh copy of the overlay's objects (a test may break it)."""
    return [d for d in yaml.safe_load_all(_rendered(overlay)) if d]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def config(objs: list[Obj], prefix: str) -> dict[str, str]:
    """The data of the generated ConfigMap ``prefix-<hash>``."""
    found = [
        o for o in find(objs, "ConfigMap") if re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    assert len(found) == 1, f"ConfigMap {prefix}: {len(found)} found"
    data: dict[str, str] = found[0]["data"]
    return data


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: Obj) -> Iterator[Obj]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def service_sets(objs: list[Obj]) -> list[Obj]:
    return [
        o
        for o in find(objs, "StatefulSet")
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    ]


def passport(objs: list[Obj]) -> Obj:
    return one(objs, "StatefulSet", "lemma-passport")


def our_containers(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container that runs our image's Python code: all those
    of the image but the gateway's Caddy."""
    image = next(
        c["image"] for o in service_sets(objs) for c in containers(o)
    )  # the services run the image, whatever the overlay calls it
    for obj in (o for o in objs if o["kind"] in WORKLOADS):
        for c in containers(obj):
            if c["image"] == image and c.get("command", [""])[0] != "caddy":
                yield obj, c


#: What a Secret's key stands for when the environment is resolved without a cluster: a password
#: as the README asks for them (``openssl rand -hex 24``: URL-safe).
SECRET_PLACEHOLDER = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def pod_name(obj: Obj) -> str:
    """A name the workload's pods get (a StatefulSet's first; a generated one otherwise)."""
    name: str = obj["metadata"]["name"]
    return f"{name}-0" if obj["kind"] == "StatefulSet" else f"{name}-5d8c7b9f4-x2x7q"


def environment(
    objs: list[Obj], obj: Obj, container: Obj
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The container's environment as the kubelet makes it: ``envFrom`` ConfigMaps, then
    ``env`` in order with ``$(VAR)`` expanded from what is defined before it (``$$`` a dollar),
    ConfigMap keys looked up, Secret keys replaced by ``SECRET_PLACEHOLDER``, the pod's name for
    ``metadata.name``. Returns the variables, the Secret each secret variable comes from, and
    what could not be resolved."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in find(objs, "ConfigMap")}
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    unresolved: list[str] = []
    for source in container.get("envFrom", []):
        if "configMapRef" in source and source["configMapRef"]["name"] in maps:
            env.update(maps[source["configMapRef"]["name"]])
        else:
            unresolved.append(f"envFrom {source}")
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = _REFERENCE.sub(
                lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), var["value"]
            )
            continue
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[name] = SECRET_PLACEHOLDER
            secrets[name] = ref["secretKeyRef"]["name"]
        elif "configMapKeyRef" in ref and ref["configMapKeyRef"]["key"] in maps.get(
            ref["configMapKeyRef"]["name"], {}
        ):
            env[name] = maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[name] = pod_name(obj)
        else:
            unresolved.append(f"{name}: {ref}")
    unresolved += [f"{k}={v} (an undefined $(...))" for k, v in env.items() if _REFERENCE.search(v)]
    return env, secrets, unresolved
