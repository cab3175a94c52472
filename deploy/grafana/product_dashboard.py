"""The product loop: tickets waiting and time to match, matches made, level gaps, decision
time, rating-to-passport latency, learners by SCI range for each skill, and what calibration
discounts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from deploy.grafana.dashboard_parts import RATE, lemma_dashboard, quantiles, rate
from deploy.grafana.panels import Query, bars, graph, label_variable


def product() -> dashboard.Dashboard:
    skill = 'skill=~"$skill"'
    return (
        lemma_dashboard(
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
                *quantiles("lemma_matching_time_to_match_seconds", ""),
            )
        )
        .with_panel(
            graph(
                "Matches made and tickets expired",
                "Pairs decided per minute, and tickets per minute that expired unmatched, by skill.",
                "short",
                Query(f"sum(rate(lemma_matching_time_to_match_seconds_count[{RATE}])) * 60", "pairs"),
                Query(
                    f"sum by (skill) ({rate('lemma_matching_expirations_total', skill)}) * 60",
                    "expired {{skill}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Level gap of the pairs (p50, p95)",
                "How far apart in level the two learners of a pair are: wider when queues are thin.",
                "short",
                *quantiles("lemma_matching_level_gap", "")[:2],
            )
        )
        .with_panel(
            graph(
                "Matching decision time (p95, p99)",
                "Time to fold a batch of the engine's records and decide for its arrivals, store "
                "reads and the write included.",
                "s",
                *quantiles("lemma_matching_decision_seconds", "")[1:],
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
                *quantiles("lemma_rating_to_passport_seconds", ""),
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
