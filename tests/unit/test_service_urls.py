"""Where the operator commands find the replicas: LEMMA_OPS_URLS in a deployment (a dns+ URL
for every address of a headless Service), else the local stack's ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.service_urls import ENV, expand, parse, service_urls
from deploy.local.config import StackConfig


def pods(host: str, port: int) -> list[str]:
    assert (host, port) == ("sci-pods", 8080)
    return ["10.0.0.7", "10.0.0.9", "fd00::3"]


def test_listed_urls_and_every_address_of_a_dns_name() -> None:
    urls = parse(
        "passport=http://passport-1:8080/,http://passport-2:8080; sci=dns+http://sci-pods:8080", pods
    )
    assert urls == {
        "passport": ["http://passport-1:8080", "http://passport-2:8080"],
        "sci": ["http://10.0.0.7:8080", "http://10.0.0.9:8080", "http://[fd00::3]:8080"],
    }


def test_a_dns_url_resolves_for_real() -> None:
    assert "http://127.0.0.1:8080" in expand("dns+http://localhost:8080")


@pytest.mark.parametrize("bad", ["passport", "=http://x:1", "sci=", "sci=dns+http://:8080"])
def test_an_entry_that_is_not_service_equals_urls_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad, pods)


def test_the_environment_wins_over_the_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    StackConfig(state_dir=tmp_path, replicas=2).save()
    monkeypatch.delenv(ENV, raising=False)
    local = service_urls(tmp_path)
    assert local["sci"] == ["http://127.0.0.1:8105", "http://127.0.0.1:8115"]
    monkeypatch.setenv(ENV, "sci=http://sci:8080")
    assert service_urls(tmp_path) == {"sci": ["http://sci:8080"]}


def test_the_cluster_cli_names_every_pod_of_every_service() -> None:
    from deploy.k8s.operator_cli import ops_urls
    from deploy.k8s.service_specs import SERVICES

    seen: list[str] = []

    def headless(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["10.1.0.1", "10.1.0.2"]

    urls = parse(ops_urls(), headless)
    assert set(urls) == {s.name for s in SERVICES}
    assert seen == [f"lemma-{s.name}-pods" for s in SERVICES]
    assert all(len(replicas) == 2 for replicas in urls.values())


def test_the_commands_refuse_a_deployment_without_a_token_or_with_bad_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.delenv("LEMMA_OPS_TOKEN", raising=False)
    monkeypatch.setenv(ENV, "sci=http://sci:8105")
    answer = CliRunner().invoke(app, ["projections", "list"])
    assert answer.exit_code == 2 and "LEMMA_OPS_TOKEN" in answer.output, answer.output
    monkeypatch.setenv("LEMMA_OPS_TOKEN", "a-token")
    monkeypatch.setenv(ENV, "sci")
    answer = CliRunner().invoke(app, ["projections", "resume", "sci"])
    assert answer.exit_code == 2 and "not service=url" in answer.output, answer.output
