"""A Redis server (Debian's ``redis-server``) on a free loopback port, for the request limits
that replicas share. Nothing is saved to disk; the server is stopped when the block ends."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, stop_process

START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def redis_server(home: Path) -> Iterator[str]:
    """Start one; yields its URL (``redis://127.0.0.1:<port>``)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(home)]
    with (home / "redis.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(home / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False
