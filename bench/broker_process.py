"""The benches' Apache Kafka node, with what its process costs: start time and resident memory.

``tests.support.processes.kafka_broker`` yields only the bootstrap address. The broker is the
``java ... kafka.Kafka <home>/server.properties`` process it spawned; it is found in ``/proc``
by that command line (the properties file is the bench's own, so no other broker matches) and
checked against the port the properties give its listener. Its start time is read from
``/proc/<pid>/stat`` (when the process was spawned, in clock ticks since boot), so the time
before the spawn (Java checked, classpath, storage formatted) is counted apart.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local import broker
from shared.kafka_connection import KafkaConnection
from tests.support.processes import kafka_broker

MAIN_CLASS = "kafka.Kafka"


def find_broker_pid(home: Path, port: int, proc: Path = Path("/proc")) -> int:
    """The pid of the ``kafka.Kafka`` process running ``<home>/server.properties``, whose
    PLAINTEXT listener is on ``port``. Raises ``LookupError`` unless exactly one matches."""
    properties = str(home / "server.properties")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if MAIN_CLASS in args and args[-1] == properties:
            found.append(int(entry.name))
    if len(found) != 1:
        raise LookupError(f"{len(found)} {MAIN_CLASS} processes run {properties}: {found}")
    listeners = Path(properties).read_text()
    if f"PLAINTEXT://127.0.0.1:{port}" not in listeners:
        raise LookupError(f"{properties} does not listen on port {port}")
    return found[0]


def status_kib(pid: int, field: str, proc: Path = Path("/proc")) -> int:
    """A ``kB`` figure of ``/proc/<pid>/status``: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            number, unit = value.split()
            assert unit == "kB", line
            return int(number)
    raise LookupError(f"no {field} in /proc/{pid}/status")


def age_s(pid: int, proc: Path = Path("/proc")) -> float:
    """Seconds since the process was spawned (``/proc/<pid>/stat`` field 22, in clock ticks
    since boot, against ``CLOCK_BOOTTIME``)."""
    stat = (proc / str(pid) / "stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    started = int(fields[22 - 3]) / os.sysconf("SC_CLK_TCK")
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started


@dataclass
class BrokerProcess:
    bootstrap: str
    pid: int
    prepare_s: float  # before the spawn: Java checked, jars resolved, storage formatted
    listening_s: float  # spawn to its client port open
    ready_s: float  # spawn to the domain topics created (it answers and serves them)

    def rss_mib(self) -> float:
        return status_kib(self.pid, "VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        return status_kib(self.pid, "VmHWM") / 1024

    def figures(self) -> dict[str, float]:
        return {
            "prepare_s": round(self.prepare_s, 2),
            "spawn_to_listening_s": round(self.listening_s, 2),
            "spawn_to_ready_s": round(self.ready_s, 2),
            "rss_mib": round(self.rss_mib(), 1),
            "peak_rss_mib": round(self.peak_rss_mib(), 1),
        }


@contextlib.contextmanager
def started_broker(home: Path) -> Iterator[BrokerProcess]:
    """``kafka_broker(home)`` (the node the tests start), timed: yields once the topics exist."""
    entered = time.monotonic()
    with kafka_broker(home, topics=False) as bootstrap:
        listening = time.monotonic()
        port = int(bootstrap.rsplit(":", 1)[1])
        pid = find_broker_pid(home, port)
        spawned = time.monotonic() - age_s(pid)
        broker.create_topics(KafkaConnection(bootstrap), timeout=60)
        ready = time.monotonic()
        yield BrokerProcess(bootstrap, pid, spawned - entered, listening - spawned, ready - spawned)
