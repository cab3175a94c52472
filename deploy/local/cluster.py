"""The stack's Kafka: one KRaft node, or a cluster of combined broker and controller nodes.

One node keeps the historic layout: ``<state>/kafka/`` with ``server.properties`` and
``data/``, formatted ``--standalone``. A cluster of N nodes has ``<state>/kafka/node-<n>/``
each (its own ports, data dir and log ``<state>/log/kafka-<n>.log``), every node formatted
with one cluster id and the static quorum ``controller.quorum.voters`` (all nodes vote);
``<state>/kafka/cluster.json`` records the shape once every node is formatted. A log is
never reshaped: a folder formatted for one shape refuses to start as another.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.local import broker
from deploy.local.config import StackConfig

#: A cluster node's heap: three of them share the machine with ten service processes.
CLUSTER_HEAP = os.environ.get("LEMMA_KAFKA_HEAP", "384m")
MARKER = "cluster.json"


class ClusterShapeError(broker.BrokerSetupError):
    """The state folder's Kafka log was formatted for another number of nodes."""


@dataclass(frozen=True)
class Node:
    """One Kafka node of the stack: its process name and its configuration."""

    name: str  # "kafka" on one node, "kafka-<n>" in a cluster
    node_id: int
    config: broker.BrokerConfig


def broker_name(node_id: int, brokers: int) -> str:
    """The process name of node ``node_id``: ``kafka`` alone, ``kafka-<n>`` in a cluster."""
    return "kafka" if brokers == 1 else f"kafka-{node_id}"


def voters(config: StackConfig) -> str:
    """The static quorum: every node votes (``1@127.0.0.1:9093,2@127.0.0.1:9095,...``)."""
    return ",".join(f"{node}@127.0.0.1:{controller}" for node, _, controller in config.kafka_nodes)


def nodes(config: StackConfig) -> list[Node]:
    """The stack's Kafka nodes, node 1 first."""
    if config.brokers == 1:
        single = broker.BrokerConfig(config.kafka_home, config.kafka_port, config.kafka_controller_port)
        return [Node("kafka", 1, single)]
    quorum = voters(config)
    return [
        Node(
            broker_name(node, config.brokers),
            node,
            broker.BrokerConfig(
                config.kafka_home / f"node-{node}",
                port,
                controller,
                heap=CLUSTER_HEAP,
                node_id=node,
                voters=quorum,
                replication=config.replication_factor,
                min_isr=config.min_insync_replicas,
            ),
        )
        for node, port, controller in config.kafka_nodes
    ]


def formatted_brokers(kafka_home: Path) -> int | None:
    """How many nodes the log in ``kafka_home`` was formatted for; None when it never was."""
    try:
        return int(json.loads((kafka_home / MARKER).read_text())["brokers"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return 1 if (kafka_home / "data" / "meta.properties").exists() else None


def check_shape(config: StackConfig) -> None:
    """Refuse to start a log as a cluster of another size (its quorum and replicas are fixed)."""
    found = formatted_brokers(config.kafka_home)
    if found is not None and found != config.brokers:
        raise ClusterShapeError(
            f"{config.kafka_home} holds the log of a {found}-broker Kafka, not {config.brokers}: "
            f"start it with --brokers {found} (make run BROKERS={found}), or stop the stack and "
            f"delete {config.state_dir} (make clean) for a new one, or use another state folder "
            "(--state-dir or LEMMA_STATE_DIR)"
        )


def prepare(config: StackConfig) -> dict[str, list[str]]:
    """Java checked, jars resolved, every node's properties written and its storage formatted
    once. Returns each node's command line by process name."""
    check_shape(config)
    java = broker.check_java()
    jars = broker.classpath()
    stack_nodes = nodes(config)
    if config.brokers == 1:
        single = stack_nodes[0].config
        single.write_properties()
        single.format_storage(java, jars)
        return {stack_nodes[0].name: single.server_argv(java, jars)}
    for node in stack_nodes:
        node.config.write_properties()
    # one cluster id for all; a node formatted by an interrupted start keeps its id
    cluster = next(filter(None, (n.config.cluster_id() for n in stack_nodes)), None)
    cluster = cluster or broker.new_cluster_id()
    with concurrent.futures.ThreadPoolExecutor(len(stack_nodes)) as pool:
        for done in [pool.submit(n.config.format_storage, java, jars, cluster) for n in stack_nodes]:
            done.result()
    marker = {"brokers": config.brokers, "cluster_id": cluster}
    (config.kafka_home / MARKER).write_text(json.dumps(marker) + "\n")
    return {n.name: n.config.server_argv(java, jars) for n in stack_nodes}


def restart_argv(node: Node) -> list[str]:
    """A node's command line to start it again (its properties and storage are in place)."""
    return node.config.server_argv(broker.check_java(), broker.classpath())


def create_topics(config: StackConfig, *, timeout: float, alive: Callable[[], bool]) -> list[str]:
    """The domain topics as ``lemma topics create`` makes them with the stack's settings:
    partitions from ``LEMMA_KAFKA_PARTITIONS``, the prefix from ``LEMMA_KAFKA_PREFIX``, and
    the cluster's replication factor and min ISR (3 and 2 on three nodes)."""
    from shared.bus import partitions_for
    from shared.kafka_connection import KafkaConnection
    from shared.settings import Settings

    settings = Settings()
    return broker.create_topics(
        KafkaConnection(config.kafka_bootstrap),  # the stack's own broker: plaintext
        prefix=settings.kafka_prefix,
        timeout=timeout,
        alive=alive,
        partitions=partitions_for(settings),
        replication_factor=config.replication_factor,
        min_insync_replicas=config.min_insync_replicas,
    )
