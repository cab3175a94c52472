"""Each service's generated file (``base/services/<name>.yaml``): its StatefulSet, Services,
PodDisruptionBudget, ServiceMonitor and, when HTTP-bound, HorizontalPodAutoscaler.

Why StatefulSets, not Deployments: every service folds Kafka partitions, and its consumers join
their groups as static members named after ``LEMMA_INSTANCE`` (``shared.bus.membership``). A
static member does not leave its group when it stops; its partitions wait up to the session
timeout (45 s) for the same name to come back. A StatefulSet's pods keep their names
(``lemma-passport-0``) across restarts, rolling updates and rescheduling, so a replaced pod
gets its partitions back at once; a Deployment's pods get new names, and each rolling update
would stall every partition of the replaced pod for the session timeout.
"""

from __future__ import annotations

from typing import Any

from deploy.k8s.manifest_parts import (
    container_security,
    dump_yaml,
    kafka_secret,
    pod_mounts,
    pod_security,
    pod_volumes,
    selector,
    service_labels,
    store_url,
)
from deploy.k8s.service_specs import ServiceSpec, resource_name


def _env(spec: ServiceSpec) -> list[dict[str, Any]]:
    """What differs from one service to the next (the rest comes from ``lemma-config``)."""
    name = spec.name
    return [
        {"name": "LEMMA_PORT", "value": str(spec.port)},
        # the pod's name, stable in a StatefulSet: lemma-passport-0 (see the module's note)
        {"name": "LEMMA_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "LEMMA_SERVICE", "value": name},
        # its Kafka user is the service's name (deploy.kafka_acls)
        {"name": "LEMMA_KAFKA_SASL_USERNAME", "value": name},
        {
            "name": "LEMMA_KAFKA_SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": kafka_secret(name), "key": "password"}},
        },
        {
            "name": "LEMMA_MONGO_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": f"lemma-mongo-{name}", "key": "password"}},
        },
        {
            "name": "LEMMA_REDIS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "lemma-redis", "key": "password"}},
        },
        # $(VAR) is expanded by the kubelet from the variables above and lemma-config
        {"name": "LEMMA_STORE_URL", "value": store_url(resource_name(name))},
        {"name": "LEMMA_RATE_LIMIT_STORAGE", "value": "redis://:$(LEMMA_REDIS_PASSWORD)@lemma-redis:6379/0"},
    ]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def stateful_set(spec: ServiceSpec) -> dict[str, Any]:
    name = resource_name(spec.name)
    r = spec.resources
    container = {
        "name": spec.name,
        "image": "lemma",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", f"services.{spec.name}"],
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "lemma-config"}}],
        "env": _env(spec),
        "resources": {
            "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
            "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
        },
        # a slow first start (imports, positioning every partition) is the startup probe's
        # business; after it, /healthz says the process lives and /readyz that it may serve
        "startupProbe": _probe("/healthz", 2, 60),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "securityContext": container_security(),
        "volumeMounts": pod_mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": service_labels(spec.name)},
        "spec": {
            "serviceName": f"{name}-pods",
            "replicas": spec.replicas,
            # replicas start and stop together; a rolling update still replaces one at a time
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector(spec.name)},
            "template": {
                "metadata": {"labels": service_labels(spec.name)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # a stopping consumer finishes its batch (shared.bus.GRACEFUL_STOP_S = 15 s)
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security(),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector(spec.name)},
                        }
                    ],
                    "containers": [container],
                    "volumes": pod_volumes("256Mi"),
                },
            },
        },
    }


def services(spec: ServiceSpec) -> list[dict[str, Any]]:
    name = resource_name(spec.name)
    port = {"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}
    return [
        {
            # what the gateway proxies to (ready pods only) and Prometheus scrapes (each pod)
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {**service_labels(spec.name), "lemma.dev/metrics": "true"}},
            "spec": {"type": "ClusterIP", "selector": selector(spec.name), "ports": [port]},
        },
        {
            # the StatefulSet's governing Service: a DNS name per pod
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-pods", "labels": service_labels(spec.name)},
            # every pod, ready or not: the operators' CLI must reach the one with a parked
            # partition (not ready by design); it carries no traffic
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector(spec.name),
                "ports": [port],
            },
        },
    ]


def pod_disruption_budget(spec: ServiceSpec) -> dict[str, Any]:
    # maxUnavailable, not minAvailable: one replica (dev) can still be drained
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": resource_name(spec.name), "labels": service_labels(spec.name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(spec.name)}},
    }


def service_monitor(spec: ServiceSpec) -> dict[str, Any]:
    # the job label takes the Service's app.kubernetes.io/name: lemma-<service>, as the alert
    # rules expect (deploy/prometheus/alerts.yml)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": resource_name(spec.name), "labels": service_labels(spec.name)},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {**selector(spec.name), "lemma.dev/metrics": "true"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "scheme": "http"}],
        },
    }


def autoscaler(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": resource_name(spec.name), "labels": service_labels(spec.name)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": resource_name(spec.name),
            },
            "minReplicas": spec.replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            # a replica removed leaves its partitions to wait out the session timeout: scale
            # down slowly
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }


def service_documents(spec: ServiceSpec) -> list[dict[str, Any]]:
    docs = [stateful_set(spec), *services(spec), pod_disruption_budget(spec), service_monitor(spec)]
    if spec.http_bound:
        docs.append(autoscaler(spec))
    return docs


def service_file(spec: ServiceSpec) -> str:
    header = (
        f"Generated by `python -m deploy.k8s.render` (deploy/k8s/render.py); edit that, not this.\n"
        f"{resource_name(spec.name)}: StatefulSet (stable pod names for static consumer group\n"
        f"membership), Service, headless Service, PodDisruptionBudget, ServiceMonitor"
        f"{', HorizontalPodAutoscaler (HTTP-bound)' if spec.http_bound else ' (fixed replica count)'}.\n"
        f"Sizing, from docs/benchmarks.md: {spec.sizing}."
    )
    return dump_yaml(service_documents(spec), header)
