"""Fixtures shared by the integration and end-to-end suites: a real Tansu broker per session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bus import ensure_topics
from tests.support.processes import tansu_memory_broker


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka-protocol broker (Tansu, memory engine) with the topics made."""
    log_dir: Path = tmp_path_factory.mktemp("tansu")
    with tansu_memory_broker(log_dir) as bootstrap:
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap


@pytest.fixture
def private_tansu(tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own, for tests whose consumers must see no other test's events."""
    with tansu_memory_broker(tmp_path) as bootstrap:
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap
