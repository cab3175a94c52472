"""A MongoDB-wire-protocol server for the Mongo store tests, when no real MongoDB is at hand.

The server is NX-27017 (the ``nx-27017`` package of the dev dependency group: a MongoDB wire
protocol server in Python on SQLite files, one file per database). ``mongo_test_server()``
starts it on a free 127.0.0.1 port with its files in a temporary folder, waits until it
answers ``ping``, yields its URL and stops it (SIGTERM, then SIGKILL).

It reports itself as a standalone server (no replica set name), so the URL carries
``directConnection=true`` and no ``replicaSet``. Why this server, and what it does not do
that MongoDB does (isolation, concurrent transactions, write concern, replica sets):
``docs/stores.md``.

``python -m tests.support.mongo_server`` starts one and prints its URL until interrupted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.support.processes import free_port, stop_process

SERVER_MODULE = "nx_27017.nx_27017"  # the entry point of the nx-27017 package
URL_OPTIONS = "directConnection=true"  # the server reports no replica set: talk to it directly
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class MongoServerError(RuntimeError):
    """The test server is missing, exited, or did not answer ``ping`` in time."""


def with_database(url: str, name: str) -> str:
    """``url`` addressing database ``name`` (the URL path), its options kept."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_options(url: str, **options: str) -> str:
    """``url`` with connection string options added (or replaced)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query=urlencode({**query, **options})))


def answers_ping(url: str, timeout_s: float = 1.0) -> bool:
    client: MongoClient[dict[str, Any]] = MongoClient(
        url, serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000)
    )
    try:
        return bool(client.admin.command("ping").get("ok"))
    except PyMongoError:
        return False
    finally:
        client.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def mongo_test_server(data_dir: Path | None = None, *, timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run the test server; yields ``mongodb://127.0.0.1:<port>/?directConnection=true``.

    Its SQLite files, log and pid file go to ``data_dir`` (a temporary folder, removed
    afterwards, when none is given). Raises :class:`MongoServerError` when the server is not
    installed, exits, or does not answer ``ping`` within ``timeout_s``.
    """
    if importlib.util.find_spec("nx_27017") is None:
        raise MongoServerError(
            "the nx-27017 package is missing: it is in pyproject's dev dependency group "
            "(`uv sync`), or set LEMMA_TEST_MONGO_URL to a real MongoDB replica set"
        )
    with contextlib.ExitStack() as cleanup:
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="lemma-mongo-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"mongodb://127.0.0.1:{port}/?{URL_OPTIONS}"
        out_path = data_dir / f"nx-27017-{port}.out"  # its log lines and any traceback
        command = [
            sys.executable, "-m", SERVER_MODULE,
            "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir / "db"),  # one SQLite file per database, made on first use
            "--pid-file", str(data_dir / f"nx-27017-{port}.pid"),  # the defaults are shared /tmp files
            "--log-file", str(data_dir / f"nx-27017-{port}.log"),
        ]  # fmt: skip
        with out_path.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        cleanup.callback(stop_process, proc, STOP_TIMEOUT_S)
        deadline = time.monotonic() + timeout_s
        while not answers_ping(url):
            if proc.poll() is not None:
                raise MongoServerError(f"the test server exited with {proc.returncode}:\n{_tail(out_path)}")
            if time.monotonic() > deadline:
                raise MongoServerError(
                    f"the test server did not answer ping in {timeout_s:.0f} s:\n{_tail(out_path)}"
                )
            time.sleep(0.1)
        yield url


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the server on SIGTERM too
    with mongo_test_server() as server_url, contextlib.suppress(KeyboardInterrupt):
        print(server_url, flush=True)
        signal.pause()
