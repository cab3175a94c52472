"""Who the Kubernetes manifests (deploy/k8s) let do what on Kafka, on both overlays: the ACLs the
setup Job applies are exactly those of ``deploy.kafka_acls`` and each is one ``kafka-acls.sh``
can apply; every container of ours logs in as its own Kafka user with its own password. Each
check also runs on a copy broken on purpose."""

from __future__ import annotations

import pytest

from deploy.k8s import kafka_acl_file
from deploy.k8s.manifest_parts import kafka_secret
from deploy.k8s.operator_cli import CLI
from deploy.kafka_acls import (
    OPERATOR_USER,
    TOPICS_USER,
    USERS,
    Operation,
    PatternType,
    ResourceType,
    kafka_acls,
)
from tests.support.k8s_manifests import (
    K8S,
    OVERLAYS,
    Break,
    Check,
    Obj,
    config,
    environment,
    find,
    objects,
    one,
    our_containers,
    passport,
    pod_spec,
    problems_after,
)


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


CHECKS: dict[str, Check] = {
    "acls": acl_problems,
    "kafka-users": kafka_user_problems,
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_keeps_promise(overlay: str, check: str) -> None:
    assert CHECKS[check](objects(overlay)) == []


# --- each check fails on a broken copy ---------------------------------------------------------


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
    env = pod_spec(passport(objs))["containers"][0]["env"]
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


BREAKS: dict[str, Break] = {
    "acls": ("acls", "prod", _break_acls),
    "acls-missing": ("acls", "dev", _break_acls_missing),
    "acls-word": ("acls", "prod", _break_acls_word),
    "kafka-user": ("kafka-users", "prod", _break_kafka_user),
    "kafka-password": ("kafka-users", "dev", _break_kafka_password),
    "setup-users": ("kafka-users", "prod", _break_setup_users),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_check_catches_a_broken_copy(name: str) -> None:
    assert problems_after(CHECKS, BREAKS[name]), f"{BREAKS[name][0]} saw nothing wrong after {name}"


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
