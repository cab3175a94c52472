"""The HTTP front: requests, server errors and latency by service and route; replicas up and
ready, event-loop lag, memory, CPU and refused requests."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from deploy.grafana.dashboard_parts import RATE, lemma_dashboard, quantiles, rate
from deploy.grafana.panels import PROBE_ROUTES, Query, graph, label_variable, single_stat

HTTP_SECONDS = "lemma_http_request_duration_seconds"


def http() -> dashboard.Dashboard:
    svc = 'service=~"$service"'
    requests = f"{HTTP_SECONDS}_count{{{svc}, {PROBE_ROUTES}}}"
    errors = f'{HTTP_SECONDS}_count{{{svc}, {PROBE_ROUTES}, status=~"5.."}}'
    return (
        lemma_dashboard(
            "lemma-http",
            "Lemma · HTTP and replicas",
            "Requests, server errors and latency by service and route; replicas up, event-loop lag, "
            "memory and refused requests.",
        )
        .with_variable(
            label_variable(
                "service", "Service", f"{HTTP_SECONDS}_count", "The services whose requests are shown"
            )
        )
        .with_row(dashboard.Row("Traffic and errors"))
        .with_panel(
            graph(
                "Requests per second by service",
                "Requests answered per second, over every replica of each service (probes and the "
                "metrics scrape left out).",
                "reqps",
                Query(f"sum by (service) (rate({requests}[{RATE}]))", "{{service}}"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Share of answers that are server errors (5xx)",
                "The fraction of each service's answers with a 5xx status. Over 2% for 5 minutes "
                "fires the LemmaHttp5xxRate alert.",
                "percentunit",
                Query(
                    f"sum by (service) (rate({errors}[{RATE}]))"
                    f" / sum by (service) (rate({requests}[{RATE}]))",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Server errors (5xx) per second by route",
                "Which routes answer 5xx, and how often. A 503 on many routes at once usually "
                "means the store or the broker is not answering.",
                "reqps",
                Query(
                    f"sum by (service, route, status) (rate({errors}[{RATE}])) > 0",
                    "{{service}} {{route}} {{status}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Answers per second by status",
                "Every answer by its HTTP status: 2xx served, 4xx refused as the client's fault "
                "(429: over a request limit), 5xx failed.",
                "reqps",
                Query(f"sum by (service, status) (rate({requests}[{RATE}]))", "{{service}} {{status}}"),
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(
            graph(
                "Latency by service (p50, p95, p99)",
                "How long requests take, from the request reaching the service to its answer, at "
                "the 50th, 95th and 99th percentile.",
                "s",
                *quantiles(HTTP_SECONDS, "service", f"{svc}, {PROBE_ROUTES}"),
            )
        )
        .with_panel(
            graph(
                "Latency by route (p95)",
                "The 95th percentile of each route's latency: which route is slow.",
                "s",
                Query(
                    f"histogram_quantile(0.95, sum by (service, route, le) "
                    f"(rate({HTTP_SECONDS}_bucket{{{svc}, {PROBE_ROUTES}}}[{RATE}])))",
                    "{{service}} {{route}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Latency by route (p99)",
                "The 99th percentile of each route's latency: the slowest requests' experience.",
                "s",
                Query(
                    f"histogram_quantile(0.99, sum by (service, route, le) "
                    f"(rate({HTTP_SECONDS}_bucket{{{svc}, {PROBE_ROUTES}}}[{RATE}])))",
                    "{{service}} {{route}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Mean latency by route",
                "Time spent per request on average, by route (total time over requests).",
                "s",
                Query(
                    f"sum by (service, route) (rate({HTTP_SECONDS}_sum{{{svc}, {PROBE_ROUTES}}}[{RATE}])) "
                    f"/ sum by (service, route) (rate({requests}[{RATE}]))",
                    "{{service}} {{route}}",
                ),
            )
        )
        .with_row(dashboard.Row("Replicas"))
        .with_panel(
            single_stat(
                "Replicas answering",
                "Replicas of each service Prometheus scraped at its last try. One fewer than you "
                "run for 2 minutes fires LemmaReplicaDown.",
                "short",
                Query('sum by (job) (up{job=~"lemma-$service"})', "{{job}}"),
                width=12,
            )
        )
        .with_panel(
            single_stat(
                "Replicas ready",
                "Replicas of each service whose GET /readyz answers 200: started, store and broker "
                "reachable, no partition refused or parked. One not ready for 5 minutes fires "
                "LemmaReplicaNotReady; lemma_ready_check names the failing check.",
                "short",
                Query('sum by (service) (lemma_ready{service=~"$service"})', "{{service}}"),
                width=12,
            )
        )
        .with_panel(
            graph(
                "Event-loop lag (p99) by replica",
                "How much later than due each replica's event loop ran a waiting task. Kafka "
                "heartbeats are sent from the loop: keep this well under 3 s.",
                "s",
                Query(
                    f"histogram_quantile(0.99, sum by (service, instance, le) "
                    f"({rate('lemma_event_loop_lag_seconds_bucket', svc)}))",
                    "{{service}} {{instance}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Resident memory by replica",
                "Memory each replica's process holds (resident set size).",
                "bytes",
                Query('process_resident_memory_bytes{job=~"lemma-$service"}', "{{job}} {{instance}}"),
            )
        )
        .with_panel(
            graph(
                "CPU by replica",
                "CPU time each replica's process uses, in cores (1 = one core busy all the time).",
                "short",
                Query(
                    f'rate(process_cpu_seconds_total{{job=~"lemma-$service"}}[{RATE}])',
                    "{{job}} {{instance}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Requests refused for going over a limit",
                "Requests answered 429 because their token or address went over its request limit "
                "(by scope), long-polls refused because their caller already held its share, and "
                "requests let through unlimited because the limits' storage did not answer.",
                "reqps",
                Query(
                    f"sum by (service, scope) ({rate('lemma_rate_limited_total', svc)})",
                    "{{service}} limited ({{scope}})",
                ),
                Query(
                    f"sum by (service) ({rate('lemma_long_polls_refused_total', svc)})",
                    "{{service}} long-polls refused",
                ),
                Query(
                    f"sum by (service) ({rate('lemma_rate_limit_errors_total', svc)})",
                    "{{service}} let through (limit storage down)",
                ),
            )
        )
    )
