"""The compose deployment's secrets come only from the env file: every secret a required
variable, the env example naming every variable the compose file uses and no other, the env
file itself never committed. The secret check also runs on broken copies of the file."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest

from tests.support.compose_file import (
    COMPOSE,
    CREDENTIALS,
    REFERENCE,
    REQUIRED,
    ROOT,
    SECRET_NAME,
    Doc,
    all_replicas,
    broken,
    env_example,
    environment,
    load,
    services,
    strings,
)


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
