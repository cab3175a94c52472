"""The Grafana dashboards we ship (``deploy/grafana/dashboards/*.json``): each is exactly what
``deploy/grafana/dashboards.py`` builds (nobody edits the JSON by hand: ``python -m deploy.grafana``
writes it), every query names only series the services export with labels those series carry,
Prometheus's own parser (promtool) accepts every query, and every panel says what it shows."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.grafana.__main__ import main as write_dashboards
from deploy.grafana.dashboards import generated
from deploy.grafana.queries import committed_dashboards, dashboard_metric_names, dashboard_queries
from tests.support.exported_metrics import query_problems

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy" / "grafana" / "dashboards"
NAMES = sorted(generated())


def committed(name: str) -> dict[str, Any]:
    return dict(json.loads((OUT / name).read_text()))


def problems(doc: dict[str, Any]) -> list[str]:
    """Each query of the dashboard that names a series no service exports or a label it lacks."""
    return [
        f"{query.where}: {problem}"
        for query in dashboard_queries(doc)
        for problem in query_problems(query.expr, query.label)
    ]


def test_the_committed_json_is_what_the_code_builds() -> None:
    assert sorted(p.name for p in OUT.glob("*.json")) == NAMES, "run `python -m deploy.grafana`"
    for name, text in generated().items():
        assert (OUT / name).read_text() == text, (
            f"{name} differs from the code: run `python -m deploy.grafana`"
        )
    assert write_dashboards(["--check"]) == 0


def test_the_check_mode_names_a_hand_edited_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import deploy.grafana.__main__ as cli

    for name in NAMES:
        (tmp_path / name).write_text((OUT / name).read_text())
    edited = NAMES[0]
    (tmp_path / edited).write_text((tmp_path / edited).read_text().replace('"30s"', '"5s"'))
    monkeypatch.setattr(cli, "OUT", tmp_path)
    assert cli.main(["--check"]) == 1
    assert edited in capsys.readouterr().err
    assert cli.main([]) == 0  # writing puts the built text back
    assert (tmp_path / edited).read_text() == (OUT / edited).read_text()


@pytest.mark.parametrize("name", NAMES)
def test_every_query_names_only_exported_series_and_their_labels(name: str) -> None:
    assert problems(committed(name)) == []


def _with_query(doc: dict[str, Any], expr: str) -> dict[str, Any]:
    wrong = copy.deepcopy(doc)
    panel = next(p for p in wrong["panels"] if p.get("targets"))
    panel["targets"][0]["expr"] = expr
    return wrong


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("sum(rate(lemma_http_requests_total[5m]))", "lemma_http_requests_total is exported by no service"),
        ("sum(rate(lemma_events_published[5m]))", "lemma_events_published is exported by no service"),
        ("lemma_consumer_lag_bucket", "lemma_consumer_lag_bucket is exported by no service"),
        ("sum by (route) (lemma_consumer_lag)", "'route'"),
        ('lemma_partitions_parked{topic="lemma.sci.v1"}', "'topic'"),
        ("histogram_quantile(0.9, sum by (service) (rate(lemma_fold_batch_seconds_bucket[5m])))", "'le'"),
        ("sum by (service) (lemma_matching_queue_depth)", "'service'"),
    ],
)
def test_a_deliberately_wrong_query_fails_the_check(expr: str, complaint: str) -> None:
    doc = committed("lemma-events.json")
    found = problems(_with_query(doc, expr))
    assert found and all(complaint in problem for problem in found), found
    assert problems(doc) == []


def test_a_wrong_variable_query_fails_the_check() -> None:
    doc = copy.deepcopy(committed("lemma-events.json"))
    variable = next(v for v in doc["templating"]["list"] if v["name"] == "service")
    variable["query"] = "label_values(lemma_matching_queue_depth, service)"
    assert problems(doc) == [
        "variable 'service': lemma_matching_queue_depth has no label 'service' to list the values of"
    ]
    variable["query"] = {"query": "label_values(lemma_no_such_metric, service)", "refId": "x"}
    assert problems(doc) == ["variable 'service': lemma_no_such_metric is exported by no service"]


def test_the_metric_names_a_dashboard_reads() -> None:
    """What a check against a running stack's ``/metrics`` reads: every series named, from panels
    (rows' nested panels too) and variables."""
    doc = {
        "panels": [
            {
                "type": "row",
                "panels": [{"title": "in a row", "targets": [{"expr": "sum(rate(a_total[5m]))"}]}],
            },
            {"title": "t", "targets": [{"expr": 'b{x="c_total"} / d', "refId": "A"}, {"refId": "B"}]},
        ],
        "templating": {"list": [{"type": "query", "name": "v", "query": "label_values(e{f='g'}, f)"}]},
    }
    assert dashboard_metric_names(doc) == {"a_total", "b", "d", "e"}
    dashboards = committed_dashboards()
    assert sorted(dashboards) == NAMES
    http = dashboard_metric_names(dashboards["lemma-http.json"])
    assert {"lemma_http_request_duration_seconds_bucket", "up", "process_cpu_seconds_total"} <= http


def _as_promtool_expr(expr: str) -> str:
    """Grafana's interval variables stand where a duration does; the others stand inside strings."""
    return re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs it (Debian's package prometheus)"
    queries = [query for name in NAMES for query in dashboard_queries(committed(name))]
    rules = [
        {"record": f"dashboard:query_{i}", "expr": _as_promtool_expr(q.expr)} for i, q in enumerate(queries)
    ]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )
    out = subprocess.run(
        [promtool, "check", "rules", "queries.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_says_what_it_shows(name: str) -> None:
    doc = committed(name)
    assert doc["templating"]["list"][0]["name"] == "datasource"
    assert doc["uid"] == name.removesuffix(".json")
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), panel
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
    grid = [panel["gridPos"] for panel in doc["panels"]]
    assert all(pos["x"] + pos["w"] <= 24 for pos in grid), "a panel runs past the 24 columns"
    assert len({panel["id"] for panel in doc["panels"]}) == len(doc["panels"]), "panel ids repeat"


def test_the_dashboards_show_what_operators_watch() -> None:
    """The series the deploy work asked for are each on some dashboard."""
    shown = set().union(*(dashboard_metric_names(committed(name)) for name in NAMES))
    assert {
        "lemma_http_request_duration_seconds_bucket",
        "lemma_events_published_total",
        "lemma_events_consumed_total",
        "lemma_consumer_lag",
        "lemma_partitions_parked",
        "lemma_dead_letters_total",
        "lemma_fold_faults_total",
        "lemma_matching_queue_depth",
        "lemma_matching_time_to_match_seconds_bucket",
        "lemma_rating_to_passport_seconds_bucket",
        "lemma_sci_learners",
    } <= shown
