"""Fixtures shared by the integration and end-to-end suites: one Apache Kafka broker for the
whole session, per-test topic namespaces on it, and a MongoDB-wire server for the store tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deploy.local.broker import create_topics
from shared.kafka_connection import KafkaConnection
from tests.support.kafka import Namespace
from tests.support.processes import kafka_broker

#: the MongoDB store's test server (or LEMMA_TEST_MONGO_URL) and the mongo_gap mark
pytest_plugins = ["tests.support.mongo_fixtures"]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Apache Kafka broker (one KRaft node) with the domain topics
    made. Tests on these shared topics tell their events apart by their own ids."""
    with kafka_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture
def private_kafka(kafka: str) -> Namespace:
    """Topics and consumer groups of this test's own on the session's broker (a fresh name
    prefix), for tests whose consumers must see no other test's events."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    create_topics(KafkaConnection(kafka), prefix=prefix)
    return Namespace(kafka, prefix)
