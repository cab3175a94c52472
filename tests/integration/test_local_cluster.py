"""The scaled-out local stack, as `make run BROKERS=3 REPLICAS=2` starts it: a three-node
Apache Kafka cluster (KRaft, static quorum), two replicas of every service behind the
gateway, and the supervisor.

On free ports in a temporary folder: ``lemma stack status --json`` names every process; the
domain topics are replicated three times with min ISR 2; a replica killed with SIGKILL is
restarted by the supervisor under the same instance id and port while the gateway keeps
answering through the other replica; everything stops, and nothing is restarted meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from cli.main import app as lemma
from deploy.local import processes
from deploy.local.credentials import jwt_secret
from deploy.local.stack import StackConfig, StackError, start_stack, stop_stack
from shared.auth import mint_token
from shared.events.registry import Topic
from shared.settings import Settings

VICTIM = "passport-2"  # the gateway's /v1/skills is passport's: the other replica must answer


def status(config: StackConfig) -> dict[str, Any]:
    shown = CliRunner().invoke(lemma, ["stack", "status", "--json", "--state-dir", str(config.state_dir)])
    assert shown.exit_code == 0, shown.output
    data: dict[str, Any] = json.loads(shown.output)
    return data


def process(shown: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in shown["processes"] if p["name"] == name)
    return found


async def replication(bootstrap: str) -> dict[str, tuple[set[int], str]]:
    """Each domain topic's replica counts (one per partition) and its min.insync.replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t.value for t in Topic]
        described = await admin.describe_topics(names)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in names])
    finally:
        await admin.close()
    isr = {
        name: {entry[0]: entry[1] for entry in entries}["min.insync.replicas"]
        for response in configs
        for _error, _message, _type, name, entries in response.resources
    }
    return {t["topic"]: ({len(p["replicas"]) for p in t["partitions"]}, isr[t["topic"]]) for t in described}


async def registered_on_the_log(bootstrap: str, learner: str) -> bool:
    """The learner's LearnerRegistered is on lemma.passport.v1 (written with acks=all: two of
    the three nodes had it before the producer was answered)."""
    topic = Topic.PASSPORT.value
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            if learner.encode() in {r.key for records in batch.values() for r in records}:
                return True
        return False
    finally:
        await consumer.stop()


def register(config: StackConfig, learner: str) -> httpx.Response:
    token = mint_token(Settings(jwt_secret=jwt_secret(config.state_dir)), learner)
    return httpx.post(
        f"{config.gateway_url}/v1/learners",
        json={"handle": learner, "display_name": "Cluster Test"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_three_brokers_two_replicas_a_killed_replica_comes_back(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path / "state", brokers=3, replicas=2)
    pids: set[int] = set()
    try:
        try:
            start_stack(config)
        except StackError as exc:
            pytest.fail(f"{exc}\nlast lines of {exc.process}.log:\n{exc.log_tail}")
        shown = status(config)
        pids = {p["pid"] for p in shown["processes"]}
        assert (shown["brokers"], shown["replicas"]) == (3, 2)
        roles = [p["role"] for p in shown["processes"]]
        assert roles.count("broker") == 3 and roles.count("service") == 10
        assert roles.count("gateway") == roles.count("supervisor") == 1
        # a readiness probe may time out on a busy machine: ready within a while, never restarted
        deadline = time.monotonic() + 30
        while not_ready := [p for p in shown["processes"] if not (p["alive"] and p["ready"])]:
            assert time.monotonic() < deadline, not_ready
            time.sleep(1.0)
            shown = status(config)
        assert [p for p in shown["processes"] if p["restarts"]] == []
        assert {(p["service"], p["instance"]) for p in shown["processes"] if p["role"] == "service"} == {
            (name, n) for name in config.services for n in (1, 2)
        }
        assert {p["port"] for p in shown["processes"] if p["role"] == "broker"} == {
            port for _, port, _ in config.kafka_nodes
        }

        topics = asyncio.run(replication(config.kafka_bootstrap))
        assert topics == {t.value: ({3}, "2") for t in Topic}
        learner = f"cluster-{uuid.uuid4().hex[:8]}"
        registered = register(config, learner)
        assert registered.status_code == 201, registered.text
        assert asyncio.run(registered_on_the_log(config.kafka_bootstrap, learner))

        victim = process(shown, VICTIM)
        assert environ(victim["pid"])["LEMMA_INSTANCE"] == "2"
        os.kill(victim["pid"], signal.SIGKILL)
        answers: list[int] = []
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=config.gateway_url, timeout=10) as gateway:
            while True:
                answers.append(gateway.get("/v1/skills").status_code)
                now = process(status(config), VICTIM)
                if now["restarts"] == 1 and now["alive"] and now["ready"]:
                    break
                assert time.monotonic() < deadline, now
                time.sleep(0.2)
        assert set(answers) == {200}, answers  # the other replica answered all along
        assert now["pid"] != victim["pid"] and now["port"] == victim["port"]
        assert environ(now["pid"])["LEMMA_INSTANCE"] == "2"
        assert environ(now["pid"])["LEMMA_PORT"] == str(victim["port"])
        assert environ(now["pid"])["LEMMA_KAFKA_BOOTSTRAP"] == config.kafka_bootstrap
        assert sum(p["restarts"] for p in status(config)["processes"]) == 1
        pids |= {now["pid"]}
    finally:
        stop_stack(config)
    assert not [pid for pid in pids if processes.is_alive(pid)]
    assert not list(config.run_dir.glob("*.pid"))
    assert not [port for port in config.ports().values() if processes.port_open(port)]
    # the supervisor stopped first: nothing was restarted while the stack stopped
    assert (config.log_dir / "supervisor.log").read_text().count("restarted ") == 1
