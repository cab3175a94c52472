"""Kafka as production runs it: TLS and SASL/SCRAM-SHA-512 on the only client listener, an
authorizer, and each user allowed what ``deploy.kafka_acls`` says, no more.

On a broker of its own (``tests.support.secure_kafka``): the topic job's user makes the topics;
the sessions service, connected through our own client code and settings, runs, writes its
topic, its dead letters and its operators' actions, and is refused another service's topic,
another's data and another's group; nobody gets in without the password or without TLS.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from deploy.kafka_acls import OPERATOR_USER, TOPICS_USER, kafka_acls
from services.sessions.app import bootstrap as sessions_app
from shared.bus import BrokerPublisher, ensure_topics, make_broker
from shared.consistency import LogProgress
from shared.events.registry import Topic
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.settings import Settings
from shared.store.base import OutboxRecord
from tests.support.apps import serving
from tests.support.secure_kafka import SUPER_USER, SecureBroker, create_acls, secure_kafka_broker

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None, reason="java is not installed: Apache Kafka cannot run here"
)

PASSWORDS = {
    SUPER_USER: "admin-pw-0",
    TOPICS_USER: "topics-pw-1",
    OPERATOR_USER: "operator-pw-2",
    "sessions": "sessions-pw-3",
}
#: the broker, and the topics the topic job made on it
Secured = tuple[SecureBroker, list[str]]
#: how long a refusal may take to come (a client that cannot get in gives up within it)
REFUSED_WITHIN_S = 20.0


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureBroker, list[str]]]:
    """The broker, every non-super user's ACLs created, and the topics the topic job made."""
    with secure_kafka_broker(tmp_path_factory.mktemp("secure-kafka"), PASSWORDS) as broker:

        async def set_up() -> list[str]:
            for user in PASSWORDS:
                if user != SUPER_USER:
                    await create_acls(broker.connection(SUPER_USER), user, kafka_acls(user))
            return await ensure_topics(broker.connection(TOPICS_USER))

        yield broker, asyncio.run(set_up())


def service_settings(broker: SecureBroker, tmp_path: Path, **values: Any) -> Settings:
    """The sessions service's settings as a deployment gives them (the environment's LEMMA_*)."""
    base: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": broker.bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "sessions",
        "kafka_sasl_password": PASSWORDS["sessions"],
        "kafka_ssl_cafile": str(broker.ca_file),
        "state_dir": str(tmp_path),
        "consistency_wait_s": 1.0,
    }
    return Settings(**{**base, **values})


