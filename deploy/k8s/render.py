"""The generated parts of the Kubernetes manifests (``deploy/k8s/base``), written by
``python -m deploy.k8s.render`` and checked against the committed files by the tests.

Generated: each service's StatefulSet, Services, PodDisruptionBudget, ServiceMonitor and
HorizontalPodAutoscaler (``base/services/<name>.yaml``), the gateway's Caddyfile (the local
stack's ``render_caddyfile`` with the in-cluster service names), the Kafka ACLs of every Kafka
user (``base/kafka/acls.txt``, from ``shared.kafka_acls.kafka_acls``, in the words of Kafka's
``kafka-acls.sh``; the setup Job's ``setup.sh`` creates each user it names and applies them) and
the MongoDB replica set with one user per service (``base/mongodb/mongodb.yaml``) and the
operators' CLI (``base/operator/cli.yaml``). Everything else under ``deploy/k8s`` is written
by hand.

Kafka user names are those of ``shared.kafka_acls`` as they are (``passport`` ... ``sci``,
``topics``, ``operator``; principal ``User:<name>``, ``shared.kafka_acls.principal``), so the
ACL table of ``docs/operations.md`` names the cluster's users; each one's password is in the
Secret ``lemma-kafka-<name>`` (``kafka_secret``).

Why StatefulSets, not Deployments: every service folds Kafka partitions, and its consumers join
their groups as static members named after ``LEMMA_INSTANCE`` (``shared.bus.membership``). A
static member does not leave its group when it stops; its partitions wait up to the session
timeout (45 s) for the same name to come back. A StatefulSet's pods keep their names
(``lemma-passport-0``) across restarts, rolling updates and rescheduling, so a replaced pod
gets its partitions back at once; a Deployment's pods get new names, and each rolling update
would stall every partition of the replaced pod for the session timeout.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.local.gateway import deployed_site, render_caddyfile
from shared.kafka_acls import (
    OPERATOR_USER,
    USERS,
    KafkaAcl,
    Operation,
    PatternType,
    ResourceType,
    kafka_acls,
    principal,
)

K8S = Path(__file__).resolve().parent
BASE = K8S / "base"
#: The pattern ``LEMMA_INSTANCE`` must match (``shared.settings.Settings.instance``).
INSTANCE_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
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
#: The Kafka super user of the setup Job (created when the brokers' storage is formatted); it
#: has no ACLs (``server.properties``: ``super.users``).
KAFKA_ADMIN = "lemma-admin"
#: How Apache Kafka's ``kafka-acls.sh`` (``org.apache.kafka.tools.AclCommand``) spells each
#: resource type (its option: ``--topic NAME``, ``--group NAME``, ``--transactional-id NAME``;
#: ``--cluster`` takes no name), pattern type (``--resource-pattern-type``) and operation
#: (``--operation``). Total over ``shared.kafka_acls``' enums (checked): a member added there
#: fails the render until it is given its word here.
ACL_RESOURCE_OPTIONS: dict[ResourceType, str] = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.CLUSTER: "cluster",
    ResourceType.TRANSACTIONAL_ID: "transactional-id",
}
ACL_PATTERN_TYPES: dict[PatternType, str] = {PatternType.LITERAL: "literal", PatternType.PREFIXED: "prefixed"}
ACL_OPERATIONS: dict[Operation, str] = {
    Operation.READ: "Read",
    Operation.WRITE: "Write",
    Operation.CREATE: "Create",
    Operation.DESCRIBE: "Describe",
    Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
}
#: The only name a cluster resource has (``kafka-acls.sh --cluster`` takes none).
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    #: HTTP-bound (docs/scaling.md, "Replicas per service"): scaled by a HorizontalPodAutoscaler
    #: between the base's ``replicas`` and ``max_replicas``; the others keep a fixed count.
    http_bound: bool
    replicas: int
    max_replicas: int
    resources: Resources
    #: Why these figures (a comment in the rendered file).
    sizing: str


# Sizing from docs/benchmarks.md, "Load" (run of 2026-12-05, two replicas of every service, CPU
# in cores for both replicas together) and "Replay" (resident memory of the folds at a million
# events). The load bench does not record each service's memory, so requests take the replay
# bench's incremental fold (evidence 177 MiB, sci 243 MiB peak) and limits its rebuild (the
# whole process tree of `lemma replay`: evidence 704 MiB, sci 723 MiB), which an operator may run
# in the pod. CPU limits leave room for a rebuild's worker processes; requests are what the
# busiest measured phase used per replica.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "passport",
        8101,
        http_bound=True,
        replicas=2,
        max_replicas=12,
        resources=Resources("500m", "256Mi", "2", "1Gi"),
        sizing="passport reads 1,000/s: 1.02-1.11 cores for 2 replicas (about 0.55 each); "
        "rating path 200/s: 0.39 cores for 2",
    ),
    ServiceSpec(
        "matching",
        8102,
        http_bound=False,
        replicas=3,
        max_replicas=3,
        resources=Resources("200m", "256Mi", "2", "1Gi"),
        sizing="mix 400/s: 0.26 cores for 2 replicas; rating path 200/s: 0.16; long polls hold "
        "connections, not CPU, and deciders are bounded by matching's partitions (docs/scaling.md)",
    ),
    ServiceSpec(
        "sessions",
        8103,
        http_bound=True,
        replicas=2,
        max_replicas=8,
        resources=Resources("300m", "256Mi", "2", "1Gi"),
        sizing="rating path 200/s: 0.49 cores for 2 replicas (the busiest service of that phase)",
    ),
    ServiceSpec(
        "evidence",
        8104,
        http_bound=True,
        replicas=2,
        max_replicas=6,
        resources=Resources("100m", "256Mi", "2", "1Gi"),
        sizing="rating path 200/s: 0.17 cores for 2 replicas; fold peak 177 MiB, rebuild 704 MiB",
    ),
    ServiceSpec(
        "sci",
        8105,
        http_bound=False,
        replicas=2,
        max_replicas=2,
        resources=Resources("200m", "512Mi", "2", "2Gi"),
        sizing="rating path 200/s: 0.28 cores for 2 replicas; fold peak 243 MiB, rebuild 723 MiB; "
        "the calibration worker adds 78 MiB (1,000 raters) to 391 MiB (30,000 raters). Fixed "
        "count: every replica runs the calibration job (docs/scaling.md)",
    ),
)

LABELS = {"app.kubernetes.io/part-of": "lemma"}


def resource_name(service: str) -> str:
    return f"lemma-{service}"


def ops_urls() -> str:
    """``LEMMA_OPS_URLS`` of the operators' CLI: every ready pod of every service, through its
    headless Service (``cli/service_urls.py``)."""
    return " ".join(f"{s.name}=dns+http://{resource_name(s.name)}-pods:{s.port}" for s in SERVICES)


def kafka_secret(user: str) -> str:
    """The Secret holding the password of Kafka user ``user`` (key ``password``)."""
    return f"lemma-kafka-{user}"


def _selector(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": resource_name(service)}


def _labels(service: str, component: str = "service") -> dict[str, str]:
    return {**LABELS, **_selector(service), "app.kubernetes.io/component": component}


def store_url(mongo_user: str) -> str:
    """``LEMMA_STORE_URL`` for a MongoDB user whose password is in ``$(LEMMA_MONGO_PASSWORD)``
    (the kubelet expands it, and ``lemma-config``'s hosts and replica set)."""
    return (
        f"mongodb://{mongo_user}:$(LEMMA_MONGO_PASSWORD)@$(LEMMA_MONGO_HOSTS)"
        "/lemma_{service}?replicaSet=$(LEMMA_MONGO_REPLICA_SET)&authSource=admin"
        "&tls=true&tlsCAFile=/etc/lemma/ca/ca.crt"
    )


def _env(spec: ServiceSpec) -> list[dict[str, Any]]:
    """What differs from one service to the next (the rest comes from ``lemma-config``)."""
    name = spec.name
    return [
        {"name": "LEMMA_PORT", "value": str(spec.port)},
        # the pod's name, stable in a StatefulSet: lemma-passport-0 (see the module's note)
        {"name": "LEMMA_INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "LEMMA_SERVICE", "value": name},
        # its Kafka user is the service's name (shared.kafka_acls)
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


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
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
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "ca", "mountPath": "/etc/lemma/ca", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/lemma"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": _labels(spec.name)},
        "spec": {
            "serviceName": f"{name}-pods",
            "replicas": spec.replicas,
            # replicas start and stop together; a rolling update still replaces one at a time
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": _selector(spec.name)},
            "template": {
                "metadata": {"labels": _labels(spec.name)},
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
                            "labelSelector": {"matchLabels": _selector(spec.name)},
                        }
                    ],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "ca",
                            "secret": {
                                "secretName": "lemma-ca",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            },
                        },
                        {"name": "state", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
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
            "metadata": {"name": name, "labels": {**_labels(spec.name), "lemma.dev/metrics": "true"}},
            "spec": {"type": "ClusterIP", "selector": _selector(spec.name), "ports": [port]},
        },
        {
            # the StatefulSet's governing Service: a DNS name per pod
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-pods", "labels": _labels(spec.name)},
            # every pod, ready or not: the operators' CLI must reach the one with a parked
            # partition (not ready by design); it carries no traffic
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": _selector(spec.name),
                "ports": [port],
            },
        },
    ]


