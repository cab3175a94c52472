"""Real local processes for tests: a Tansu broker on the memory engine, free ports, stopping.

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

from deploy.local.binaries import tansu
from deploy.local.processes import port_open, wait_until


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


@contextlib.contextmanager
def tansu_memory_broker(log_dir: Path) -> Iterator[str]:
    """A Tansu broker on a free port with the in-memory engine; yields its bootstrap address."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with (log_dir / f"tansu-{port}.log").open("wb") as log:
        proc = subprocess.Popen(
            [tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(lambda: port_open(port), timeout=20, what="tansu", alive=lambda: proc.poll() is None)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process(proc)


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
