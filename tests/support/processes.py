"""Real local processes for tests: an Apache Kafka broker, free ports, stopping.

The process helpers of the local stack (``deploy.local``) are reused; tests keep a
``Popen`` so they can SIGKILL what they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from deploy.local import broker
from deploy.local.processes import port_open, wait_until
from shared.kafka_connection import KafkaConnection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout`` s, and reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def kafka_broker(home: Path, *, topics: bool = True) -> Iterator[str]:
    """An Apache Kafka node (broker and controller, as ``make run`` starts it) on free ports with
    its storage in ``home``; yields its bootstrap address once the domain topics exist
    (``topics=False``: once it listens). Stopped (SIGTERM, then SIGKILL) on exit."""
    port, controller = free_ports(2)
    config = broker.BrokerConfig(home, port, controller, heap="384m", log_level="WARN")
    argv = broker.prepare(config)
    with (home / "kafka.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        wait_until(lambda: port_open(port), timeout=60, what="kafka listening", alive=alive)
        if topics:
            broker.create_topics(KafkaConnection(config.bootstrap), timeout=60, alive=alive)
        yield config.bootstrap
    finally:
        stop_process(proc, timeout=30)


def ops_token_for_processes() -> dict[str, str]:
    """An operator's bearer token that the processes ``start_matching_process`` starts accept
    (test settings: the development secret)."""
    from shared.auth import mint_token
    from shared.settings import Settings

    return {"Authorization": f"Bearer {mint_token(Settings(environment='test'), 'operator', role='ops')}"}


def start_matching_process(
    instance: str, bootstrap: str, state: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m services.matching`` as instance ``instance``, with its own state directory
    and a free port; ``settings`` are extra ``LEMMA_*`` variables. Returns (process, base URL);
    stop it with ``stop_process``. Its output goes to ``<state>/matching.log``."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "LEMMA_ENVIRONMENT": "test",
        "LEMMA_KAFKA_BOOTSTRAP": bootstrap,
        "LEMMA_STATE_DIR": str(state),
        "LEMMA_PORT": str(port),
        "LEMMA_INSTANCE": instance,
        **settings,
    }
    with (state / "matching.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.matching"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"
