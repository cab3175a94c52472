"""What the Kubernetes manifests (deploy/k8s) promise for security, on both overlays: restricted
security contexts, no Secret inlined (and every one referenced documented), a default-deny
network with only the gateway open to outside, and for every container of ours an environment
production's ``Settings`` accepts (SASL_SSL, the CA files mounted). Each check also runs on a
copy broken on purpose."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest

from deploy.k8s.operator_cli import CLI
from shared.settings import Settings
from tests.support.k8s_manifests import (
    K8S,
    OVERLAYS,
    SERVICE_NAMES,
    WORKLOADS,
    Break,
    Check,
    Obj,
    containers,
    environment,
    find,
    objects,
    one,
    our_containers,
    passport,
    pod_spec,
    problems_after,
)


def security_problems(objs: list[Obj]) -> list[str]:
    problems = []
    for obj in (o for o in objs if o["kind"] in WORKLOADS):
        pod = pod_spec(obj).get("securityContext", {})
        for c in containers(obj):
            sc = c.get("securityContext", {})
            where = f"{obj['metadata']['name']}/{c['name']}"
            if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
                problems.append(f"{where}: may run as root")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root file system")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not all dropped")
            seccomp = sc.get("seccompProfile") or pod.get("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
    return problems


def secret_problems(objs: list[Obj]) -> list[str]:
    return [
        f"Secret/{o['metadata']['name']} is inlined"
        for o in objs
        if o["kind"] == "Secret" or ("data" in o and o["kind"] != "ConfigMap") or "stringData" in o
    ]


def _admits_outside(rule: Obj) -> bool:
    peers = rule.get("from")
    if not peers:
        return True  # no "from": every source
    return any("ipBlock" in p or "namespaceSelector" in p for p in peers)


def network_problems(objs: list[Obj]) -> list[str]:
    policies = find(objs, "NetworkPolicy")
    problems = []
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("no default-deny NetworkPolicy (ingress and egress) for the namespace")
    for p in policies:
        selected = p["spec"]["podSelector"].get("matchLabels", {})
        for rule in p["spec"].get("ingress", []):
            if not _admits_outside(rule):
                continue
            if selected == {"app.kubernetes.io/name": "lemma-gateway"}:
                continue
            scrape = (
                selected == {"app.kubernetes.io/component": "service"}
                and [peer["namespaceSelector"] for peer in rule["from"]]
                == [{"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}]
                and [port["port"] for port in rule["ports"]] == ["http"]
            )
            if not scrape:
                problems.append(f"NetworkPolicy/{p['metadata']['name']} admits traffic from outside")
    return problems


def production_settings(env: dict[str, str]) -> Settings:
    """``Settings()`` as the process would make it from exactly ``env`` (no other LEMMA_*)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("LEMMA_")}
    with mock.patch.dict(os.environ, {**kept, **env}, clear=True):
        return Settings()


def _mounted(container: Obj, path: str) -> bool:
    return any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in container.get("volumeMounts", []))


def settings_problems(objs: list[Obj]) -> list[str]:
    """Every container running our Python code gets an environment that production's ``Settings``
    accepts (so it starts), talks SASL_SSL to Kafka, and finds the files its settings name (the
    Kafka CA, the store's CA) on a volume mounted in it: the validator checks no file, the
    cluster would only say at the first connection."""
    problems = []
    seen = 0
    for obj, c in our_containers(objs):
        seen += 1
        where = f"{obj['metadata']['name']}/{c['name']}"
        env, _, unresolved = environment(objs, obj, c)
        problems += [f"{where}: cannot resolve {u}" for u in unresolved]
        try:
            settings = production_settings(env)
        except ValueError as exc:
            problems.append(f"{where}: production refuses its settings: {exc}")
            continue
        if settings.environment != "production" or settings.kafka_security_protocol != "SASL_SSL":
            problems.append(f"{where}: {settings.environment}, Kafka over {settings.kafka_security_protocol}")
        files = [settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile]
        if settings.store_url:
            query = parse_qs(urlsplit(settings.store_url_for("x")).query)
            files += query.get("tlsCAFile", []) + query.get("tlsCertificateKeyFile", [])
        problems += [f"{where}: {f} is on no volume mounted in it" for f in files if f and not _mounted(c, f)]
    if seen < len(SERVICE_NAMES) + 2:
        problems.append(f"only {seen} containers run our code (the services, the topic job, the CLI)")
    return problems


CHECKS: dict[str, Check] = {
    "security": security_problems,
    "secrets": secret_problems,
    "network": network_problems,
    "settings": settings_problems,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_keeps_promise(overlay: str, check: str) -> None:
    assert CHECKS[check](objects(overlay)) == []


# --- each check fails on a broken copy ---------------------------------------------------------


def _break_security(objs: list[Obj]) -> None:
    pod_spec(one(objs, "Deployment", "lemma-gateway"))["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ] = False


def _break_secrets(objs: list[Obj]) -> None:
    objs.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"password": "p"}}
    )


def _break_default_deny(objs: list[Obj]) -> None:
    objs.remove(one(objs, "NetworkPolicy", "lemma-default-deny"))


def _break_outside(objs: list[Obj]) -> None:
    one(objs, "NetworkPolicy", "lemma-kafka")["spec"]["ingress"].append({"ports": [{"port": 9092}]})


def _break_settings(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "Job", "lemma-kafka-setup"))["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "LEMMA_RATE_LIMIT_STORAGE"]


def _break_settings_plaintext(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "Deployment", CLI))["containers"][0]["env"]
    env.append({"name": "LEMMA_KAFKA_SECURITY_PROTOCOL", "value": "SASL_PLAINTEXT"})


def _break_settings_ca(objs: list[Obj]) -> None:
    pod_spec(passport(objs))["containers"][0]["volumeMounts"].pop(0)


def _break_settings_reference(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "StatefulSet", "lemma-sci"))["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "LEMMA_MONGO_PASSWORD"]


BREAKS: dict[str, Break] = {
    "security": ("security", "prod", _break_security),
    "secrets": ("secrets", "dev", _break_secrets),
    "default-deny": ("network", "prod", _break_default_deny),
    "outside": ("network", "prod", _break_outside),
    "settings": ("settings", "prod", _break_settings),
    "settings-plaintext": ("settings", "dev", _break_settings_plaintext),
    "settings-ca": ("settings", "prod", _break_settings_ca),
    "settings-reference": ("settings", "dev", _break_settings_reference),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_check_catches_a_broken_copy(name: str) -> None:
    assert problems_after(CHECKS, BREAKS[name]), f"{BREAKS[name][0]} saw nothing wrong after {name}"


def test_every_referenced_secret_is_documented() -> None:
    """The README lists every Secret the manifests reference (none is in the manifests)."""
    readme = (K8S / "README.md").read_text()
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("secretKeyRef", "secret") and isinstance(value, dict):
                    names.add(value.get("name") or value["secretName"])
                elif key in (
                    "secretName",
                    "passwordSecretRef",
                    "certificateKeySecretRef",
                    "caCertificateSecretRef",
                ):
                    names.add(value if isinstance(value, str) else value["name"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for overlay in OVERLAYS:
        walk(objects(overlay))
    assert {
        "lemma-ca",
        "lemma-kafka-admin",
        "lemma-kafka-tls",
        "lemma-mongo-tls",
        "lemma-gateway-tls",
    } <= names
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == []
