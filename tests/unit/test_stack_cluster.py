"""The pure parts of a scaled-out local stack: its shape in stack.json, the Kafka cluster's
node properties, the process plan (names, instances, ports) and the replicas' environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.local import cluster, plan
from deploy.local.config import SERVICES, StackConfig
from deploy.local.launch import service_env


def test_a_default_stack_is_one_broker_and_one_replica_as_before(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path)
    assert (config.brokers, config.replicas) == (1, 1)
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert (config.replication_factor, config.min_insync_replicas) == (1, 1)
    assert [s.name for s in plan.process_plan(config)] == [
        "kafka",
        *SERVICES,
        "gateway",
        "supervisor",
    ]
    assert [n.name for n in cluster.nodes(config)] == ["kafka"]
    assert cluster.nodes(config)[0].config.home == tmp_path / "kafka"  # the historic layout


def test_three_brokers_and_two_replicas_get_default_ports_that_never_clash(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, brokers=3, replicas=2)
    assert config.kafka_nodes == [(1, 9092, 9093), (2, 9094, 9095), (3, 9096, 9097)]
    assert config.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert config.replica_ports("passport") == [8101, 8111]
    assert config.replica_ports("sci") == [8105, 8115]
    assert config.service_url("sci", 2) == "http://127.0.0.1:8115"
    assert config.service_url("sci") == "http://127.0.0.1:8105"
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports)) == 1 + 3 * 2 + len(SERVICES) * 2
    assert (config.replication_factor, config.min_insync_replicas) == (3, 2)


def test_free_ports_of_a_cluster_are_distinct_and_the_shape_round_trips(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path, brokers=3, replicas=2)
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports)) == 17
    config.save()
    assert StackConfig.load(tmp_path) == config
    saved = json.loads(config.config_file.read_text())
    assert (saved["brokers"], saved["replicas"]) == (3, 2)


def test_reshaping_keeps_saved_ports_and_fills_in_the_rest(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path, brokers=3, replicas=2)
    smaller = config.reshaped(replicas=1)
    assert smaller.more_service_ports == {name: [] for name in SERVICES}
    assert smaller.service_ports == config.service_ports
    bigger = config.reshaped(replicas=3)
    assert bigger.replica_ports("passport")[:2] == config.replica_ports("passport")
    assert bigger.replica_ports("passport")[2] == config.service_ports["passport"] + 20
    assert config.reshaped() == config


def test_resolve_changes_the_saved_shape_only_when_asked(tmp_path: Path) -> None:
    StackConfig(state_dir=tmp_path, brokers=3, replicas=2).save()
    assert StackConfig.resolve(tmp_path).brokers == 3
    assert StackConfig.resolve(tmp_path, replicas=1).replicas == 1
    assert StackConfig.resolve(tmp_path, replicas=1).brokers == 3


@pytest.mark.parametrize(("brokers", "replicas"), [(0, 1), (6, 1), (1, 0), (1, 10)])
def test_a_shape_out_of_range_is_refused(tmp_path: Path, brokers: int, replicas: int) -> None:
    with pytest.raises(ValueError, match="must be 1 to"):
        StackConfig(state_dir=tmp_path, brokers=brokers, replicas=replicas)


def test_an_old_stack_json_without_a_shape_is_one_broker_and_one_replica(tmp_path: Path) -> None:
    data = StackConfig(state_dir=tmp_path).to_json()
    for key in ("brokers", "replicas", "more_kafka_ports", "more_service_ports"):
        data.pop(key)
    assert StackConfig.from_json(data) == StackConfig(state_dir=tmp_path)


def test_cluster_nodes_share_a_static_quorum_and_replicate_internal_topics_three_times(
    tmp_path: Path,
) -> None:
    config = StackConfig.with_free_ports(tmp_path, brokers=3)
    nodes = cluster.nodes(config)
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    voters = ",".join(f"{node}@127.0.0.1:{controller}" for node, _, controller in config.kafka_nodes)
    for node, (node_id, port, controller) in zip(nodes, config.kafka_nodes, strict=True):
        props = node.config.properties()
        assert node.config.home == tmp_path / "kafka" / f"node-{node_id}"
        assert props["node.id"] == str(node_id)
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        assert props["log.dirs"] == str(node.config.data_dir)
        for internal in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
            assert props[f"{internal}.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["min.insync.replicas"] == "2"
        assert props["default.replication.factor"] == "3"
        assert node.config.heap == cluster.CLUSTER_HEAP
    # a single node keeps its standalone quorum
    single = cluster.nodes(StackConfig(state_dir=tmp_path))[0].config.properties()
    assert single["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in single


def test_a_log_formatted_for_one_shape_refuses_another(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, brokers=3)
    cluster.check_shape(config)  # nothing formatted yet: any shape
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("cluster.id=x\n")
    assert cluster.formatted_brokers(tmp_path / "kafka") == 1
    with pytest.raises(cluster.ClusterShapeError, match="1-broker Kafka, not 3"):
        cluster.check_shape(config)
    (tmp_path / "kafka" / cluster.MARKER).write_text(json.dumps({"brokers": 3, "cluster_id": "x"}))
    cluster.check_shape(config)
    with pytest.raises(cluster.ClusterShapeError, match="BROKERS=3"):
        cluster.check_shape(config.reshaped(brokers=1))


def test_a_node_reads_the_cluster_id_it_was_formatted_with(tmp_path: Path) -> None:
    node = cluster.nodes(StackConfig(state_dir=tmp_path, brokers=3))[1].config
    assert node.cluster_id() is None
    node.data_dir.mkdir(parents=True)
    (node.data_dir / "meta.properties").write_text("#\nnode.id=2\ncluster.id=AbC_d-12\nversion=1\n")
    assert node.cluster_id() == "AbC_d-12"


def test_every_replica_is_named_and_numbered_with_its_own_port(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path, brokers=3, replicas=2)
    specs = plan.process_plan(config)
    assert [s.role for s in specs].count("broker") == 3
    replicas = [s for s in specs if s.role == "service"]
    assert [s.name for s in replicas[:2]] == ["passport-1", "passport-2"]
    assert [(s.service, s.instance, s.port) for s in replicas[:2]] == [
        ("passport", 1, config.service_ports["passport"]),
        ("passport", 2, config.more_service_ports["passport"][0]),
    ]
    assert len({s.port for s in replicas}) == len(replicas) == 2 * len(SERVICES)
    assert specs[-1].name == "supervisor" and specs[-2].name == "gateway"
    assert plan.role_of("kafka-2") == "broker" and plan.role_of("kafka") == "broker"
    assert plan.role_of("sci-3") == "service" and plan.role_of("supervisor") == "supervisor"


def test_a_replica_is_given_its_instance_port_every_broker_and_the_shared_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEMMA_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("LEMMA_INSTANCE", "7")  # the caller's own never leaks into a replica
    config = StackConfig.with_free_ports(tmp_path, brokers=3, replicas=2)
    second = next(s for s in plan.services(config) if s.name == "sessions-2")
    env = service_env(config, second)
    assert env["LEMMA_INSTANCE"] == "2"
    assert env["LEMMA_PORT"] == str(config.replica_ports("sessions")[1])
    assert env["LEMMA_KAFKA_BOOTSTRAP"] == config.kafka_bootstrap
    assert env["LEMMA_KAFKA_BOOTSTRAP"].count(",") == 2
    assert (env["LEMMA_KAFKA_REPLICATION_FACTOR"], env["LEMMA_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert env["LEMMA_STATE_DIR"] == str(tmp_path)  # one store per service, whatever the replica
    first = next(s for s in plan.services(config) if s.name == "sessions-1")
    assert service_env(config, first)["LEMMA_STATE_DIR"] == env["LEMMA_STATE_DIR"]
