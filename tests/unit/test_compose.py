"""The compose deployment (``deploy/compose/``), checked without a container engine: the file
validates against the compose specification, and it keeps its structural promises (three
brokers, three Mongo members, two replicas of each service with their own instance names,
start order through health checks and finished jobs, no sleeps, secrets only from variables,
Prometheus scraping exactly the replicas, Grafana provisioned from the dashboards folder, the
env example naming every variable, the gateway's Caddyfile the local gateway's render).

Each structural check is a function returning the problems it finds; beside each ``== []``
test stands one that breaks a copy of the file and sees the check report it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app as lemma_cli
from deploy.compose import gateway as compose_gateway
from deploy.local.binaries import venv_bin
from deploy.local.config import SERVICES
from deploy.local.gateway import render_caddyfile
from shared.bus import topic_configs
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "deploy" / "compose"
COMPOSE = HERE / "compose.yaml"
ENV_EXAMPLE = HERE / ".env.example"
MONGO_INIT = HERE / "mongo-init.js"
PROMETHEUS = HERE / "prometheus.yml"
GRAFANA = HERE.parent / "grafana" / "provisioning"

Doc = dict[str, Any]
REPLICAS = ("1", "2")
LEMMA_IMAGE = "${LEMMA_IMAGE:-lemma:latest}"
#: A variable reference that stops `docker compose up` when the variable is empty.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
#: Any variable reference compose interpolates (``$$`` is a literal dollar for the container).
REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEYFILE|TOKEN|_AUTH$|PRIVATE")
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
MEMBERS = ("mongo-1", "mongo-2", "mongo-3")


def load() -> Doc:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` as compose gives it to the container, with ``env`` as the .env file."""

    def one(match: re.Match[str]) -> str:
        name, rest = match["name"], match["rest"]
        if env.get(name):
            return env[name]
        if rest.startswith(":-"):
            return rest[2:]
        raise AssertionError(f"{name} is required and empty")

    return REFERENCE.sub(one, value).replace("$$", "$")


def services(doc: Doc) -> dict[str, Doc]:
    found = doc["services"]
    assert isinstance(found, dict)
    return found


def environment(service: Doc) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping throughout"
    return {str(k): str(v) for k, v in env.items()}


def replicas_of(doc: Doc, name: str) -> dict[str, Doc]:
    """The compose services that run service ``name`` (by their command)."""
    return {
        key: svc
        for key, svc in services(doc).items()
        if svc.get("command") == ["python", "-m", f"services.{name}"]
    }


def all_replicas(doc: Doc) -> dict[str, Doc]:
    return {key: svc for name in SERVICES for key, svc in replicas_of(doc, name).items()}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def broken(mutate: Callable[[Doc], object]) -> Doc:
    doc = copy.deepcopy(load())
    mutate(doc)
    return doc


