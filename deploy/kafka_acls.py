"""The Kafka ACLs of every user of the cluster: each service writes only its own topic.

Derived from the flow of the system (``shared.events.flow``), never written by hand: the
Kubernetes manifests (``deploy/k8s/base/kafka/acls.txt``, which the setup Job applies) and the
integration test on a broker with an authorizer (``tests/integration/test_kafka_security.py``)
both come from ``kafka_acls``, and
``docs/operations.md`` ("Kafka security") shows the table. No service reads it (each logs in as
its own user and is told no more), so it lives beside the deployment, not in ``shared/``.

Every ACL allows (Kafka denies what no ACL allows), from any host. Names carry the settings'
prefix (``LEMMA_KAFKA_PREFIX``). Kafka 3.0 and later let a user with ``WRITE`` on a topic
produce idempotently (KIP-679): no ``IDEMPOTENT_WRITE`` on the cluster; no producer of ours is
transactional: no transactional ids. ``READ`` and ``WRITE`` imply ``DESCRIBE``.

- a service (``passport``, ``matching``, ``sessions``, ``evidence``, ``sci``): ``WRITE`` its own
  topic, ``lemma.dlq.v1`` (its projection's dead letters) and ``lemma.ops.v1`` (its operators'
  actions); ``READ`` the topics it folds and its consumer groups; ``DESCRIBE`` the topics and
  the other services' groups that following a consistency token reads (their committed offsets,
  the ends of their topics: ``shared.consistency``).
- ``topics`` (the job that runs ``lemma topics create``): ``CREATE`` and ``DESCRIBE`` every topic.
- ``operator`` (the CLI: ``lemma dlq``, ``lemma replay``, audits with ``lemma replay sci --as-of
  TIME``, rescopes): ``READ`` every topic (without a consumer group), ``DESCRIBE`` the services'
  groups; writes nothing (what a replay records goes through the service's outbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events.flow import FOLDS, GROUPS, MAX_HOPS, PRODUCES, SHARED_WRITES, distances
from shared.events.registry import Topic


class ResourceType(StrEnum):
    """Kafka's ``ResourceType`` names (``kafka-acls --topic/--group``): the only two our rules
    name (no cluster-wide right, no transactional id: see the module's docstring)."""

    TOPIC = "TOPIC"
    GROUP = "GROUP"


class PatternType(StrEnum):
    """Kafka's ``PatternType`` names: ours is always ``LITERAL`` (a rule names one resource)."""

    LITERAL = "LITERAL"


class Operation(StrEnum):
    """Kafka's ``AclOperation`` names."""

    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DESCRIBE = "DESCRIBE"


@dataclass(frozen=True, order=True)
class KafkaAcl:
    """One ALLOW rule for one user, from any host."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation


SERVICES: tuple[str, ...] = tuple(PRODUCES)
#: The users that are no service: the topic-creation job and the operators' CLI.
TOPICS_USER = "topics"
OPERATOR_USER = "operator"
USERS: tuple[str, ...] = (*SERVICES, TOPICS_USER, OPERATOR_USER)


def principal(user: str) -> str:
    """The principal Kafka's authorizer sees: the SASL user name (with mTLS, the certificate's
    subject as ``ssl.principal.mapping.rules`` maps it, e.g. ``RULE:^CN=([^,]+).*$/$1/``)."""
    return f"User:{user}"


def consistency_groups(service: str) -> set[str]:
    """The services whose consumer group's committed offsets ``service`` reads when it follows a
    consistency token (the condition ``shared.consistency.Consistency`` waits on)."""
    far = distances(service)

    def hops(topic: Topic) -> int:
        return far.get(topic, MAX_HOPS + 1)

    return {
        other
        for other, folded in FOLDS.items()
        if other != service and any(t != PRODUCES[other] and hops(PRODUCES[other]) <= hops(t) for t in folded)
    }


def _topic(prefix: str, topic: Topic, operation: Operation) -> KafkaAcl:
    return KafkaAcl(ResourceType.TOPIC, prefix + topic.value, PatternType.LITERAL, operation)


def _group(prefix: str, group: str, operation: Operation) -> KafkaAcl:
    return KafkaAcl(ResourceType.GROUP, prefix + group, PatternType.LITERAL, operation)


def kafka_acls(user: str, prefix: str = "") -> list[KafkaAcl]:
    """The ACLs of ``user`` (a service name, ``topics`` or ``operator``; see the module's
    docstring), names prefixed with ``prefix``; sorted, no duplicates, none implied by another."""
    if user == TOPICS_USER:
        acls = {_topic(prefix, t, op) for t in Topic for op in (Operation.CREATE, Operation.DESCRIBE)}
    elif user == OPERATOR_USER:
        acls = {_topic(prefix, t, Operation.READ) for t in Topic}
        acls |= {_group(prefix, g, Operation.DESCRIBE) for s in SERVICES for g in GROUPS[s]}
    elif user in PRODUCES:
        writes = {PRODUCES[user], *SHARED_WRITES}
        reads = set(FOLDS[user])
        upstream = consistency_groups(user)
        described = set(distances(user)) | {PRODUCES[o] for o in upstream}
        described |= {t for o in upstream for t in FOLDS[o]}
        acls = {_topic(prefix, t, Operation.WRITE) for t in writes}
        acls |= {_topic(prefix, t, Operation.READ) for t in reads}
        acls |= {_topic(prefix, t, Operation.DESCRIBE) for t in described - writes - reads}
        acls |= {_group(prefix, g, Operation.READ) for g in GROUPS[user]}
        acls |= {_group(prefix, o, Operation.DESCRIBE) for o in upstream}
    else:
        raise ValueError(f"no such Kafka user: {user!r} (one of {', '.join(USERS)})")
    return sorted(acls)
