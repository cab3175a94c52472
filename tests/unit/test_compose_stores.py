"""The compose deployment's Kafka and MongoDB: three KRaft brokers with health checks, the topic
job (the CLI's topic creation, replication 3, min.insync.replicas 2), a three-member replica set
that mongo-init initiates once, with one user per service owning its database only. Each
structural check also runs on a broken copy of the file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
from typer.testing import CliRunner

from cli.main import app as lemma_cli
from deploy.local.config import SERVICES
from shared.bus import topic_configs
from shared.settings import Settings
from tests.support.compose_file import (
    BROKERS,
    MEMBERS,
    MONGO_INIT,
    REQUIRED,
    Doc,
    broken,
    env_example,
    environment,
    interpolate,
    load,
    replicas_of,
    services,
    strings,
)

# --- Kafka: three KRaft nodes --------------------------------------------------------------


def kafka_problems(doc: Doc) -> list[str]:
    problems = []
    brokers = {k: s for k, s in services(doc).items() if str(s.get("image", "")).startswith("apache/kafka:")}
    if sorted(brokers) != list(BROKERS):
        return [f"brokers are {sorted(brokers)}, not {list(BROKERS)}"]
    voters = ",".join(f"{n}@kafka-{n}:9093" for n in (1, 2, 3))
    ids = set()
    for key, broker in brokers.items():
        env = environment(broker)
        ids.add(env.get("KAFKA_NODE_ID"))
        tag = str(broker["image"]).split(":", 1)[1]
        if not re.fullmatch(r"4\.\d+\.\d+", tag):
            problems.append(f"{key}: image tag {tag!r} is not a pinned 4.x release")
        if env.get("KAFKA_PROCESS_ROLES") != "broker,controller":
            problems.append(f"{key}: not a combined broker and controller")
        if env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") != voters:
            problems.append(f"{key}: voters {env.get('KAFKA_CONTROLLER_QUORUM_VOTERS')!r}, not {voters!r}")
        if env.get("KAFKA_ADVERTISED_LISTENERS") != f"PLAINTEXT://{key}:9092":
            problems.append(f"{key}: advertises {env.get('KAFKA_ADVERTISED_LISTENERS')!r}")
        if not REQUIRED.match(env.get("CLUSTER_ID", "")):
            problems.append(f"{key}: CLUSTER_ID is not a required variable")
        for setting, wanted in {
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
            "KAFKA_MIN_INSYNC_REPLICAS": "2",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        }.items():
            if env.get(setting) != wanted:
                problems.append(f"{key}: {setting} is {env.get(setting)!r}, not {wanted!r}")
        if not broker.get("healthcheck", {}).get("test"):
            problems.append(f"{key}: no health check")
    if ids != {"1", "2", "3"}:
        problems.append(f"node ids {sorted(map(str, ids))}")
    return problems


def test_kafka_is_a_three_node_kraft_cluster_with_health_checks() -> None:
    assert kafka_problems(load()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"].pop("kafka-3"),
        lambda d: d["services"]["kafka-2"]["environment"].update(KAFKA_NODE_ID="1"),
        lambda d: d["services"]["kafka-1"].pop("healthcheck"),
        lambda d: d["services"]["kafka-1"].update(image="apache/kafka:latest"),
        lambda d: d["services"]["kafka-3"]["environment"].update(KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1"),
    ],
)
def test_the_kafka_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert kafka_problems(broken(mutate))


# --- the topics -------------------------------------------------------------------------------


def test_the_topic_job_runs_the_clis_topic_creation_with_replication_3_and_min_isr_2() -> None:
    job = services(load())["kafka-topics"]
    assert job["command"] == ["lemma", "topics", "create"]
    env = environment(job)
    assert env["LEMMA_KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["LEMMA_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert interpolate(env["LEMMA_KAFKA_PARTITIONS"], {}) == "6"
    # the command exists as written, and the topics it makes keep their events forever
    assert CliRunner().invoke(lemma_cli, ["topics", "create", "--help"]).exit_code == 0
    assert topic_configs(2) == {"retention.ms": "-1", "min.insync.replicas": "2"}


# --- MongoDB: a three-member replica set, one user per service ----------------------------------


#: A service's store URL as compose.yaml writes it.
STORE_URL = re.compile(
    r"mongodb://(?P<user>[^:]+):(?P<password>\$\{[^}]*\})@(?P<hosts>[^/]+)/(?P<database>[^?]+)\?(?P<query>.+)"
)


def mongo_problems(doc: Doc) -> list[str]:
    problems = []
    members = {k: s for k, s in services(doc).items() if "mongod " in " ".join(strings(s.get("entrypoint")))}
    if sorted(members) != list(MEMBERS):
        return [f"mongod runs in {sorted(members)}, not {list(MEMBERS)}"]
    for key, member in members.items():
        script = " ".join(strings(member["entrypoint"]))
        if "--replSet rs0" not in script or "--keyFile" not in script:
            problems.append(f"{key}: not a replica set member with a keyfile")
        if not REQUIRED.match(environment(member).get("MONGO_KEYFILE", "")):
            problems.append(f"{key}: the keyfile does not come from a required variable")
        if not member.get("healthcheck", {}).get("test"):
            problems.append(f"{key}: no health check")
        if str(member.get("image")) == "mongo:latest" or ":" not in str(member.get("image")):
            problems.append(f"{key}: image not pinned")
    init = environment(services(doc).get("mongo-init", {}))
    hosts = [f"{m}:27017" for m in MEMBERS]
    if init.get("MONGO_MEMBERS", "").split(",") != hosts or init.get("MONGO_REPLICA_SET") != "rs0":
        problems.append("mongo-init does not initiate rs0 with the three members")
    users = {
        k.removeprefix("MONGO_SERVICE_PASSWORD_").lower(): v
        for k, v in init.items()
        if "SERVICE_PASSWORD" in k
    }
    if sorted(users) != sorted(SERVICES):
        problems.append(f"mongo-init makes users {sorted(users)}, not one per service")
    for name in SERVICES:
        for key, replica in replicas_of(doc, name).items():
            url = STORE_URL.fullmatch(environment(replica).get("LEMMA_STORE_URL", ""))
            if url is None:
                problems.append(f"{key}: no MongoDB store URL with a password variable")
                continue
            if url["user"] != name or url["password"] != users.get(name):
                problems.append(f"{key}: logs in as {url['user']!r}, not as its own user with its password")
            if url["database"] != "lemma_{service}":
                problems.append(f"{key}: database {url['database']!r}, not lemma_{{service}}")
            if url["hosts"].split(",") != hosts or parse_qs(url["query"]).get("replicaSet") != ["rs0"]:
                problems.append(f"{key}: store URL does not name the replica set {hosts}")
    return problems


def test_mongodb_is_a_three_member_replica_set_and_each_service_has_its_own_user() -> None:
    assert mongo_problems(load()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"].pop("mongo-2"),
        lambda d: d["services"]["mongo-init"]["environment"].pop("MONGO_SERVICE_PASSWORD_SCI"),
        lambda d: d["services"]["sci-2"]["environment"].update(
            LEMMA_STORE_URL=d["services"]["sci-2"]["environment"]["LEMMA_STORE_URL"].replace(
                "sci:", "passport:"
            )
        ),
        lambda d: d["services"]["mongo-init"]["environment"].update(MONGO_MEMBERS="mongo-1:27017"),
    ],
)
def test_the_mongodb_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert mongo_problems(broken(mutate))


def run_mongo_init(env: dict[str, str], initiated: bool, users: list[str]) -> dict[str, Any]:
    """mongo-init.js under Node with a stand-in for mongosh's ``Mongo``: what it asked for."""
    node = shutil.which("node")
    assert node, "node is missing (the machine's Node.js runs the replica-set script's test)"
    harness = """
const vm = require("vm"), fs = require("fs");
const [script, envJson, initiated, existing] = process.argv.slice(1);
const log = {uris: [], initiate: [], created: [], updated: [], printed: []};
const users = new Set(JSON.parse(existing));
class Mongo {
  constructor(uri) { log.uris.push(uri); }
  getDB(name) {
    return {
      runCommand(cmd) {
        if (cmd.replSetGetStatus) {
          if (initiated === "true") return {ok: 1, set: "rs0", members: [1, 2, 3]};
          const e = new Error("no replset config has been received");
          e.code = 94; e.codeName = "NotYetInitialized"; throw e;
        }
        if (cmd.replSetInitiate) { log.initiate.push(cmd.replSetInitiate); return {ok: 1}; }
        throw new Error("unexpected command " + JSON.stringify(cmd));
      },
      getUser(user) { return users.has(name + "." + user) ? {user} : null; },
      createUser(doc) { log.created.push({db: name, ...doc}); },
      updateUser(user, doc) { log.updated.push({db: name, user, ...doc}); },
    };
  }
}
vm.runInNewContext(fs.readFileSync(script, "utf8"), {
  Mongo, print: (s) => log.printed.push(s), process: {env: JSON.parse(envJson)},
});
console.log(JSON.stringify(log));
"""
    argv = [node, "-e", harness, str(MONGO_INIT), json.dumps(env), str(initiated).lower(), json.dumps(users)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert isinstance(result, dict)
    return result


def mongo_init_env() -> dict[str, str]:
    example = env_example()
    return {k: interpolate(v, example) for k, v in environment(services(load())["mongo-init"]).items()}


def test_mongo_init_initiates_the_set_once_and_gives_each_service_its_own_database_only() -> None:
    env = mongo_init_env()
    first = run_mongo_init(env, initiated=False, users=[])
    [config] = first["initiate"]
    assert config["_id"] == "rs0"
    assert [m["host"] for m in config["members"]] == [f"{m}:27017" for m in MEMBERS]
    assert first["updated"] == []
    assert {u["user"]: (u["db"], u["roles"], u["pwd"]) for u in first["created"]} == {
        name: (
            f"lemma_{name}",
            [{"role": "readWrite", "db": f"lemma_{name}"}],
            env_example()["LEMMA_MONGO_PASSWORD_" + name.upper()],
        )
        for name in SERVICES
    }
    # the users' database is the one each service's store URL names (its authSource)
    for name in SERVICES:
        assert (
            Settings(store_url="mongodb://h/lemma_{service}").store_url_for(name).endswith(f"/lemma_{name}")
        )
    # run again: nothing initiated twice, every user updated (a changed password takes effect)
    again = run_mongo_init(env, initiated=True, users=[f"lemma_{n}.{n}" for n in SERVICES])
    assert again["initiate"] == [] and again["created"] == []
    assert sorted(u["user"] for u in again["updated"]) == sorted(SERVICES)
    # the root password reaches the URLs escaped, never in clear in what is printed
    assert all(env["MONGO_ROOT_PASSWORD"] not in line for line in first["printed"] + again["printed"])


def test_mongo_init_refuses_to_run_without_service_users() -> None:
    env = {k: v for k, v in mongo_init_env().items() if not k.startswith("MONGO_SERVICE_PASSWORD_")}
    with pytest.raises(AssertionError, match="no MONGO_SERVICE_PASSWORD_"):
        run_mongo_init(env, initiated=True, users=[])
