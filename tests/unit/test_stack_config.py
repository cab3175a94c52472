"""The pure parts of the local stack: its configuration, the Kafka node's and the gateway's."""

from __future__ import annotations

import json
import re
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.local import broker
from deploy.local.config import SERVICES, StackConfig, port_is_free
from deploy.local.credentials import jwt_secret
from deploy.local.gateway import ROUTES, render_caddyfile
from deploy.local.stack import broker_config
from shared.api_docs import ASSETS


def caddyfile(config: StackConfig) -> str:
    return render_caddyfile(config.gateway_port, config.service_ports, config.state_dir / "caddy")


def test_default_ports_are_the_documented_ones_and_never_clash() -> None:
    config = StackConfig()
    assert config.gateway_port == 8000
    assert config.service_ports == {
        "passport": 8101,
        "matching": 8102,
        "sessions": 8103,
        "evidence": 8104,
        "sci": 8105,
    }
    assert (config.kafka_port, config.kafka_controller_port) == (9092, 9093)
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports))
    assert config.state_dir == Path(__file__).resolve().parents[2] / "var"


def test_config_round_trips_through_stack_json(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path / "state")
    config.save()
    assert StackConfig.load(config.state_dir) == config
    assert json.loads(config.config_file.read_text())["gateway_port"] == config.gateway_port


def test_a_moved_state_folder_is_found_where_it_is_now(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path / "old", gateway_port=9000)
    config.save()
    (tmp_path / "old").rename(tmp_path / "new")
    loaded = StackConfig.load(tmp_path / "new")
    assert loaded == replace(config, state_dir=tmp_path / "new")


def test_services_come_from_the_one_list_and_a_saved_file_only_keeps_their_ports(tmp_path: Path) -> None:
    data = StackConfig(state_dir=tmp_path).to_json()
    data["service_ports"] = {"passport": 9101, "retired": 9999}
    loaded = StackConfig.from_json(data)
    assert list(loaded.service_ports) == list(SERVICES)
    assert loaded.service_ports["passport"] == 9101
    assert loaded.service_ports["sci"] == SERVICES["sci"]


def test_nothing_saved_means_nothing_to_load(tmp_path: Path) -> None:
    assert StackConfig.load(tmp_path) is None


def test_resolve_reads_the_folder_and_gateway_port_from_options_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEMMA_STATE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("LEMMA_GATEWAY_PORT", "8900")
    assert StackConfig.resolve().state_dir == tmp_path / "env"
    assert StackConfig.resolve().gateway_port == 8900
    assert StackConfig.resolve(tmp_path / "opt", 8901).state_dir == tmp_path / "opt"
    assert StackConfig.resolve(tmp_path / "opt", 8901).gateway_port == 8901
    monkeypatch.delenv("LEMMA_GATEWAY_PORT")
    StackConfig(state_dir=tmp_path / "saved", kafka_port=9999).save()
    assert StackConfig.resolve(tmp_path / "saved").kafka_port == 9999  # stack.json wins over defaults


def test_free_ports_are_distinct_and_free(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports)) == len(SERVICES) + 3  # the gateway and Kafka's two
    assert all(port_is_free(p) for p in ports)


def test_an_old_stack_json_with_the_retired_broker_ports_still_loads(tmp_path: Path) -> None:
    data = StackConfig(state_dir=tmp_path).to_json()
    data.update({"s3_port": 8333, "master_port": 8340})
    assert StackConfig.from_json(data) == StackConfig(state_dir=tmp_path)


def test_the_kafka_node_listens_on_loopback_only_with_its_log_under_the_state_folder(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    node = broker_config(config)
    props = node.properties()
    assert node.bootstrap == config.kafka_bootstrap
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{config.kafka_port},CONTROLLER://127.0.0.1:{config.kafka_controller_port}"
    )
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{config.kafka_port}"
    assert props["controller.quorum.bootstrap.servers"] == f"127.0.0.1:{config.kafka_controller_port}"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for internal in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert props[f"{internal}.replication.factor"] == "1"
    written = node.write_properties({"num.io.threads": "2"}).read_text()
    assert "num.io.threads=2\n" in written and f"log.dirs={tmp_path / 'kafka' / 'data'}\n" in written


def test_the_broker_command_runs_kafka_with_the_pinned_jars_and_the_log_config(tmp_path: Path) -> None:
    node = broker.BrokerConfig(tmp_path, 19092, 19093, heap="300m")
    argv = node.server_argv("/usr/bin/java", "a.jar:b.jar")
    assert argv[0] == "/usr/bin/java" and argv[-2:] == ["kafka.Kafka", str(tmp_path / "server.properties")]
    assert "-Xmx300m" in argv and argv[argv.index("-cp") + 1] == "a.jar:b.jar"
    assert f"-Dlog4j2.configurationFile={broker.LOG4J_CONFIG}" in argv
    assert broker.kafka_version().startswith("4.")


def test_a_cluster_id_is_kafkas_uuid_form_and_never_reads_as_an_option() -> None:
    ids = {broker.new_cluster_id() for _ in range(2000)}  # about 1 in 64 draws starts with "-"
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_java_versions_are_read_old_and_new_style(tmp_path: Path) -> None:
    for shown, major in (('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_402"', 8)):
        fake = tmp_path / f"java{major}"
        fake.write_text(f"#!/bin/sh\necho '{shown}' >&2\n")
        fake.chmod(0o755)
        assert broker.java_major(str(fake)) == major


def test_every_service_has_gateway_routes() -> None:
    assert set(ROUTES) == set(SERVICES)


def test_caddyfile_routes_each_first_path_segment_to_its_owner(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    text = caddyfile(config)
    assert f"http://:{config.gateway_port} {{" in text
    assert "bind 127.0.0.1" in text
    assert "admin off" in text
    for name, port in config.service_ports.items():
        matcher = re.search(rf"@{name} path (.+)\n\thandle @{name} {{\n\t\treverse_proxy (\S+)", text)
        assert matcher is not None, name
        assert matcher.group(1).split() == list(ROUTES[name])
        assert matcher.group(2) == f"127.0.0.1:{port}"
        docs = re.search(
            rf"@{name}_docs path (.+)\n\thandle @{name}_docs {{\n\t\turi strip_prefix /{name}\n", text
        )
        assert docs is not None and docs.group(1).split() == [f"/{name}/openapi.json", f"/{name}{ASSETS}/*"]
        assert f"handle /{name}/* " not in text  # no catch-all: metrics, readiness and /ops stay inside
        assert f'url: "/{name}/openapi.json"' in text
    assert "/v1/skills*" in ROUTES["passport"]
    assert ROUTES["sci"] == ("/v1/scores*", "/v1/raters*")


def test_caddyfile_pages_cannot_be_read_as_environment_placeholders(tmp_path: Path) -> None:
    text = caddyfile(StackConfig.with_free_ports(tmp_path))
    assert "{$" not in text
    assert text.count("<<HTML") == text.count("\t\tHTML 200") == len(SERVICES) + 1


def test_a_service_without_routes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no gateway routes"):
        render_caddyfile(8000, {"unknown": 8199}, tmp_path)


def test_local_secrets_are_made_once_private_and_random(tmp_path: Path) -> None:
    secret = jwt_secret(tmp_path)
    assert jwt_secret(tmp_path) == secret
    assert len(secret) >= 32
    assert jwt_secret(tmp_path / "other") != secret
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600