def pod_disruption_budget(spec: ServiceSpec) -> dict[str, Any]:
    # maxUnavailable, not minAvailable: one replica (dev) can still be drained
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": resource_name(spec.name), "labels": _labels(spec.name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(spec.name)}},
    }


def service_monitor(spec: ServiceSpec) -> dict[str, Any]:
    # the job label takes the Service's app.kubernetes.io/name: lemma-<service>, as the alert
    # rules expect (deploy/prometheus/alerts.yml)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": resource_name(spec.name), "labels": _labels(spec.name)},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {**_selector(spec.name), "lemma.dev/metrics": "true"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "scheme": "http"}],
        },
    }


def autoscaler(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": resource_name(spec.name), "labels": _labels(spec.name)},
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


def _dump(docs: list[dict[str, Any]], header: str) -> str:
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comment + body


def service_file(spec: ServiceSpec) -> str:
    header = (
        f"Generated by `python -m deploy.k8s.render` (deploy/k8s/render.py); edit that, not this.\n"
        f"{resource_name(spec.name)}: StatefulSet (stable pod names for static consumer group\n"
        f"membership), Service, headless Service, PodDisruptionBudget, ServiceMonitor"
        f"{', HorizontalPodAutoscaler (HTTP-bound)' if spec.http_bound else ' (fixed replica count)'}.\n"
        f"Sizing, from docs/benchmarks.md: {spec.sizing}."
    )
    return _dump(service_documents(spec), header)


def caddyfile() -> str:
    upstreams = {s.name: [f"{resource_name(s.name)}:{s.port}"] for s in SERVICES}
    # one upstream per service: the Service balances over its ready pods (readiness: /readyz)
    return render_caddyfile(GATEWAY_PORT, upstreams, CADDY_DIR, CLUSTER_SITE)


#: One line of ``acls.txt``: principal, resource option, pattern type, name, operations.
AclLine = tuple[str, str, str, str, tuple[str, ...]]


def acl_lines(user: str) -> list[AclLine]:
    """``kafka_acls(user)`` in ``kafka-acls.sh``'s words, the operations on one resource
    together (one ``kafka-acls.sh --add`` each)."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for acl in kafka_acls(user):
        name = CLUSTER_NAME if acl.resource_type == ResourceType.CLUSTER else acl.name
        key = (ACL_RESOURCE_OPTIONS[acl.resource_type], ACL_PATTERN_TYPES[acl.pattern], name)
        grouped.setdefault(key, []).append(ACL_OPERATIONS[acl.operation])
    return [(principal(user), *key, tuple(ops)) for key, ops in grouped.items()]


def acl_file() -> str:
    lines = [
        "# Generated by `python -m deploy.k8s.render` (deploy/k8s/render.py) from",
        "# shared.kafka_acls.kafka_acls: the Kafka ACLs of every user, each allowed from any host.",
        "# The setup Job (kafka/setup.sh) creates the SCRAM user of every principal named here and",
        "# adds its rules with kafka-acls.sh. One resource a line:",
        "# principal resource-type pattern-type resource-name operations",
    ]
    for user in USERS:
        lines += [f"{p} {t} {pattern} {n} {','.join(ops)}" for p, t, pattern, n, ops in acl_lines(user)]
    return "\n".join(lines) + "\n"


def parse_acl_file(text: str) -> dict[str, list[KafkaAcl]]:
    """What ``acls.txt`` allows each user (``User:passport`` gives ``passport``), as
    ``kafka_acls`` says it: sorted, one ``KafkaAcl`` an operation. Raises ``ValueError`` on a
    line ``setup.sh`` could not apply (a word ``kafka-acls.sh`` does not know, a principal
    that is not ``User:``)."""
    resources = {v: k for k, v in ACL_RESOURCE_OPTIONS.items()}
    patterns = {v: k for k, v in ACL_PATTERN_TYPES.items()}
    operations = {v: k for k, v in ACL_OPERATIONS.items()}
    acls: dict[str, set[KafkaAcl]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            who, rtype, pattern, name, ops = line.split()
            kind, user = who.split(":", 1)
            if kind != "User" or not user:
                raise ValueError(f"principal {who!r} is not User:<name>")
            resource = resources[rtype]
            acls.setdefault(user, set()).update(
                KafkaAcl(resource, name, patterns[pattern], operations[op]) for op in ops.split(",")
            )
        except (ValueError, KeyError) as exc:
            raise ValueError(f"acls.txt line {number} ({line!r}): {exc!r}") from exc
    return {user: sorted(found) for user, found in acls.items()}


#: The operators' CLI: a Deployment kept at no replica, scaled to one for the work.
CLI = "lemma-cli"
#: What a job of ours that serves no requests gives ``LEMMA_RATE_LIMIT_STORAGE``: production's
#: settings refuse ``memory://`` in any process; it counts nothing, so Redis without its password.
UNUSED_RATE_LIMIT_STORAGE = "redis://lemma-redis:6379/0"


def cli_deployment() -> dict[str, Any]:
    """The image's ``lemma`` command as the Kafka user ``operator`` (``lemma dlq``, ``lemma
    audit``, ``lemma replay``, rescopes) and the MongoDB user ``lemma-operator`` (every service's
    database, for a replay). Kept at 0 replicas: ``kubectl scale --replicas=1``, ``kubectl
    exec``, scale back (deploy/k8s/README.md). Its limits hold the largest measured rebuild (sci:
    723 MiB, docs/benchmarks.md "Replay")."""
    labels = {**LABELS, "app.kubernetes.io/name": CLI, "app.kubernetes.io/component": "operator-cli"}
    container = {
        "name": "lemma",
        "image": "lemma",
        "imagePullPolicy": "IfNotPresent",
        # waits for `kubectl exec` (sleep as PID 1 ignores SIGTERM: it goes after the grace period)
        "command": ["sleep", "infinity"],
        "envFrom": [{"configMapRef": {"name": "lemma-config"}}],
        "env": [
            {"name": "LEMMA_KAFKA_SASL_USERNAME", "value": OPERATOR_USER},
            {
                "name": "LEMMA_KAFKA_SASL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": kafka_secret(OPERATOR_USER), "key": "password"}},
            },
            {
                "name": "LEMMA_MONGO_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "lemma-mongo-operator", "key": "password"}},
            },
            {"name": "LEMMA_STORE_URL", "value": store_url("lemma-operator")},
            {"name": "LEMMA_RATE_LIMIT_STORAGE", "value": UNUSED_RATE_LIMIT_STORAGE},
            # `lemma projections` and `lemma dlq redrive` ask every pod of each service (its
            # headless Service names them all); LEMMA_OPS_TOKEN: an operator's token, given at exec
            {"name": "LEMMA_OPS_URLS", "value": ops_urls()},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "ca", "mountPath": "/etc/lemma/ca", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/lemma"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CLI, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app.kubernetes.io/name": CLI}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "ca",
                            "secret": {
                                "secretName": "lemma-ca",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            },
                        },
                        {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def cli_file() -> str:
    header = (
        "Generated by `python -m deploy.k8s.render` (deploy/k8s/render.py); edit that, not this.\n"
        f"{CLI}: the operators' `lemma` command, as the Kafka user `{OPERATOR_USER}` (read every topic,\n"
        "describe the services' groups, write nothing) and the MongoDB user lemma-operator. No replica\n"
        'until an operator scales it to one (deploy/k8s/README.md, "Operators\' CLI").'
    )
    return _dump([cli_deployment()], header)


def mongodb() -> dict[str, Any]:
    """The MongoDB replica set (MongoDB Community Operator): TLS only, SCRAM, one user per
    service owning its database and nothing else, and the operators' CLI's user
    (``lemma-operator``: every service's database, for a replay). Members: 1 (dev) or 3 (prod),
    set by the overlays; the passwords come from the Secrets lemma-mongo-<service> and
    lemma-mongo-operator (key ``password``)."""
    users = [
        {
            "name": resource_name(s.name),
            "db": "admin",
            "passwordSecretRef": {"name": f"lemma-mongo-{s.name}", "key": "password"},
            "roles": [{"name": "readWrite", "db": f"lemma_{s.name}"}],
            "scramCredentialsSecretName": f"lemma-mongo-{s.name}-scram",
        }
        for s in SERVICES
    ]
    # the operators' CLI (a replay rebuilds a service's store): every service's database
    users.append(
        {
            "name": "lemma-operator",
            "db": "admin",
            "passwordSecretRef": {"name": "lemma-mongo-operator", "key": "password"},
            "roles": [{"name": "readWrite", "db": f"lemma_{s.name}"} for s in SERVICES],
            "scramCredentialsSecretName": "lemma-mongo-operator-scram",
        }
    )
    return {
        "apiVersion": "mongodbcommunity.mongodb.com/v1",
        "kind": "MongoDBCommunity",
        "metadata": {"name": "lemma-mongo", "labels": {**LABELS, "app.kubernetes.io/component": "store"}},
        "spec": {
            "members": 3,
            "type": "ReplicaSet",
            "version": "8.0.4",
            "security": {
                "authentication": {"modes": ["SCRAM"], "ignoreUnknownUsers": True},
                "tls": {
                    "enabled": True,
                    "optional": False,
                    "certificateKeySecretRef": {"name": "lemma-mongo-tls"},
                    "caCertificateSecretRef": {"name": "lemma-ca"},
                },
            },
            "users": users,
            "additionalMongodConfig": {"net.tls.allowConnectionsWithoutCertificates": True},
            "statefulSet": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    # not measured here (no MongoDB server runs on the build
                                    # machines): a starting point to size from the cluster's own
                                    # figures
                                    "name": "mongod",
                                    "resources": {
                                        "requests": {"cpu": "500m", "memory": "1Gi"},
                                        "limits": {"cpu": "2", "memory": "2Gi"},
                                    },
                                },
                                {
                                    "name": "mongodb-agent",
                                    "resources": {
                                        "requests": {"cpu": "50m", "memory": "128Mi"},
                                        "limits": {"cpu": "500m", "memory": "256Mi"},
                                    },
                                },
                            ]
                        }
                    },
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data-volume"},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "20Gi"}},
                            },
                        }
                    ],
                }
            },
        },
    }


def mongodb_file() -> str:
    header = (
        "Generated by `python -m deploy.k8s.render` (deploy/k8s/render.py); edit that, not this.\n"
        "The MongoDB replica set through the MongoDB Community Operator (CRD of v0.13.0)."
    )
    return _dump([mongodb()], header)


def rendered() -> dict[Path, str]:
    """Every generated file under ``base/`` and its text."""
    files = {BASE / "services" / f"{s.name}.yaml": service_file(s) for s in SERVICES}
    files[BASE / "gateway" / "Caddyfile"] = caddyfile()
    files[BASE / "kafka" / "acls.txt"] = acl_file()
    files[BASE / "mongodb" / "mongodb.yaml"] = mongodb_file()
    files[BASE / "operator" / "cli.yaml"] = cli_file()
    return files


def check_instance_names() -> None:
    """A StatefulSet's pod names (``lemma-<service>-<ordinal>``) fit ``LEMMA_INSTANCE``."""
    for s in SERVICES:
        longest = f"{resource_name(s.name)}-{max(s.max_replicas, s.replicas) - 1}"
        if not re.match(INSTANCE_PATTERN, longest):
            raise ValueError(f"pod name {longest!r} does not fit LEMMA_INSTANCE {INSTANCE_PATTERN}")


def main() -> None:
    check_instance_names()
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path.relative_to(K8S.parent.parent), file=sys.stderr)


if __name__ == "__main__":
    main()
