"""Pytest fixtures for the MongoDB store tests (a plugin: ``pytest_plugins`` in tests/conftest.py).

- ``mongo_url`` (session): the URL of a MongoDB server. ``LEMMA_TEST_MONGO_URL`` when set (a
  real replica set, e.g. ``mongodb://127.0.0.1:27017/?replicaSet=rs0``), else the test server
  of ``tests/support/mongo_server.py``, started once for the session.
- ``mongo_db_url``: ``mongo_url`` addressing a database of the test's own, dropped afterwards.
- ``@pytest.mark.mongo_gap("...")``: a test of a MongoDB behaviour the test server lacks. It must
  pass on a real MongoDB; on the test server it is an expected failure (strict: if the server
  starts doing it, the mark has to go). ``docs/stores.md`` lists the gaps.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from tests.support.mongo_server import mongo_test_server, with_database

ENV_URL = "LEMMA_TEST_MONGO_URL"


def real_mongo_url() -> str:
    """The real MongoDB named by ``LEMMA_TEST_MONGO_URL``, or "" for the test server."""
    return os.environ.get(ENV_URL, "").strip()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mongo_gap(reason): a MongoDB behaviour the test server lacks; "
        "an expected failure unless LEMMA_TEST_MONGO_URL names a real MongoDB",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if real_mongo_url():
        return
    for item in items:
        for mark in item.iter_markers("mongo_gap"):
            reason = mark.args[0] if mark.args else "a MongoDB behaviour the test server lacks"
            item.add_marker(pytest.mark.xfail(reason=f"test server: {reason}", strict=True))


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB server's URL: the real one of ``LEMMA_TEST_MONGO_URL``, or the test server."""
    real = real_mongo_url()
    if real:
        yield real
        return
    with mongo_test_server(tmp_path_factory.mktemp("mongo")) as url:
        yield url


@pytest.fixture
def mongo_db_url(mongo_url: str) -> Iterator[str]:
    """``mongo_url`` with a fresh database of this test's own, dropped after the test."""
    name = f"lemma_test_{uuid.uuid4().hex[:12]}"
    yield with_database(mongo_url, name)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    try:
        client.drop_database(name)
    finally:
        client.close()
