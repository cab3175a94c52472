"""Lemma's Grafana dashboards, one per concern, each built in its module: the HTTP front
(``http_dashboard``: traffic, errors, latency, replicas), the event flow (``events_dashboard``:
events published and folded, consumer lag, parked partitions, dead letters, fold faults) and the
product loop (``product_dashboard``: match queue, time to match, rating-to-passport latency, the
SCI distribution, calibration), on the frame of ``dashboard_parts``. ``python -m deploy.grafana``
writes them to ``dashboards/*.json``; ``tests/unit/test_dashboards.py`` checks the committed
files are what this code builds and that every query names only metrics and labels the services
export.

Scrape jobs are named ``lemma-<service>``; Prometheus adds ``instance`` to tell replicas apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from deploy.grafana.events_dashboard import events
from deploy.grafana.http_dashboard import http
from deploy.grafana.product_dashboard import product

#: File name (without .json) → the dashboard it holds.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "lemma-http": http,
    "lemma-events": events,
    "lemma-product": product,
}


def render(builder: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON model, panels numbered in order, keys sorted: stable text."""
    model = builder.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def generated() -> dict[str, str]:
    """Each dashboard's file name and JSON text."""
    return {f"{name}.json": render(build()) for name, build in DASHBOARDS.items()}
