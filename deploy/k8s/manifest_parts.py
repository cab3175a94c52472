"""What every generated manifest shares: the labels, the Secrets' names, the store URL, the
pods' and containers' security contexts, and the YAML file with its header comment."""

from __future__ import annotations

from typing import Any

import yaml

from deploy.k8s.service_specs import resource_name

LABELS = {"app.kubernetes.io/part-of": "lemma"}


def kafka_secret(user: str) -> str:
    """The Secret holding the password of Kafka user ``user`` (key ``password``)."""
    return f"lemma-kafka-{user}"


def selector(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": resource_name(service)}


def service_labels(service: str, component: str = "service") -> dict[str, str]:
    return {**LABELS, **selector(service), "app.kubernetes.io/component": component}


def store_url(mongo_user: str) -> str:
    """``LEMMA_STORE_URL`` for a MongoDB user whose password is in ``$(LEMMA_MONGO_PASSWORD)``
    (the kubelet expands it, and ``lemma-config``'s hosts and replica set)."""
    return (
        f"mongodb://{mongo_user}:$(LEMMA_MONGO_PASSWORD)@$(LEMMA_MONGO_HOSTS)"
        "/lemma_{service}?replicaSet=$(LEMMA_MONGO_REPLICA_SET)&authSource=admin"
        "&tls=true&tlsCAFile=/etc/lemma/ca/ca.crt"
    )


def container_security() -> dict[str, Any]:
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


def pod_volumes(state_size: str) -> list[dict[str, Any]]:
    """What a pod of our image mounts: the cluster CA (Kafka's and MongoDB's TLS), its state
    folder and /tmp (the root file system is read-only)."""
    return [
        {
            "name": "ca",
            "secret": {"secretName": "lemma-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        },
        {"name": "state", "emptyDir": {"sizeLimit": state_size}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]


def pod_mounts() -> list[dict[str, Any]]:
    """Where a container of our image mounts ``pod_volumes``: the CA where LEMMA_KAFKA_SSL_CAFILE
    and the store URL's tlsCAFile point, the state folder (LEMMA_STATE_DIR) and /tmp."""
    return [
        {"name": "ca", "mountPath": "/etc/lemma/ca", "readOnly": True},
        {"name": "state", "mountPath": "/var/lib/lemma"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def dump_yaml(docs: list[dict[str, Any]], header: str) -> str:
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comment + body
