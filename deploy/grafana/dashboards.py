"""Lemma's Grafana dashboards, one per concern: the HTTP front (traffic, errors, latency, replicas),
the event flow (events published and folded, consumer lag, parked partitions, dead letters, fold
faults) and the product loop (match queue, time to match, rating-to-passport latency, the SCI
distribution, calibration). ``python -m deploy.grafana`` writes them to ``dashboards/*.json``;
``tests/unit/test_dashboards.py`` checks the committed files are what this code builds and that
every query names only metrics and labels the services export.

Scrape jobs are named ``lemma-<service>``; Prometheus adds ``instance`` to tell replicas apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from deploy.grafana.panels import (
    PROBE_ROUTES,
    Query,
    bars,
    datasource_variable,
    graph,
    label_variable,
    single_stat,
)

RATE = "$__rate_interval"
HTTP_SECONDS = "lemma_http_request_duration_seconds"


def _base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["lemma"])
        .readonly()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("Lemma")
            .type(dashboard_model.DashboardLinkType.DASHBOARDS)
            .tags(["lemma"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
    )


def _rate(series: str, matchers: str, function: str = "rate") -> str:
    """``rate(series{matchers}[$__rate_interval])`` (or ``increase``)."""
    return f"{function}({series}{{{matchers}}}[{RATE}])" if matchers else f"{function}({series}[{RATE}])"


def _quantiles(series: str, by: str, matchers: str = "") -> tuple[Query, ...]:
    """p50, p95 and p99 of a histogram, by ``by`` (a comma-separated label list, or empty)."""
    group = f"{by}, le" if by else "le"
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")) if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) (rate({series}_bucket{{{matchers}}}[{RATE}])))",
            f"{legend} p{round(q * 100)}".strip(),
        )
        for q in (0.5, 0.95, 0.99)
    )


def http() -> dashboard.Dashboard:
    svc = 'service=~"$service"'
    requests = f"{HTTP_SECONDS}_count{{{svc}, {PROBE_ROUTES}}}"
    errors = f'{HTTP_SECONDS}_count{{{svc}, {PROBE_ROUTES}, status=~"5.."}}'
    return (
        _base(
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
                *_quantiles(HTTP_SECONDS, "service", f"{svc}, {PROBE_ROUTES}"),
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
                    f"({_rate('lemma_event_loop_lag_seconds_bucket', svc)}))",
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
                    f"sum by (service, scope) ({_rate('lemma_rate_limited_total', svc)})",
                    "{{service}} limited ({{scope}})",
                ),
                Query(
                    f"sum by (service) ({_rate('lemma_long_polls_refused_total', svc)})",
                    "{{service}} long-polls refused",
                ),
                Query(
                    f"sum by (service) ({_rate('lemma_rate_limit_errors_total', svc)})",
                    "{{service}} let through (limit storage down)",
                ),
            )
        )
    )


def events() -> dashboard.Dashboard:
    svc = 'service=~"$service"'
    return (
        _base(
            "lemma-events",
            "Lemma · Events and projections",
            "Events published and folded by type, consumer lag per projection, parked and refused "
            "partitions, dead letters, fold faults, write conflicts.",
        )
        .with_variable(
            label_variable(
                "service", "Service", "lemma_events_consumed_total", "The services whose consumers are shown"
            )
        )
        .with_row(dashboard.Row("Events"))
        .with_panel(
            graph(
                "Events published per second by type",
                "Events each service wrote to its topic (through the outbox), by event type.",
                "ops",
                Query(
                    f"sum by (service, type) ({_rate('lemma_events_published_total', svc)})",
                    "{{service}} {{type}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Events folded per second by type",
                "Events each projection (consumer) folded into its read models, by event type.",
                "ops",
                Query(
                    f"sum by (service, consumer, type) ({_rate('lemma_events_consumed_total', svc)})",
                    "{{service}}/{{consumer}} {{type}}",
                ),
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Consumer lag"))
        .with_panel(
            graph(
                "Consumer lag per projection",
                "Records each projection has still to fold, over its partitions: how far its read "
                "models are behind the log. Over 1,000 and growing for 10 minutes fires "
                "LemmaConsumerLagGrowing. (A partition's lag is the highest any replica reports, so "
                "a replica that just gave it up is not counted twice.)",
                "short",
                Query(
                    "sum by (service, consumer) (max by (service, consumer, topic, partition) "
                    f"(lemma_consumer_lag{{{svc}}}))",
                    "{{service}}/{{consumer}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Consumer lag per partition",
                "The same lag by topic and partition: one partition far behind points at one "
                "replica or one hot key.",
                "short",
                Query(
                    f"max by (service, consumer, topic, partition) (lemma_consumer_lag{{{svc}}}) > 0",
                    "{{service}}/{{consumer}} {{topic}}[{{partition}}]",
                ),
            )
        )
        .with_panel(
            graph(
                "Time to fold a batch (p50, p95, p99)",
                "How long a projection takes to fold one consumed batch and write it to the store.",
                "s",
                *_quantiles("lemma_fold_batch_seconds", "service, consumer", svc),
            )
        )
        .with_panel(
            graph(
                "Write conflicts per second",
                "Writes refused because another replica changed the document since it was read; "
                "each is retried from a fresh read. A steady rate means replicas contend.",
                "ops",
                Query(
                    f"sum by (service, writer) ({_rate('lemma_write_conflicts_total', svc)})",
                    "{{service}} {{writer}}",
                ),
            )
        )
        .with_row(dashboard.Row("Stopped partitions, dead letters and faults"))
        .with_panel(
            single_stat(
                "Parked partitions",
                "Partitions stopped at a record that failed every retry: nothing after it is folded "
                "until the cause is fixed and the partition resumed (GET /ops/projections). Any "
                "fires LemmaPartitionParked.",
                "short",
                Query(
                    f"max by (service, consumer) (lemma_partitions_parked{{{svc}}})",
                    "{{service}}/{{consumer}}",
                ),
                bad=1,
                width=12,
            )
        )
        .with_panel(
            single_stat(
                "Refused partitions",
                "Partitions a projection refuses to fold because the log is not the one its store's "
                "offsets came from (docs/operations.md, 'A store whose offsets do not fit the log').",
                "short",
                Query(
                    f"max by (service, consumer) (lemma_partitions_refused{{{svc}}})",
                    "{{service}}/{{consumer}}",
                ),
                bad=1,
                width=12,
            )
        )
        .with_panel(
            graph(
                "Dead letters",
                "Records sent to the dead-letter topic as bad data (unreadable, invalid, refused by "
                "the fold), per interval. `lemma dlq list` gives each one's reason.",
                "short",
                Query(
                    "sum by (service, consumer, topic) "
                    f"({_rate('lemma_dead_letters_total', svc, 'increase')})",
                    "{{service}}/{{consumer}} {{topic}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Fold faults",
                "Folds that failed for a reason other than the data (the store, a bug), per "
                "interval; the partition retries, then parks.",
                "short",
                Query(
                    "sum by (service, consumer, topic) "
                    f"({_rate('lemma_fold_faults_total', svc, 'increase')})",
                    "{{service}}/{{consumer}} {{topic}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Partitions fenced",
                "Partitions a replica stopped folding because another replica claimed them, per "
                "interval: expected around rebalances, not steadily.",
                "short",
                Query(
                    f"sum by (service, consumer) ({_rate('lemma_partitions_fenced_total', svc, 'increase')})",
                    "{{service}}/{{consumer}}",
                ),
                width=24,
            )
        )
    )


def product() -> dashboard.Dashboard:
    skill = 'skill=~"$skill"'
    return (
        _base(
            "lemma-product",
            "Lemma · Matching and scores",
            "The product loop: tickets waiting and time to match, rating-to-passport latency, "
            "learners by SCI range for each skill, and what calibration discounts.",
        )
        .with_variable(
            label_variable(
                "skill",
                "Skill",
                "lemma_sci_learners",
                "The skills shown (the SCI distribution repeats per skill)",
            )
        )
        .with_row(dashboard.Row("Matching"))
        .with_panel(
            graph(
                "Tickets waiting by skill",
                "Match tickets waiting for a partner in each skill, over every matching replica "
                "(each counts the skills it decides for). Over 10 waiting with no match for 15 "
                "minutes fires LemmaNoMatchesMade.",
                "short",
                Query(f"sum by (skill) (lemma_matching_queue_depth{{{skill}}})", "{{skill}}"),
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Time to match (p50, p95, p99)",
                "How long the longer-waiting ticket of each pair waited before the engine paired it.",
                "s",
                *_quantiles("lemma_matching_time_to_match_seconds", ""),
            )
        )
        .with_panel(
            graph(
                "Matches made and tickets expired",
                "Pairs decided per minute, and tickets per minute that expired unmatched, by skill.",
                "short",
                Query(f"sum(rate(lemma_matching_time_to_match_seconds_count[{RATE}])) * 60", "pairs"),
                Query(
                    f"sum by (skill) ({_rate('lemma_matching_expirations_total', skill)}) * 60",
                    "expired {{skill}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Level gap of the pairs (p50, p95)",
                "How far apart in level the two learners of a pair are: wider when queues are thin.",
                "short",
                *_quantiles("lemma_matching_level_gap", "")[:2],
            )
        )
        .with_panel(
            graph(
                "Matching decision time (p95, p99)",
                "Time to fold a batch of the engine's records and decide for its arrivals, store "
                "reads and the write included.",
                "s",
                *_quantiles("lemma_matching_decision_seconds", "")[1:],
                width=24,
            )
        )
        .with_row(dashboard.Row("Scores"))
        .with_panel(
            graph(
                "Rating to passport (p50, p95, p99)",
                "From a rating being submitted to the learner's passport showing the score it "
                "moved: the whole pipeline (sessions, evidence, sci, passport) end to end.",
                "s",
                *_quantiles("lemma_rating_to_passport_seconds", ""),
                width=24,
            )
        )
        .with_panel(
            bars(
                "Learners by SCI range: $skill",
                "How many learners' current SCI falls in each range of 10 points, for this skill "
                "(every sci replica reports the whole store's figures; the highest is shown).",
                "short",
                Query(
                    'max by (skill, range) (lemma_sci_learners{skill=~"$skill"})', "{{range}}", instant=True
                ),
                repeat="skill",  # Grafana splits the row between the skills
                width=24,
            )
        )
        .with_panel(
            graph(
                "Learners by SCI range over time (selected skills)",
                "The SCI distribution of the selected skills together, as it moves.",
                "short",
                Query(f"sum by (range) (max by (skill, range) (lemma_sci_learners{{{skill}}}))", "{{range}}"),
                stacked=True,
                width=24,
            )
        )
        .with_panel(
            graph(
                "Raters discounted by calibration",
                "Raters each skill's last calibration discounts: careless (one rating for "
                "everyone) or 1.5 points or more from their peers.",
                "short",
                Query(f"max by (skill) (lemma_raters_discounted{{{skill}}})", "{{skill}}"),
            )
        )
        .with_panel(
            graph(
                "Collusion suspects",
                "Learners in pairs or rings each skill's last calibration suspects of rating each "
                "other up; GET /ops/collusion on sci lists them.",
                "short",
                Query(f"max by (skill) (lemma_collusion_suspects{{{skill}}})", "{{skill}}"),
            )
        )
    )


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
