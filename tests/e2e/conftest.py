"""The whole local stack, started as `make run` starts it, on free ports in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.stack import StackConfig, start_stack, stop_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = StackConfig.with_free_ports(Path(tmp_path_factory.mktemp("stack")))
    try:
        start_stack(config)
        yield config
    finally:
        stop_stack(config)
