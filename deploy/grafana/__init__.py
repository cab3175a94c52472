"""Lemma's Grafana dashboards as code (grafana-foundation-sdk), the JSON they render to
(``dashboards/``) and Grafana's provisioning files (``provisioning/``)."""
