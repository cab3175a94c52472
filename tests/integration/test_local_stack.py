"""The local stack as `make run` starts it: Apache Kafka (one KRaft node), the five services, Caddy.

Started on free ports in a temporary folder, stopped (no process left), started again on the
same folder: a record and a committed offset from before the restart are still there, and a
plain Kafka client (not our code) reads the domain topics, which keep their events forever.
"""

from __future__ import annotations

import asyncio
import stat
import sys
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from cli.main import app as lemma
from deploy.local import processes
from deploy.local.credentials import jwt_secret
from deploy.local.stack import StackConfig, running_processes, start_stack, stop_stack
from shared.auth import mint_token
from shared.events.registry import Topic
from shared.settings import Settings

TOPIC = "lemma.stack-test.v1"
GROUP = "stack-test"

#: One read route per service, answered by the service (JSON), not by the gateway's 404.
OWNED_ROUTES = {
    "passport": "/v1/skills",
    "matching": "/v1/match-requests/no-such-ticket",
    "sessions": "/v1/sessions/no-such-session",
    "evidence": "/v1/evidence?learner_id=nobody",
    "sci": "/v1/scores/nobody",
}


async def produce_and_commit(bootstrap: str, marker: bytes) -> int:
    """Write one record, read it in a consumer group and commit past it; returns its offset."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(TOPIC, value=marker, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            seen.extend(r.value for records in batch.values() for r in records if r.value is not None)
            if marker in seen:
                break
        assert marker in seen
        await consumer.commit({TopicPartition(TOPIC, 0): meta.offset + 1})
    finally:
        await consumer.stop()
    return int(meta.offset)


async def read_back(bootstrap: str) -> tuple[list[bytes], int | None]:
    """Every value of the test topic and the group's committed offset, as the broker has them."""
    tp = TopicPartition(TOPIC, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(tp)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            values.extend(r.value for r in batch.get(tp, []) if r.value is not None)
        return values, committed
    finally:
        await consumer.stop()


def register(config: StackConfig, learner: str) -> httpx.Response:
    token = mint_token(Settings(jwt_secret=jwt_secret(config.state_dir)), learner)
    return httpx.post(
        f"{config.gateway_url}/v1/learners",
        json={"handle": learner, "display_name": "Stack Test"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


async def domain_topics_as_an_outsider_sees_them(bootstrap: str, learner: str) -> set[str]:
    """With plain aiokafka: every domain topic keeps its events forever and can be read from
    the start; the learner registered through the gateway is on lemma.passport.v1. Returns the
    domain topics found."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        domain = sorted(set(await admin.list_topics()) & {t.value for t in Topic})
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in domain]
        described = await admin.describe_configs(resources)
    finally:
        await admin.close()
    for response in described:
        for _error, _message, _type, name, entries in response.resources:
            config = {entry[0]: entry[1] for entry in entries}
            assert config["retention.ms"] == "-1", name
            assert config["min.insync.replicas"] == "1", name
    consumer = AIOKafkaConsumer(*domain, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            keys = {r.key for records in batch.values() for r in records}
            if learner.encode() in keys:
                break
        else:
            raise AssertionError(f"{learner}'s LearnerRegistered never reached lemma.passport.v1")
    finally:
        await consumer.stop()
    return set(domain)


def assert_all_stopped(config: StackConfig, pids: list[int]) -> None:
    assert pids
    assert not [pid for pid in pids if processes.is_alive(pid)]
    assert not list(config.run_dir.glob("*.pid"))
    assert not [port for port in config.ports().values() if processes.port_open(port)]


def test_stack_serves_every_service_stops_clean_and_keeps_its_log(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path / "state")
    marker = f"durable-{uuid.uuid4()}".encode()
    pids: list[int] = []
    try:
        start_stack(config)
        pids = [h.pid for h in running_processes(config).values()]
        assert len(pids) == len(config.services) + 3  # Kafka, gateway, supervisor

        with httpx.Client(base_url=config.gateway_url, timeout=10) as gw:
            for name in config.services:
                ready = httpx.get(f"{config.service_url(name)}/readyz", timeout=10)
                assert ready.status_code == 200, (name, ready.text)
                assert ready.json() == {"ready": True}
                # the public door shows no operator's page of any service
                for inner in ("readyz", "metrics", "asyncapi.json", "ops/projections"):
                    assert gw.get(f"/{name}/{inner}").status_code == 404, (name, inner)
                owned = gw.get(OWNED_ROUTES[name])
                assert "json" in owned.headers["content-type"], (name, owned.status_code, owned.text)
            skills = gw.get("/v1/skills")
            assert skills.status_code == 200
            assert {"id": "machine-learning"}.items() <= skills.json()[0].items()
            assert "/passport/docs" in gw.get("/").text
            assert "/sci/openapi.json" in gw.get("/sci/docs").text
            assert gw.get("/sci/openapi.json").json()["info"]["title"]
            for inner in ("/metrics", "/readyz", "/healthz", "/asyncapi.json", "/ops/projections"):
                assert gw.get(inner).status_code == 404, inner
            assert gw.get("/v1/matching/ownership").status_code == 404
            # what a client may send: bodies and headers are held to a size at the door
            huge = gw.post("/v1/waitlist", json={"email": "x" * 100_000 + "@example.com"})
            assert huge.status_code == 413 and huge.json()["status"] == 413, huge.text
            assert gw.get("/v1/skills", headers={"X-Padding": "x" * 40_000}).status_code == 431
            # browser security headers on the gateway's own answers and the services' pages
            for path in ("/", "/skills/machine-learning", "/v1/skills"):
                answer = gw.get(path)
                assert answer.headers["X-Content-Type-Options"] == "nosniff", path
                assert answer.headers["X-Frame-Options"] == "DENY", path
            page_policy = gw.get("/skills/machine-learning").headers["Content-Security-Policy"]
            assert "script-src" not in page_policy and "default-src 'none'" in page_policy

        assert stat.S_IMODE((config.state_dir / "jwt-secret").stat().st_mode) == 0o600
        listed = CliRunner().invoke(lemma, ["projections", "list", "--state-dir", str(config.state_dir)])
        assert listed.exit_code == 0, listed.output
        assert "folding" in listed.output and "sessions" in listed.output and "parked" not in listed.output
        resumed = CliRunner().invoke(
            lemma, ["projections", "resume", "sci", "--state-dir", str(config.state_dir)]
        )
        assert resumed.exit_code == 0 and "no partition was parked" in resumed.output, resumed.output
        offset = asyncio.run(produce_and_commit(config.kafka_bootstrap, marker))
        learner = f"stack-{uuid.uuid4().hex[:8]}"
        registered = register(config, learner)
        assert registered.status_code == 201, registered.text
        assert asyncio.run(domain_topics_as_an_outsider_sees_them(config.kafka_bootstrap, learner)) == {
            t.value for t in Topic
        }
    finally:
        stop_stack(config)
    assert_all_stopped(config, pids)

    try:
        start_stack(config)
        pids = [h.pid for h in running_processes(config).values()]
        values, committed = asyncio.run(read_back(config.kafka_bootstrap))
        assert marker in values
        assert committed == offset + 1
    finally:
        stop_stack(config)
    assert_all_stopped(config, pids)


def test_a_stopped_process_is_signalled_by_pid_and_killed_when_it_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(60)"
    )
    log = tmp_path / "log" / "stubborn.log"
    handle = processes.spawn(
        "stubborn", [sys.executable, "-c", stubborn], log_dir=tmp_path / "log", run_dir=tmp_path / "run"
    )
    try:
        assert processes.running(tmp_path / "run", "stubborn") == handle
        processes.wait_until(lambda: "ignoring SIGTERM" in log.read_text(), timeout=10, what="handler set")
        processes.terminate(handle)
        assert processes.finish(handle, 0.5) is False  # it ignored SIGTERM: SIGKILL
        assert not handle.alive()
        assert processes.running(tmp_path / "run", "stubborn") is None  # stale pid file removed
        assert not (tmp_path / "run" / "stubborn.pid").exists()
    finally:
        processes.terminate(handle)
        processes.finish(handle, 1.0)


def test_a_pid_now_owned_by_another_process_is_never_taken_for_ours(tmp_path: Path) -> None:
    other = processes.Handle("other", pid=1, started="not-the-start-time-of-pid-1")
    assert not other.alive()
    (tmp_path / "other.pid").write_text("1\nnot-the-start-time-of-pid-1\n")
    assert processes.running(tmp_path, "other") is None
