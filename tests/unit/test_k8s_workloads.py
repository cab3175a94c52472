"""What the Kubernetes manifests (deploy/k8s) promise of their workloads, on both overlays:
probes on /readyz and /healthz, CPU and memory requests and limits, PodDisruptionBudgets, no more
replicas than partitions, LEMMA_INSTANCE the pod's name, a ServiceMonitor per service, the
headless Services, the Kafka image the tests run, and dev one of each where prod is the full
shape. Each check also runs on a copy broken on purpose."""

from __future__ import annotations

import re

import pytest

from deploy.k8s.service_specs import SERVICES, resource_name
from shared.settings import Settings
from tests.support.k8s_manifests import (
    OVERLAYS,
    ROOT,
    SERVICE_NAMES,
    WORKLOADS,
    Break,
    Check,
    Obj,
    config,
    containers,
    find,
    objects,
    one,
    passport,
    pod_spec,
    problems_after,
    service_sets,
)


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
    "probes": probe_problems,
    "resources": resource_problems,
    "pdbs": pdb_problems,
    "partitions": partition_problems,
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


def _break_probe(objs: list[Obj]) -> None:
    pod_spec(passport(objs))["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _break_resources(objs: list[Obj]) -> None:
    del pod_spec(one(objs, "Job", "lemma-kafka-setup"))["initContainers"][0]["resources"]["limits"]


def _break_pdb(objs: list[Obj]) -> None:
    objs.remove(one(objs, "PodDisruptionBudget", "lemma-sci"))


def _break_partitions(objs: list[Obj]) -> None:
    one(objs, "HorizontalPodAutoscaler", "lemma-passport")["spec"]["maxReplicas"] = 49


def _break_partitions_dev(objs: list[Obj]) -> None:
    one(objs, "StatefulSet", "lemma-matching")["spec"]["replicas"] = 4


def _break_instance(objs: list[Obj]) -> None:
    env = pod_spec(passport(objs))["containers"][0]["env"]
    next(e for e in env if e["name"] == "LEMMA_INSTANCE")["valueFrom"]["fieldRef"]["fieldPath"] = (
        "metadata.uid"
    )


def _break_monitor(objs: list[Obj]) -> None:
    one(objs, "ServiceMonitor", "lemma-sessions")["spec"]["jobLabel"] = "app.kubernetes.io/component"


BREAKS: dict[str, Break] = {
    "probe": ("probes", "prod", _break_probe),
    "resources": ("resources", "dev", _break_resources),
    "pdb": ("pdbs", "prod", _break_pdb),
    "partitions": ("partitions", "prod", _break_partitions),
    "partitions-dev": ("partitions", "dev", _break_partitions_dev),
    "instance": ("instance", "dev", _break_instance),
    "monitor": ("monitors", "prod", _break_monitor),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_check_catches_a_broken_copy(name: str) -> None:
    assert problems_after(CHECKS, BREAKS[name]), f"{BREAKS[name][0]} saw nothing wrong after {name}"


def test_dev_and_prod_checks_catch_a_changed_count() -> None:
    objs = objects("prod")
    one(objs, "MongoDBCommunity", "lemma-mongo")["spec"]["members"] = 1
    assert prod_problems(objs)
    objs = objects("dev")
    one(objs, "StatefulSet", "lemma-kafka")["spec"]["replicas"] = 3
    assert dev_problems(objs)


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


def test_kafka_image_is_the_version_the_tests_run() -> None:
    pom = (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version
    for overlay in OVERLAYS:
        images = {c["image"] for o in objects(overlay) if o["kind"] in WORKLOADS for c in containers(o)}
        kafka = {i for i in images if i.startswith("apache/kafka:")}
        assert kafka == {f"apache/kafka:{version.group(1)}"}
