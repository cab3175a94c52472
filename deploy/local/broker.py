"""Apache Kafka for the local stack and the tests: a KRaft node (broker and controller).

The jars come from Maven Central by name and version (``deploy/local/kafka/pom.xml``, resolved
by ``mvn dependency:build-classpath`` into Maven's local repository); nothing is downloaded by
URL and nothing is committed. The storage is formatted once (``kafka.tools.StorageTool
format --standalone`` for one node; for a cluster every node with one cluster id and the
static ``controller.quorum.voters``, see ``deploy/local/cluster.py``), so a stopped broker
starts again on the same log.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.events.registry import Topic
    from shared.kafka_connection import KafkaConnection

HERE = Path(__file__).resolve().parent / "kafka"
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the resolved classpath is kept (keyed by the pom's digest); the jars stay in ~/.m2.
CLASSPATH_CACHE = REPO_ROOT / "var" / "cache"
MIN_JAVA = 17
#: The JVM's heap: measured enough for the suite and the 100,000-ticket replay (docs/benchmarks.md).
HEAP = os.environ.get("LEMMA_KAFKA_HEAP", "512m")
INSTALL_HINT = (
    "install a Java runtime (17 or newer) and Maven, e.g. as root: "
    "apt-get update && apt-get install -y --no-install-recommends default-jre-headless maven"
)


class BrokerSetupError(RuntimeError):
    """Java or Maven is missing, or the jars could not be resolved; the message says what to do."""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerSetupError(f"java is not on PATH (Apache Kafka needs Java {MIN_JAVA}+): {INSTALL_HINT}")
    return java


def java_major(java: str) -> int:
    """The major version ``java -version`` reports (17 for "17.0.15", 8 for "1.8.0")."""
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if not found:
        raise BrokerSetupError(f"cannot read the version of {java}: {shown.strip()[:200]}")
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def check_java() -> str:
    """The ``java`` to run Kafka with; raises ``BrokerSetupError`` saying what to install."""
    java = _java()
    if (major := java_major(java)) < MIN_JAVA:
        raise BrokerSetupError(f"{java} is Java {major}; Apache Kafka 4 needs {MIN_JAVA}+: {INSTALL_HINT}")
    return java


def kafka_version() -> str:
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert found, f"no kafka.version in {POM}"
    return found.group(1)


def classpath(cache: Path = CLASSPATH_CACHE) -> str:
    """The broker's classpath; resolves the pinned jars with Maven the first time (a few seconds
    when ~/.m2 has them, longer on a fresh machine) and after the pom changes."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    saved = cache / f"kafka-classpath-{digest}.txt"
    if saved.exists():
        jars = saved.read_text().strip()
        if jars and all(Path(jar).exists() for jar in jars.split(os.pathsep)):
            return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerSetupError(f"mvn is not on PATH (it fetches Apache Kafka's jars): {INSTALL_HINT}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_name(f"{saved.name}.{os.getpid()}.tmp")
    argv = [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        shown = (done.stdout + done.stderr).strip()[-2000:]
        raise BrokerSetupError(f"Maven could not resolve Apache Kafka's jars ({' '.join(argv)}):\n{shown}")
    tmp.replace(saved)
    return saved.read_text().strip()


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid).
    Like Kafka's ``Uuid.randomUuid`` it never starts with "-" (a command line would read it
    as an option)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


