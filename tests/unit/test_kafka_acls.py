"""The Kafka ACLs of each user fit what the code really does: each service writes only its own
topic (and the dead letters and operators' actions), reads what its consumers subscribe, in its
own groups, and describes no more than following a consistency token asks of the cluster."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest

from deploy.kafka_acls import (
    OPERATOR_USER,
    SERVICES,
    TOPICS_USER,
    USERS,
    KafkaAcl,
    Operation,
    PatternType,
    ResourceType,
    kafka_acls,
    principal,
)
from shared.consistency import Consistency, LogProgress
from shared.events import payloads
from shared.events.flow import FOLDS, GROUPS, PRODUCES
from shared.events.registry import REGISTRY, Topic

ROOT = Path(__file__).resolve().parents[2]
TOPIC_OF = {spec.name: spec.topic for spec in REGISTRY.values()}


def names(user: str, kind: ResourceType, operation: Operation, prefix: str = "") -> set[str]:
    return {a.name for a in kafka_acls(user, prefix) if a.resource_type == kind and a.operation == operation}


def events_built_by(service: str) -> set[str]:
    """The event payloads the service's code constructs (``SessionScheduled(...)``)."""
    built: set[str] = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name in TOPIC_OF:
                    built.add(name)
    return built


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_writes_its_own_topic_the_dead_letters_and_the_operators_actions(service: str) -> None:
    writes = names(service, ResourceType.TOPIC, Operation.WRITE)
    assert writes == {PRODUCES[service].value, Topic.DLQ.value, Topic.OPS.value}
    assert PRODUCES[service].value == f"lemma.{service}.v1"
    built = events_built_by(service)
    assert built, f"no event constructed under services/{service}?"
    assert {TOPIC_OF[event].value for event in built} <= writes, built
    # what every service emits besides its own events: through shared code, on the shared topics
    assert TOPIC_OF[payloads.DeadLettered.__name__] == Topic.DLQ
    assert TOPIC_OF[payloads.OperatorActed.__name__] == Topic.OPS


def test_no_two_services_write_one_domain_topic_and_no_one_else_writes() -> None:
    for topic in Topic:
        writers = [u for u in USERS if topic.value in names(u, ResourceType.TOPIC, Operation.WRITE)]
        assert writers == (list(SERVICES) if topic in (Topic.DLQ, Topic.OPS) else [topic.value.split(".")[1]])


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reads_what_its_consumers_subscribe_in_its_own_groups(service: str) -> None:
    consumers = importlib.import_module(f"services.{service}.consumers")
    assert names(service, ResourceType.TOPIC, Operation.READ) == {t.value for t in consumers.TOPICS}
    # the projection's subscriber joins the group named after the projection (shared.bus.membership)
    groups = {importlib.import_module(f"services.{service}.app").projection(_settings()).name}
    if service == "matching":
        groups.add(importlib.import_module("services.matching.matcher").ENGINE_GROUP)
    assert names(service, ResourceType.GROUP, Operation.READ) == groups == set(GROUPS[service])


def _settings() -> Any:
    from shared.settings import Settings

    return Settings(environment="test")


class RecordingProgress(LogProgress):
    """The cluster as a consistency wait sees it: every group past everything; records what it
    was asked (groups' offsets, topics' ends)."""

    def __init__(self) -> None:
        self.groups: set[str] = set()
        self.ends_of: set[str] = set()

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        self.groups.add(group)
        return {(f"p.{t.value}", 0): 10**9 for t in Topic}

    async def ends(self, topic: str) -> dict[tuple[str, int], int]:
        self.ends_of.add(topic)
        return {(topic, 0): 5}


@pytest.mark.parametrize("service", SERVICES)
async def test_following_a_token_asks_only_what_the_acls_allow(service: str) -> None:
    progress = RecordingProgress()

    async def folded() -> dict[tuple[str, int], int]:
        return {(f"p.{t.value}", 0): 10**9 for t in Topic}

    consistency = Consistency(
        service,
        topic_name=lambda t: "p." + t.value,
        group_name=lambda g: "p." + g,
        folded=folded,
        progress=progress,
        bound_s=5.0,
    )
    assert await consistency.wait({(f"p.{t.value}", 0): 3 for t in Topic})
    acls = kafka_acls(service, "p.")
    groups = {a.name for a in acls if a.resource_type == ResourceType.GROUP}
    topics = {a.name for a in acls if a.resource_type == ResourceType.TOPIC}
    assert progress.groups <= groups
    assert progress.ends_of <= topics
    # and the ACLs describe no group the waits never ask of
    described = {
        a.name for a in acls if a.resource_type == ResourceType.GROUP and a.operation == Operation.DESCRIBE
    }
    assert described <= progress.groups


def test_the_topic_job_creates_and_the_operator_reads_and_neither_writes() -> None:
    every = {t.value for t in Topic}
    assert names(TOPICS_USER, ResourceType.TOPIC, Operation.CREATE) == every
    assert names(OPERATOR_USER, ResourceType.TOPIC, Operation.READ) == every
    assert names(OPERATOR_USER, ResourceType.GROUP, Operation.DESCRIBE) == {
        g for s in SERVICES for g in GROUPS[s]
    }
    for user in (TOPICS_USER, OPERATOR_USER):
        assert not names(user, ResourceType.TOPIC, Operation.WRITE)
        assert not names(user, ResourceType.GROUP, Operation.READ)


@pytest.mark.parametrize("user", USERS)
def test_every_name_carries_the_prefix_and_every_rule_is_literal(user: str) -> None:
    plain, prefixed = kafka_acls(user), kafka_acls(user, "staging.")
    assert [KafkaAcl(a.resource_type, "staging." + a.name, a.pattern, a.operation) for a in plain] == prefixed
    assert all(a.pattern == PatternType.LITERAL for a in plain)
    assert plain == sorted(set(plain))
    # no cluster-wide right (idempotent producers need none since Kafka 3.0), no transactions
    assert {a.resource_type for a in plain} <= {ResourceType.TOPIC, ResourceType.GROUP}
    assert principal(user) == f"User:{user}"


def test_an_unknown_user_has_no_acls() -> None:
    with pytest.raises(ValueError, match="no such Kafka user"):
        kafka_acls("gateway")
    assert set(FOLDS) == set(SERVICES)


def acl_table() -> str:
    """The table of ``docs/operations.md`` ("Kafka security"), rendered from ``kafka_acls``."""
    every = {t.value for t in Topic}

    def cell(user: str, kind: ResourceType, operation: Operation) -> str:
        found = names(user, kind, operation)
        if kind == ResourceType.TOPIC and found == every:
            return "every topic"
        short = sorted(n.split(".")[1] if kind == ResourceType.TOPIC else n for n in found)
        return ", ".join(f"`{n}`" for n in short) or "-"

    columns = [
        (ResourceType.TOPIC, Operation.WRITE),
        (ResourceType.TOPIC, Operation.READ),
        (ResourceType.TOPIC, Operation.DESCRIBE),
        (ResourceType.TOPIC, Operation.CREATE),
        (ResourceType.GROUP, Operation.READ),
        (ResourceType.GROUP, Operation.DESCRIBE),
    ]
    rows = [
        "| user | writes | reads | describes | creates | its groups (READ) | groups it describes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows += [f"| `{u}` | " + " | ".join(cell(u, *c) for c in columns) + " |" for u in USERS]
    return "\n".join(rows) + "\n"


def test_the_operations_guide_shows_the_acls_as_they_are() -> None:
    assert acl_table() in (ROOT / "docs" / "operations.md").read_text(), acl_table()
