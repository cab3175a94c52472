"""The event flow: events published and folded by type, consumer lag per projection, time to
fold, write conflicts, parked and refused partitions, dead letters, fold faults, fenced
partitions."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from deploy.grafana.dashboard_parts import lemma_dashboard, quantiles, rate
from deploy.grafana.panels import Query, graph, label_variable, single_stat


def events() -> dashboard.Dashboard:
    svc = 'service=~"$service"'
    return (
        lemma_dashboard(
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
                    f"sum by (service, type) ({rate('lemma_events_published_total', svc)})",
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
                    f"sum by (service, consumer, type) ({rate('lemma_events_consumed_total', svc)})",
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
                *quantiles("lemma_fold_batch_seconds", "service, consumer", svc),
            )
        )
        .with_panel(
            graph(
                "Write conflicts per second",
                "Writes refused because another replica changed the document since it was read; "
                "each is retried from a fresh read. A steady rate means replicas contend.",
                "ops",
                Query(
                    f"sum by (service, writer) ({rate('lemma_write_conflicts_total', svc)})",
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
                    f"({rate('lemma_dead_letters_total', svc, 'increase')})",
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
                    f"sum by (service, consumer, topic) ({rate('lemma_fold_faults_total', svc, 'increase')})",
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
                    f"sum by (service, consumer) ({rate('lemma_partitions_fenced_total', svc, 'increase')})",
                    "{{service}}/{{consumer}}",
                ),
                width=24,
            )
        )
    )
