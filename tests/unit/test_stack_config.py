"""The pure parts of the local stack: its configuration and the gateway's Caddyfile."""

from __future__ import annotations

import json
import re
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.local.config import GRPC_OFFSET, SERVICES, StackConfig, port_is_free
from deploy.local.credentials import S3Credentials, jwt_secret, s3_credentials
from deploy.local.gateway import ROUTES, render_caddyfile
from deploy.local.seaweedfs import s3_identity_config, server_argv


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
    assert (config.kafka_port, config.s3_port) == (9092, 8333)
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


def test_free_ports_are_distinct_and_free_including_the_grpc_ports(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    ports = list(config.ports().values())
    assert len(ports) == len(set(ports))
    assert all(port_is_free(p) for p in ports)
    for http in (config.s3_port, config.master_port, config.volume_port, config.filer_port):
        assert http + GRPC_OFFSET in ports


def test_seaweedfs_command_binds_locally_uses_the_config_and_disables_extras(tmp_path: Path) -> None:
    config = StackConfig.with_free_ports(tmp_path)
    argv = server_argv("weed", config)
    assert "-ip.bind=127.0.0.1" in argv
    assert f"-s3.port={config.s3_port}" in argv
    assert f"-master.port.grpc={config.master_port + GRPC_OFFSET}" in argv
    assert f"-s3.config={tmp_path / 's3.json'}" in argv
    for flag in ("-master.telemetry=false", "-s3.port.iceberg=0", "-volume.preStopSeconds=1"):
        assert flag in argv


def test_s3_identity_carries_the_given_keys() -> None:
    identity = json.loads(s3_identity_config(S3Credentials("AK", "SK")))["identities"][0]
    assert identity["credentials"] == [{"accessKey": "AK", "secretKey": "SK"}]
    assert "Admin" in identity["actions"]


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
        assert (
            f"handle /{name}/* {{\n\t\turi strip_prefix /{name}\n\t\treverse_proxy 127.0.0.1:{port}" in text
        )
        assert f'url: "/{name}/openapi.json"' in text
    assert "/v1/skills*" in ROUTES["passport"]
    assert ROUTES["sci"] == ("/v1/scores*",)


def test_caddyfile_pages_cannot_be_read_as_environment_placeholders(tmp_path: Path) -> None:
    text = caddyfile(StackConfig.with_free_ports(tmp_path))
    assert "{$" not in text
    assert text.count("<<HTML") == text.count("\t\tHTML 200") == len(SERVICES) + 1


def test_a_service_without_routes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no gateway routes"):
        render_caddyfile(8000, {"unknown": 8199}, tmp_path)


def test_local_secrets_are_made_once_private_and_random(tmp_path: Path) -> None:
    secret = jwt_secret(tmp_path)
    creds = s3_credentials(tmp_path)
    assert jwt_secret(tmp_path) == secret
    assert s3_credentials(tmp_path) == creds
    assert len(secret) >= 32
    assert creds.access_key != creds.secret_key
    assert jwt_secret(tmp_path / "other") != secret
    for name in ("jwt-secret", "s3-credentials.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
