"""The load bench's figures: what each phase measured, the targets, and the last JSON line."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.load_checks import CheckResult
from bench.load_gen import RunResult, Tally, latency_summary, percentile
from bench.load_mix import SLO_EXCLUDED, MixState
from bench.load_rating import RatingResult, summary
from bench.load_setup import Api, Population
from deploy.local.config import StackConfig

RATING_P99_MS = 500.0
RATING_RATE = 200.0
PASSPORT_P99_MS = 20.0
PASSPORT_RATE = 1000.0
MIX_P99_MS = 100.0
ANSWERED_SHARE = 0.99  # a step must have answered this share of its arrivals


def step_passes(res: RunResult) -> tuple[bool, str]:
    """Whether a step of the search held: p99 < 100 ms over the mix (less ``SLO_EXCLUDED``),
    no 5xx, nearly every arrival answered, and the client on time."""
    total = res.total(exclude=SLO_EXCLUDED)
    fig = latency_summary(total)
    answered = len(res.total().latencies_ms) / res.arrivals if res.arrivals else 0.0
    if res.client_limited:
        return False, "client limited (the generator fell behind its schedule)"
    if fig["5xx"]:
        return False, f"{fig['5xx']} answers 5xx"
    if answered < ANSWERED_SHARE:
        return False, f"only {answered:.1%} answered"
    if fig["p99_ms"] is None or fig["p99_ms"] >= MIX_P99_MS:
        return False, f"p99 {fig['p99_ms']} ms"
    return True, ""


def _run_figures(res: RunResult, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    fig = latency_summary(res.total(exclude=exclude))
    fig.update(
        offered_rps=res.rate,
        answered_share=round(len(res.total().latencies_ms) / res.arrivals, 4) if res.arrivals else 0.0,
        lag_p99_ms=round(percentile(res.lag_ms, 99), 2),
        client_limited=res.client_limited,
        generator_cpu_s=round(res.cpu_s, 1),
        retries=res.retries,
    )
    return fig


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return out.stdout.strip()


class Report:
    def __init__(self, config: StackConfig, args: argparse.Namespace) -> None:
        self.config_info: dict[str, Any] = {
            "brokers": config.brokers,
            "replicas": config.replicas,
            "duration_s": args.duration,
            "quick": args.quick,
            "seed": args.seed,
            "workers": args.workers,
            "cores": os.cpu_count(),
            "commit": _commit(),
            "rating_rate": args.rating_rate,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        self.error = ""
        self.stack_start_s = 0.0
        self.left_running: list[str] = []
        self.cpu: dict[str, dict[str, float]] = {}
        self.statuses: Counter[int] = Counter()
        self.setup: dict[str, Any] = {}
        self.generator: list[dict[str, Any]] = []
        self.generator_ceiling = 0.0
        self.ceiling_lower_bound = False  # on time at the highest rate tried
        self.rating_fig: dict[str, Any] = {}
        self.reads: dict[str, dict[str, Any]] = {}
        self.steps: list[dict[str, Any]] = []
        self.max_sustained = 0.0
        self.first_failed: float | None = None
        self.step_up_client_limited = False
        self.mix: dict[str, Any] = {}
        self.check_fig: dict[str, Any] = {}

    def _count(self, tallies: list[Tally]) -> None:
        for tally in tallies:
            self.statuses.update(tally.statuses)

    # --- phases --------------------------------------------------------------------------------

    def population(self, pop: Population, api: Api) -> None:
        self.setup = {
            "learners": len(pop.learners),
            "claims": sum(len(c) for c in pop.claims.values()),
            "sessions_completed_unrated": sum(len(r) for r in pop.rated_rounds),
            "sessions_left_scheduled": len(pop.open_sessions),
            "tickets": len(pop.tickets),
            "tickets_cancelled": pop.cancelled,
            "seconds": pop.seconds,
            "closed_loop_p50_ms": {
                kind: latency_summary(t)["p50_ms"] for kind, t in sorted(api.tallies.items())
            },
        }

    def add_run(self, phase: str, res: RunResult) -> None:
        self._count(list(res.kinds.values()))
        if phase == "generator":
            self.generator.append(_run_figures(res))

    def rating(self, r: RatingResult) -> None:
        self._count([r.post, r.polls])
        achieved = len(r.post.latencies_ms) / r.seconds if r.seconds else 0.0
        self.rating_fig = {
            "offered_ratings_per_s": r.rate,
            "ratings_sent": r.sent,
            "ratings_accepted": len(r.accepted),
            "sent_per_s": round(r.sent / r.seconds, 1) if r.seconds else 0.0,
            "answered_per_s": round(achieved, 1),
            "post": latency_summary(r.post),
            "post_lag_p99_ms": round(percentile(r.lag_ms, 99), 2),
            "rating_to_sci_shown": summary(r.sci_ms, r.never_shown),
            "rating_to_sci_shown_lower_bound": summary(r.sci_lower_ms, r.never_shown),
            "rating_to_evidence_shown": summary(r.evidence_ms),
            "poll_resolution_ms": summary(r.resolution_ms),
            "never_shown": r.never_shown,
            "unanswered": len(r.unanswered),
            "overlapping": r.overlapping,
            "polls": latency_summary(r.polls),
            "unexpected": dict(r.unexpected),
        }

    def passport(self, name: str, res: RunResult) -> None:
        self._count(list(res.kinds.values()))
        self.reads[name] = _run_figures(res)

    def step(self, rate: float, res: RunResult, ok: bool, why: str, cpu: dict[str, float]) -> None:
        self._count(list(res.kinds.values()))
        fig = _run_figures(res, exclude=SLO_EXCLUDED)
        fig.update(
            passed=ok,
            why=why,
            by_kind={
                kind: {
                    k: v
                    for k, v in latency_summary(t).items()
                    if k in ("requests", "p50_ms", "p99_ms", "5xx")
                }
                for kind, t in sorted(res.kinds.items())
            },
            cpu=cpu,
        )
        self.steps.append(fig)

    def mix_state(self, s: MixState) -> None:
        self.mix = {
            "ratings_accepted": len(s.ratings),
            "ratings_unanswered": len(s.unanswered),
            "learners_registered": len(s.registered),
            "claims": len(s.claims),
            "waitlisted": s.waitlisted,
            "busy_409_requeued": s.busy,
            "fallbacks": dict(s.fallbacks),
            "unexpected": dict(s.unexpected),
        }

    def checks(self, c: CheckResult, api: Api) -> None:
        self._count(list(api.tallies.values()))  # the population's and the checks' own calls
        self.check_fig = {
            "ratings_checked": c.ratings,
            "ratees": c.ratees,
            "missing": c.missing,
            "duplicated": c.duplicated,
            "unexpected_items": c.unexpected,
            "unanswered_kept": c.unanswered_kept,
            "evidence_exact": c.evidence_exact,
            "skill_pages": c.skill_pages,
            "skill_pages_match": c.skill_pages_match,
            "seconds": c.seconds,
        }

    # --- output --------------------------------------------------------------------------------

    def met(self) -> dict[str, bool]:
        r, d = self.rating_fig, self.reads.get("direct", {})
        sci = r.get("rating_to_sci_shown", {})
        rating_ok = (
            sci.get("p99_ms") is not None
            and sci["p99_ms"] < RATING_P99_MS
            and r.get("sent_per_s", 0) >= 0.98 * RATING_RATE
            and r.get("post_lag_p99_ms", 1e9) < 10
        )
        passport_ok = (
            d.get("p99_ms") is not None and d["p99_ms"] < PASSPORT_P99_MS and not d.get("client_limited")
        )
        five = sum(v for k, v in self.statuses.items() if k >= 500)
        return {
            "rating_to_passport_p99_under_500ms_at_200_per_s": bool(rating_ok),
            "passport_p99_under_20ms_at_1000_per_s_at_service": bool(passport_ok),
            "max_sustained_rate_found": self.max_sustained > 0 and not self.step_up_client_limited,
            "evidence_exactly_once": bool(self.check_fig.get("evidence_exact")),
            "skill_pages_match": bool(self.check_fig.get("skill_pages_match")),
            "no_5xx": five == 0 and bool(self.statuses),
            "chain_steps_as_expected": not self.mix.get("unexpected") and not r.get("unexpected"),
            "no_process_left": not self.left_running,
        }

    def final(self) -> dict[str, Any]:
        met = self.met() if not self.error else {"ran": False}
        g, d = self.reads.get("gateway", {}), self.reads.get("direct", {})
        added = (
            round(g["p99_ms"] - d["p99_ms"], 2)
            if g.get("p99_ms") is not None and d.get("p99_ms") is not None
            else None
        )
        return {
            "benchmark": "load",
            "config": self.config_info,
            "error": self.error or None,
            "stack_start_s": self.stack_start_s,
            "population": self.setup,
            "generator_ceiling_rps": self.generator_ceiling,
            "generator_ceiling_is_lower_bound": self.ceiling_lower_bound,
            "generator_runs": self.generator,
            "rating_path": self.rating_fig,
            "passport_reads": {"gateway": g, "direct": d, "gateway_added_p99_ms": added},
            "step_up": {
                "max_sustained_rps": self.max_sustained,
                "first_missed_rps": self.first_failed,
                "client_limited": self.step_up_client_limited,
                "excluded_from_p99": list(SLO_EXCLUDED),
                "steps": self.steps,
            },
            "mix": self.mix,
            "checks": self.check_fig,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "cpu_cores": self.cpu,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "left_running": self.left_running,
            "targets": {
                "rating_to_passport_p99_ms": RATING_P99_MS,
                "rating_rate_per_s": RATING_RATE,
                "passport_p99_ms_at_service": PASSPORT_P99_MS,
                "passport_rate_per_s": PASSPORT_RATE,
                "mix_p99_ms": MIX_P99_MS,
            },
            "met": met,
            "meets_targets": all(met.values()),
            "missed": sorted(k for k, v in met.items() if not v),
        }

    def print_figures(self, say: Callable[[str], None]) -> None:
        say("")
        say(f"config: {self.config_info}")
        if self.error:
            say(f"error: {self.error}")
        say(f"generator: on time up to {self.generator_ceiling:g}/s of a trivial page")
        r = self.rating_fig
        if r:
            sci, ev = r["rating_to_sci_shown"], r["rating_to_evidence_shown"]
            say(
                f"rating path at {r['offered_ratings_per_s']:g}/s ({r['ratings_accepted']} accepted): "
                f"201 -> SCI shown p50 {sci['p50_ms']} p99 {sci['p99_ms']} ms; evidence shown p50 "
                f"{ev['p50_ms']} p99 {ev['p99_ms']} ms; POST p99 {r['post']['p99_ms']} ms; "
                f"poll resolution p50 {r['poll_resolution_ms']['p50_ms']} ms; never shown {r['never_shown']}"
            )
        for name, fig in self.reads.items():
            say(
                f"passport reads {name}: p50 {fig['p50_ms']} p99 {fig['p99_ms']} ms "
                f"at {fig['offered_rps']:g}/s"
            )
        for step in self.steps:
            say(
                f"mix {step['offered_rps']:>6g}/s: p99 {step['p99_ms']} ms "
                f"{'pass' if step['passed'] else step['why']}"
            )
        say(f"max sustained rate with p99 < {MIX_P99_MS:g} ms: {self.max_sustained:g}/s")
        if self.check_fig:
            say(f"checks: {self.check_fig}")
        for phase, use in self.cpu.items():
            say(f"cpu {phase}: {use}")