async def committed(progress: LogProgress, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets, once the cluster has its group coordinator (a new
    cluster makes its offsets topic at the first question)."""
    for _ in range(100):
        try:
            return await progress.committed(group)
        except GroupCoordinatorNotAvailableError:
            await asyncio.sleep(0.1)
    return await progress.committed(group)


def record(topic: Topic, key: str) -> OutboxRecord:
    return OutboxRecord(seq=key, topic=topic.value, key=key, value=b'{"test": true}')


async def test_the_topic_job_makes_every_topic_with_create_alone(
    secured: Secured,
) -> None:
    broker, created = secured
    assert sorted(created) == sorted(t.value for t in Topic)
    # describing is all it may do besides: it cannot read what the services write
    consumer = broker.connection(TOPICS_USER).consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(Topic.SESSIONS.value, 0)])
        await consumer.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(consumer.getone(), REFUSED_WITHIN_S)
    finally:
        await consumer.stop()


async def test_a_service_writes_its_own_topic_and_no_other(secured: Secured, tmp_path: Path) -> None:
    broker, _ = secured
    settings = service_settings(broker, tmp_path)
    kafka = make_broker(settings, client_id="lemma-sessions")  # what the service publishes with
    await kafka.start()
    try:
        publish = BrokerPublisher(kafka)
        placed = await publish([record(t, f"own-{t.name}") for t in (Topic.SESSIONS, Topic.DLQ, Topic.OPS)])
        assert [topic for topic, _, _ in placed] == [Topic.SESSIONS.value, Topic.DLQ.value, Topic.OPS.value]
        for other in (Topic.PASSPORT, Topic.MATCHING, Topic.EVIDENCE, Topic.SCI):
            with pytest.raises(TopicAuthorizationFailedError):
                await asyncio.wait_for(publish([record(other, "not-mine")]), REFUSED_WITHIN_S)
    finally:
        await kafka.stop()

    # what it wrote is there for a reader allowed to read it (the operator's CLI)
    operator = broker.connection(OPERATOR_USER)
    reader = operator.consumer(group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        tps = [
            TopicPartition(Topic.SESSIONS.value, p)
            for p in await partitions_of(operator, Topic.SESSIONS.value)
        ]
        ends = await reader.end_offsets(tps)
        assert sum(ends.values()) >= 1
    finally:
        await reader.stop()


async def test_a_service_reads_what_it_folds_in_its_own_group_only(secured: Secured, tmp_path: Path) -> None:
    broker, _ = secured
    kafka = KafkaConnection.of(service_settings(broker, tmp_path))
    # another service's group: refused, though sessions may read the topic
    stranger = kafka.consumer(Topic.SESSIONS.value, group_id="evidence", auto_offset_reset="earliest")
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await asyncio.wait_for(stranger.start(), REFUSED_WITHIN_S)
            await asyncio.wait_for(stranger.getone(), REFUSED_WITHIN_S)
    finally:
        await stranger.stop()
    # a topic it does not fold (evidence's): refused
    reader = kafka.consumer(group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([TopicPartition(Topic.EVIDENCE.value, 0)])
        await reader.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(reader.getone(), REFUSED_WITHIN_S)
    finally:
        await reader.stop()
    # following a consistency token reads the committed offsets of the services upstream only
    progress = LogProgress(kafka)
    try:
        assert await committed(progress, "passport") == {}  # described: no offsets yet
        with pytest.raises(GroupAuthorizationFailedError):
            await committed(progress, "evidence")  # downstream of sessions: never waited on
    finally:
        await progress.close()


async def test_the_sessions_service_runs_on_its_acls_alone(secured: Secured, tmp_path: Path) -> None:
    """Its consumer joins its group, its partitions are positioned (cluster id, log checks), its
    outbox relay's producer connects: ready, over SASL_SSL as User:sessions."""
    broker, _ = secured
    settings = service_settings(broker, tmp_path, consumer_static_membership=False)
    async with serving(sessions_app(settings)) as client:
        for _ in range(300):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the sessions service never became ready on its ACLs")


async def test_with_mtls_the_certificate_is_the_user(secured: Secured, tmp_path: Path) -> None:
    """SSL with a client certificate (CN=sessions) instead of SASL: the same user, the same ACLs,
    through the same settings."""
    broker, _ = secured
    issued = broker.mtls_connection("sessions")
    settings = service_settings(
        broker,
        tmp_path,
        kafka_bootstrap=broker.mtls_bootstrap,
        kafka_security_protocol="SSL",
        kafka_sasl_username="",
        kafka_sasl_password="",
        kafka_ssl_certfile=issued.ssl_certfile,
        kafka_ssl_keyfile=issued.ssl_keyfile,
    )
    kafka = make_broker(settings, client_id="lemma-sessions")
    await kafka.start()
    try:
        publish = BrokerPublisher(kafka)
        assert [t for t, _, _ in await publish([record(Topic.SESSIONS, "mtls")])] == [Topic.SESSIONS.value]
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(publish([record(Topic.PASSPORT, "not-mine")]), REFUSED_WITHIN_S)
    finally:
        await kafka.stop()
    # no certificate: the handshake is refused
    anonymous = KafkaConnection(
        broker.mtls_bootstrap, security_protocol="SSL", ssl_cafile=str(broker.ca_file)
    )
    admin = anonymous.admin(request_timeout_ms=5000)
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(admin.start(), REFUSED_WITHIN_S)
        try:
            await asyncio.wait_for(admin.list_topics(), REFUSED_WITHIN_S)
        finally:
            await admin.close()


@pytest.mark.parametrize(
    "who",
    ["a wrong password", "no credentials (TLS only)", "a plaintext client", "TLS without our CA"],
)
async def test_nobody_gets_in_without_the_password_and_tls(secured: Secured, who: str) -> None:
    broker, _ = secured
    right = broker.connection("sessions")
    kafka = {
        "a wrong password": broker.connection("sessions", password="sessions-pw-wrong"),
        "no credentials (TLS only)": KafkaConnection(
            broker.bootstrap, security_protocol="SSL", ssl_cafile=str(broker.ca_file)
        ),
        "a plaintext client": KafkaConnection(broker.bootstrap),
        "TLS without our CA": KafkaConnection(
            broker.bootstrap,
            security_protocol="SASL_SSL",
            sasl_username="sessions",
            sasl_password=SecretStr(PASSWORDS["sessions"]),
        ),
    }[who]
    admin = kafka.admin(request_timeout_ms=5000)
    with pytest.raises((KafkaConnectionError, KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(admin.start(), REFUSED_WITHIN_S)
        try:
            await asyncio.wait_for(admin.list_topics(), REFUSED_WITHIN_S)
        finally:
            await admin.close()
    # the same client with the right user, password and CA gets in
    allowed = right.admin()
    await allowed.start()
    try:
        assert Topic.SESSIONS.value in await allowed.list_topics()
    finally:
        await allowed.close()
