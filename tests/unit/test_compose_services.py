"""The compose deployment's services: two replicas of each with their own instance names and
production settings that pass the validator, start order through health checks and finished
jobs (never sleeps), the one image built from the repository and every other image pinned. Each
structural check also runs on a broken copy of the file."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable

import pytest

from deploy.local.config import SERVICES
from shared.settings import Settings
from tests.support.compose_file import (
    BROKERS,
    HERE,
    LEMMA_IMAGE,
    MEMBERS,
    MONGO_INIT,
    REPLICAS,
    ROOT,
    Doc,
    all_replicas,
    broken,
    env_example,
    environment,
    interpolate,
    load,
    replicas_of,
    services,
    strings,
)

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