@dataclass(frozen=True)
class BrokerConfig:
    """One local node: its client and controller ports on 127.0.0.1 and its folder."""

    home: Path  # server.properties and data/ live here
    port: int
    controller_port: int
    heap: str = HEAP
    log_level: str = "INFO"
    node_id: int = 1
    # a cluster's static quorum ("1@127.0.0.1:9093,2@..."); empty: a standalone node
    voters: str = ""
    # of the internal topics, and the defaults of topics made without settings
    replication: int = 1
    min_isr: int = 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    def properties(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """``server.properties`` of this node; internal topics replicated ``replication`` times
        (once on a single node)."""
        quorum = (
            {"controller.quorum.voters": self.voters}
            if self.voters
            else {"controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}"}
        )
        rf, isr = str(self.replication), str(self.min_isr)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **quorum,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # topics are made by `lemma topics create` with their partitions and retention
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            # a group's first member gets its partitions at once (3 s by default)
            "group.initial.rebalance.delay.ms": "0",
            **(extra or {}),
        }

    def write_properties(self, extra: Mapping[str, str] | None = None) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self.properties(extra).items())
        self.properties_file.write_text("# written by deploy/local/broker.py at every start\n" + text)
        return self.properties_file

    def jvm_argv(self, java: str, jars: str, main: str) -> list[str]:
        return [
            java,
            f"-Xms{self.heap}" if main == "kafka.Kafka" else "-Xms64m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dlemma.kafka.log.level={self.log_level}",
            "-cp",
            jars,
            main,
        ]

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def cluster_id(self) -> str | None:
        """The cluster id this node's storage was formatted with, None when it is not."""
        try:
            text = (self.data_dir / "meta.properties").read_text()
        except OSError:
            return None
        found = re.search(r"^cluster\.id=(\S+)", text, re.MULTILINE)
        return found.group(1) if found else None

    def format_storage(
        self, java: str, jars: str, cluster: str | None = None, extra_args: Sequence[str] = ()
    ) -> str | None:
        """Format the KRaft storage unless it is; returns the cluster id, None if kept.

        A standalone node gets a new cluster id; a node of a cluster (``voters``) is given the
        cluster's id, the same for every node, and its static quorum is in its properties.
        ``extra_args`` go to ``StorageTool format`` (``--add-scram``: SASL/SCRAM users)."""
        if self.is_formatted():
            return None
        cluster = cluster or new_cluster_id()
        argv = [*self.jvm_argv(java, jars, "kafka.tools.StorageTool"), "format"]
        argv += [] if self.voters else ["--standalone"]
        argv += ["--cluster-id", cluster, "--config", str(self.properties_file), *extra_args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerSetupError(
                f"formatting {self.data_dir} failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )
        return cluster

    def server_argv(self, java: str, jars: str) -> list[str]:
        return [*self.jvm_argv(java, jars, "kafka.Kafka"), str(self.properties_file)]


def prepare(
    config: BrokerConfig, extra: Mapping[str, str] | None = None, format_args: Sequence[str] = ()
) -> list[str]:
    """Everything before the start: Java checked, jars resolved, properties written (``extra``
    added), storage formatted once (with ``format_args``). Returns the broker's command line."""
    java = check_java()
    jars = classpath()
    config.write_properties(extra)
    config.format_storage(java, jars, extra_args=format_args)
    return config.server_argv(java, jars)


def create_topics(
    kafka: KafkaConnection,
    *,
    prefix: str = "",
    timeout: float = 30.0,
    alive: Callable[[], bool] | None = None,
    partitions: Mapping[Topic, int] | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create the domain topics (``shared.bus.ensure_topics``) once the broker answers; retries
    while it is still electing itself (or, on a cluster, while too few nodes have joined for
    the replication factor). Returns the names created."""
    from shared.bus import ensure_topics

    deadline = time.monotonic() + timeout
    # the retries are expected: aiokafka's own connection errors are not shown meanwhile
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        while True:
            try:
                made = ensure_topics(
                    kafka,
                    dict(partitions) if partitions else None,
                    prefix=prefix,
                    replication_factor=replication_factor,
                    min_insync_replicas=min_insync_replicas,
                )
                return _run_async(made)
            except Exception as exc:
                if time.monotonic() > deadline or (alive is not None and not alive()):
                    raise BrokerSetupError(
                        f"could not create the topics on {kafka.bootstrap}: {exc!r}"
                    ) from exc
                time.sleep(0.3)
    finally:
        aiokafka_log.setLevel(level)


def _run_async(coro: Coroutine[Any, Any, list[str]]) -> list[str]:
    """Run a coroutine to completion, also when the caller is inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
