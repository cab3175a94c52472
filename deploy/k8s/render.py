"""The generated parts of the Kubernetes manifests (``deploy/k8s/base``), written by
``python -m deploy.k8s.render`` and checked against the committed files by the tests.

Generated, each by its module under ``deploy/k8s``: each service's StatefulSet, Services,
PodDisruptionBudget, ServiceMonitor and HorizontalPodAutoscaler (``base/services/<name>.yaml``,
``service_workloads``, from the sizing of ``service_specs``), the gateway's Caddyfile
(``gateway``: the local stack's ``render_caddyfile`` with the in-cluster service names), the
Kafka ACLs of every Kafka user (``base/kafka/acls.txt``, ``kafka_acl_file``: from
``deploy.kafka_acls.kafka_acls``, in the words of Kafka's ``kafka-acls.sh``; the setup Job's
``setup.sh`` creates each user it names and applies them), the MongoDB replica set with one user
per service (``base/mongodb/mongodb.yaml``, ``mongodb``) and the operators' CLI
(``base/operator/cli.yaml``, ``operator_cli``). Everything else under ``deploy/k8s`` is written
by hand.

Kafka user names are those of ``deploy.kafka_acls`` as they are (``passport`` ... ``sci``,
``topics``, ``operator``; principal ``User:<name>``, ``deploy.kafka_acls.principal``), so the
ACL table of ``docs/operations.md`` names the cluster's users; each one's password is in the
Secret ``lemma-kafka-<name>`` (``manifest_parts.kafka_secret``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from deploy.k8s.gateway import caddyfile
from deploy.k8s.kafka_acl_file import acl_file
from deploy.k8s.mongodb import mongodb_file
from deploy.k8s.operator_cli import cli_file
from deploy.k8s.service_specs import SERVICES, check_instance_names
from deploy.k8s.service_workloads import service_file

K8S = Path(__file__).resolve().parent
BASE = K8S / "base"


def rendered() -> dict[Path, str]:
    """Every generated file under ``base/`` and its text."""
    files = {BASE / "services" / f"{s.name}.yaml": service_file(s) for s in SERVICES}
    files[BASE / "gateway" / "Caddyfile"] = caddyfile()
    files[BASE / "kafka" / "acls.txt"] = acl_file()
    files[BASE / "mongodb" / "mongodb.yaml"] = mongodb_file()
    files[BASE / "operator" / "cli.yaml"] = cli_file()
    return files


def main() -> None:
    check_instance_names()
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path.relative_to(K8S.parent.parent), file=sys.stderr)


if __name__ == "__main__":
    main()
