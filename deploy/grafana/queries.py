"""The PromQL a Grafana dashboard's JSON runs: each panel target's ``expr`` (rows' nested panels too)
and each query variable's query (``label_values(metric, label)``, ``query_result(expr)``), and the
metric names they select. The dashboard check reads these against what the services register; a
check against a running stack can read them against its ``/metrics``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import promql

#: Where ``python -m deploy.grafana`` writes the dashboards (and Grafana's provisioning reads them).
DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>[\w.]+)\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)


@dataclass(frozen=True)
class DashboardQuery:
    """One query: where it is (a panel's title and ref id, or a variable's name) and its PromQL. A
    ``label_values`` variable reads ``label`` of ``expr``'s series (``expr`` is the selector)."""

    where: str
    expr: str
    label: str | None = None


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(doc: Mapping[str, Any]) -> list[DashboardQuery]:
    """Every PromQL query of a dashboard's JSON model (as ``json.load`` returns it)."""
    found: list[DashboardQuery] = []
    for panel in _panels(doc.get("panels") or []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                where = f"panel {panel.get('title', '?')!r} query {target.get('refId', '?')}"
                found.append(DashboardQuery(where, str(target["expr"])))
    for variable in (doc.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = str(query.get("query", "")) if isinstance(query, Mapping) else str(query or "")
        where = f"variable {variable.get('name', '?')!r}"
        if match := _LABEL_VALUES.match(text):
            found.append(DashboardQuery(where, match["selector"], match["label"]))
        elif match := _QUERY_RESULT.match(text):
            found.append(DashboardQuery(where, match["expr"]))
        elif text.strip():
            raise promql.PromQLError(f"{where}: cannot read the variable query {text!r}")
    return found


def dashboard_metric_names(doc: Mapping[str, Any]) -> set[str]:
    """The series names (``x_bucket``, ``x_total``, ``up``: as written) a dashboard's queries select."""
    return {name for query in dashboard_queries(doc) for name in promql.metric_names(query.expr)}


def committed_dashboards(folder: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """Each committed dashboard's file name and JSON model."""
    return {path.name: dict(json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))}