# --- the compose specification ---------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = venv_bin("check-jsonschema")
    argv = [tool, "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    out = check_jsonschema(COMPOSE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok -- validation done" in out.stdout


def test_a_broken_compose_file_fails_the_specification(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    wrong = text.replace("condition: service_completed_successfully", "condition: service_finished", 1)
    assert wrong != text
    (tmp_path / "compose.yaml").write_text(wrong)
    out = check_jsonschema(tmp_path / "compose.yaml")
    assert out.returncode != 0
    assert "service_finished" in out.stdout + out.stderr


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


# --- MongoDB: a three-member replica set, one user per service ----------------------------------


#: A URL's credentials; the password may be a variable reference (whose message has spaces).
CREDENTIALS = re.compile(r"(?P<scheme>[a-z+]+)://(?P<user>[^:/@\s]*):(?P<password>\$\{[^}]*\}|[^@/\s]*)@")
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


# --- the services: two replicas each, each its own static member -------------------------------


def replica_problems(doc: Doc) -> list[str]:
    problems = []
    for name, port in SERVICES.items():
        replicas = replicas_of(doc, name)
        wanted = [f"{name}-{n}" for n in REPLICAS]
        if sorted(replicas) != wanted:
            problems.append(f"{name} runs as {sorted(replicas)}, not {wanted}")
            continue
        instances = [environment(r).get("LEMMA_INSTANCE") for r in replicas.values()]
        if sorted(map(str, instances)) != list(REPLICAS):
            problems.append(f"{name}: LEMMA_INSTANCE {instances} (each replica needs its own)")
        for key, replica in replicas.items():
            if environment(replica).get("LEMMA_PORT") != str(port):
                problems.append(f"{key}: LEMMA_PORT is not {port}")
            if replica.get("image") != LEMMA_IMAGE:
                problems.append(f"{key}: image {replica.get('image')!r}")
    return problems


def test_every_service_runs_as_two_replicas_with_distinct_instances() -> None:
    assert replica_problems(load()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"].pop("evidence-2"),
        lambda d: d["services"]["matching-2"]["environment"].update(LEMMA_INSTANCE="1"),
        lambda d: d["services"]["sci-1"]["environment"].update(LEMMA_PORT="8101"),
        lambda d: d["services"].update({"sci-3": copy.deepcopy(d["services"]["sci-1"])}),
    ],
)
def test_the_replica_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert replica_problems(broken(mutate))


def test_every_replica_gets_valid_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What each container is given, with the example's values, passes the production validator
    (RS256 tokens with a JWKS URL, shared request limits, a store URL per service)."""
    example = env_example()
    for key, replica in all_replicas(load()).items():
        for name in [n for n in os.environ if n.startswith("LEMMA_")]:
            monkeypatch.delenv(name)
        for name, value in environment(replica).items():
            monkeypatch.setenv(name, interpolate(value, example))
        settings = Settings()
        assert settings.environment == "production", key
        assert settings.jwt_algorithm == "RS256" and settings.jwt_jwks_url == example["LEMMA_JWT_JWKS_URL"]
        assert settings.rate_limit_storage.startswith("redis://")
        assert settings.kafka_bootstrap == ",".join(f"{b}:9092" for b in BROKERS)
        service = key.rsplit("-", 1)[0]
        assert settings.store_url_for(service).split("/")[-1].startswith(f"lemma_{service}?"), key


# --- start order: health checks and finished jobs, never sleeps -----------------------------


def dependency_problems(doc: Doc) -> list[str]:
    problems = []
    every = services(doc)
    for key, svc in every.items():
        depends = svc.get("depends_on", {})
        if not isinstance(depends, dict):
            problems.append(f"{key}: depends_on is a list (waits for nothing)")
            continue
        for target, how in depends.items():
            condition = (how or {}).get("condition")
            other = every.get(target)
            if other is None:
                problems.append(f"{key}: depends on unknown {target}")
            elif condition == "service_healthy":
                if not other.get("healthcheck", {}).get("test") or other["healthcheck"].get("disable"):
                    problems.append(f"{key}: waits for {target} to be healthy, but it has no health check")
            elif condition == "service_completed_successfully":
                if other.get("restart") != "no":
                    problems.append(f"{key}: waits for {target} to finish, but it is restarted")
            else:
                problems.append(f"{key}: {target} with condition {condition!r}")
    for key, svc in every.items():
        long_running = svc.get("restart") != "no"
        checked = bool(svc.get("healthcheck", {}).get("test")) and not svc["healthcheck"].get("disable")
        if long_running and not checked:
            problems.append(f"{key}: runs for good with no health check")

    def waits(key: str, target: str, condition: str) -> None:
        depends = every.get(key, {}).get("depends_on") or {}
        if not isinstance(depends, dict) or (depends.get(target) or {}).get("condition") != condition:
            problems.append(f"{key} does not wait for {target} ({condition})")

    for broker in BROKERS:
        waits("kafka-topics", broker, "service_healthy")
    for member in MEMBERS:
        waits("mongo-init", member, "service_healthy")
    for replica in all_replicas(doc):
        waits(replica, "kafka-topics", "service_completed_successfully")
        waits(replica, "mongo-init", "service_completed_successfully")
        waits(replica, "redis", "service_healthy")
        waits("gateway", replica, "service_healthy")
        test = " ".join(strings(every[replica].get("healthcheck", {}).get("test")))
        if "/readyz" not in test:
            problems.append(f"{replica}: its health check does not ask /readyz")
    waits("grafana", "prometheus", "service_healthy")
    return problems


def test_start_order_goes_through_health_checks_and_finished_jobs() -> None:
    assert dependency_problems(load()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["gateway"].update(depends_on=["sci-1"]),
        lambda d: d["services"]["sci-2"]["depends_on"].update(
            {"mongo-init": {"condition": "service_started"}}
        ),
        lambda d: d["services"]["redis"].pop("healthcheck"),
        lambda d: d["services"]["mongo-init"].update(restart="on-failure"),
        lambda d: d["services"]["gateway"]["depends_on"].pop("evidence-2"),
        lambda d: d["services"]["kafka-topics"]["depends_on"].pop("kafka-2"),
        lambda d: d["services"]["passport-1"]["healthcheck"].update(test=["CMD", "true"]),
    ],
)
def test_the_start_order_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert dependency_problems(broken(mutate))


def sleep_problems(doc: Doc, scripts: dict[str, str]) -> list[str]:
    problems = []
    for key, svc in services(doc).items():
        for field in ("command", "entrypoint", "healthcheck"):
            if any(re.search(r"\bsleep\b", s) for s in strings(svc.get(field))):
                problems.append(f"{key}: sleeps in its {field}")
    problems += [f"{name} sleeps" for name, text in scripts.items() if re.search(r"\bsleep\b", text)]
    return problems


def test_nothing_sleeps() -> None:
    assert sleep_problems(load(), {MONGO_INIT.name: MONGO_INIT.read_text()}) == []


def test_the_sleep_check_can_fail() -> None:
    doc = broken(
        lambda d: d["services"]["kafka-topics"].update(
            command=["sh", "-c", "sleep 30 && lemma topics create"]
        )
    )
    assert sleep_problems(doc, {})
    assert sleep_problems(load(), {"init.js": "while (!ready()) sleep(1000);"})


# --- secrets: only from the env file --------------------------------------------------------------


def secret_problems(doc: Doc) -> list[str]:
    problems = []
    for key, svc in services(doc).items():
        for name, value in environment(svc).items():
            if SECRET_NAME.search(name) and not REQUIRED.match(value):
                problems.append(f"{key}: {name} is not a required variable")
            for credentials in CREDENTIALS.finditer(value):
                if not REQUIRED.match(credentials["password"]):
                    problems.append(f"{key}: {name} has a password that is not a required variable")
        text = " ".join(strings([svc.get("command"), svc.get("entrypoint")]))
        for flag, value in re.findall(r"(--requirepass|--password|--pass|-p)[ =](\S+)", text):
            if not re.fullmatch(r'"?\$\$[A-Z_]+"?', value):
                problems.append(f"{key}: {flag} {value} is not the container's variable")
    return problems


def test_every_secret_comes_from_a_required_variable() -> None:
    doc = load()
    assert secret_problems(doc) == []
    # the URL check reads the real URLs: each replica's store and limits, the topic job's limits
    found = [
        m
        for svc in services(doc).values()
        for v in environment(svc).values()
        for m in CREDENTIALS.finditer(v)
    ]
    assert len(found) == 2 * len(all_replicas(doc)) + 1


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["grafana"]["environment"].update(GF_SECURITY_ADMIN_PASSWORD="admin"),
        lambda d: d["services"]["mongo-1"]["environment"].update(
            MONGO_INITDB_ROOT_PASSWORD="${LEMMA_MONGO_ROOT_PASSWORD:-hunter2}"
        ),
        lambda d: d["services"]["sci-1"]["environment"].update(
            LEMMA_STORE_URL="mongodb://sci:hunter2@mongo-1:27017/lemma_{service}?replicaSet=rs0"
        ),
        lambda d: d["services"]["redis"].update(command=["redis-server", "--requirepass", "hunter2"]),
    ],
)
def test_the_secret_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert secret_problems(broken(mutate))


def used_variables(text: str) -> set[str]:
    return {m["name"] for m in REFERENCE.finditer(text)}


def test_the_env_example_names_every_variable_the_compose_file_uses_and_no_other() -> None:
    used = used_variables(COMPOSE.read_text())
    named = set(env_example())
    assert used == named, f"not in .env.example: {sorted(used - named)}; unused: {sorted(named - used)}"
    assert used_variables("a: ${X:?x}\nb: $${NOT_ONE}\nc: ${Y:-1}") == {"X", "Y"}  # the reader itself


def test_the_env_file_is_never_committed() -> None:
    out = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", "deploy/compose/.env"], cwd=ROOT, timeout=30
    )
    assert out.returncode == 0, "deploy/compose/.env is not ignored by git"
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/compose/.env"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert tracked.stdout.strip() == ""


# --- images: one built image, third-party images pinned --------------------------------------------


def image_problems(doc: Doc) -> list[str]:
    problems = []
    for key, svc in services(doc).items():
        image = str(svc.get("image", ""))
        if image == LEMMA_IMAGE:
            build = svc.get("build") or {}
            context = (HERE / str(build.get("context", "."))).resolve()
            if (
                context != ROOT
                or (context / str(build.get("dockerfile", ""))) != ROOT / "deploy" / "Dockerfile"
            ):
                problems.append(f"{key}: does not build deploy/Dockerfile from the repository root")
        elif not re.fullmatch(r"[a-z0-9./_-]+:v?\d+\.\d+\.\d+", image):
            problems.append(f"{key}: image {image!r} is not pinned to a release")
    return problems


def test_the_image_is_built_from_the_repository_and_every_other_image_is_pinned() -> None:
    assert image_problems(load()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["grafana"].update(image="grafana/grafana:latest"),
        lambda d: d["services"]["redis"].update(image="redis"),
        lambda d: d["services"]["sci-1"].update(build={"context": "..", "dockerfile": "deploy/Dockerfile"}),
    ],
)
def test_the_image_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    assert image_problems(broken(mutate))


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


# --- Prometheus and Grafana --------------------------------------------------------------------


def mount(svc: Doc, source: str) -> str:
    """Where ``source`` (as written in compose.yaml) is mounted in ``svc``'s container."""
    for volume in svc.get("volumes", []):
        parts = str(volume).split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


def scrape_problems(doc: Doc, config: Doc) -> list[str]:
    problems = []
    every = services(doc)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped: list[tuple[str, str]] = []
    for name, job in jobs.items():
        for target in [t for c in job.get("static_configs", []) for t in c["targets"]]:
            host, _, port = target.rpartition(":")
            if name == "prometheus" and host == "localhost":
                continue
            if host not in every:
                problems.append(f"{name}: target {target} is no compose service")
            elif environment(every[host]).get("LEMMA_PORT") != port:
                problems.append(f"{name}: target {target} is not where {host} listens")
            scraped.append((name, host))
    for name in SERVICES:
        for replica in replicas_of(doc, name):
            if scraped.count((f"lemma-{name}", replica)) != 1:
                problems.append(f"{replica} is not scraped once by job lemma-{name}")
    alerts = mount(every["prometheus"], "../prometheus/alerts.yml")
    if config.get("rule_files") != [alerts]:
        problems.append(f"rule_files {config.get('rule_files')} are not the mounted alerts ({alerts})")
    return problems


def test_prometheus_scrapes_exactly_every_replica_and_loads_the_alert_rules() -> None:
    doc = load()
    assert scrape_problems(doc, yaml.safe_load(PROMETHEUS.read_text())) == []
    # the rules are mounted from where they are kept and tested, not copied
    assert (HERE / "../prometheus/alerts.yml").resolve() == ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert not list(HERE.rglob("alerts*.yml"))
    # the alert rules select the jobs by this name
    assert 'job=~"lemma-.*"' in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert mount(services(doc)["prometheus"], "./prometheus.yml") == "/etc/prometheus/prometheus.yml"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["scrape_configs"][0]["static_configs"][0]["targets"].pop(),
        lambda c: c["scrape_configs"][1].update(job_name="matching"),
        lambda c: c["scrape_configs"][2]["static_configs"][0]["targets"].append("sessions-3:8103"),
        lambda c: c["scrape_configs"][4]["static_configs"][0]["targets"].__setitem__(0, "sci-1:9999"),
        lambda c: c.update(rule_files=["/etc/prometheus/alerts.yml"]),
    ],
)
def test_the_scrape_check_can_fail(mutate: Callable[[Doc], object]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    mutate(config)
    assert scrape_problems(load(), config)


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs it (Debian's package prometheus)"
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_grafana_provisions_the_prometheus_data_source_and_the_dashboards_folder() -> None:
    grafana = services(load())["grafana"]
    assert mount(grafana, "../grafana/provisioning") == "/etc/grafana/provisioning"
    [source] = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yaml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert url.hostname in services(load()) and url.hostname == "prometheus" and url.port == 9090
    [provider] = yaml.safe_load((GRAFANA / "dashboards" / "lemma.yaml").read_text())["providers"]
    assert provider["options"]["path"] == mount(grafana, "../grafana/dashboards")
    assert (HERE / "../grafana/dashboards").resolve() == ROOT / "deploy" / "grafana" / "dashboards"


# --- the gateway ---------------------------------------------------------------------------------


def test_the_committed_caddyfile_is_the_local_gateways_render_for_the_compose_replicas() -> None:
    assert compose_gateway.CADDYFILE.read_text() == compose_gateway.render(), (
        "deploy/compose/Caddyfile is stale: run `python -m deploy.compose.gateway`"
    )
    doc = load()
    assert mount(services(doc)["gateway"], "./Caddyfile") in services(doc)["gateway"]["command"]
    for name, upstreams in compose_gateway.upstreams().items():
        assert [u.rsplit(":", 1)[0] for u in upstreams] == sorted(replicas_of(doc, name))
        assert {u.rsplit(":", 1)[1] for u in upstreams} == {str(SERVICES[name])}


def test_the_compose_gateway_routes_exactly_as_the_local_one(tmp_path: Path) -> None:
    def routes(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if re.match(r"\s*(@\S+ path|handle|uri) ", line)]

    local = render_caddyfile(8000, dict(SERVICES), tmp_path)
    deployed = compose_gateway.CADDYFILE.read_text()
    assert routes(deployed) == routes(local) and len(routes(local)) > 3 * len(SERVICES)
    assert "\tbind " not in deployed  # every interface of its container
    for name in SERVICES:
        upstreams = " ".join(compose_gateway.upstreams()[name])
        assert deployed.count(f"reverse_proxy {upstreams} {{") == 2  # the routes and the API documents


def test_caddy_accepts_the_compose_caddyfile() -> None:
    argv = [venv_bin("caddy"), "adapt", "--config", str(compose_gateway.CADDYFILE), "--adapter", "caddyfile"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["apps"]["http"]["servers"]
