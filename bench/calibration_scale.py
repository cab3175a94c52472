"""How the rater calibration's cost grows with a skill's ratings, and what it means at a million raters.

    .venv/bin/python -m bench.calibration_scale            # 1k, 3k, 10k, 30k raters; ~2 min
    .venv/bin/python -m bench.calibration_scale --quick    # smoke: 300 and 1,000 raters
    .venv/bin/python -m bench.calibration_scale --sizes 1000 10000 100000

For each size a skill is simulated as ``sim.population`` does it (biased scenario: true quality
1 + 4 Beta(2, 2), leniency sd 0.5, noise sd 0.7 per rubric score, pairs of similar level,
no-shows; every learner rates and is rated), each rating made the mean of its rubric scores as
``EvidenceItem.from_event`` makes it, and each learner's ``scores`` document built as the sci
store holds it. Then, in a worker process of the job's own kind
(``services.sci.offload.ProcessOffload``: spawned, the arguments pickled to it):

- ``calibrate`` over every rating of the skill (what the job runs);
- ``_rescore`` (what the job runs next: the seniors, then each learner's score under the
  stored calibration and the new one), from no calibration (a skill's first: every score is
  worked out twice and nearly all move);
- in this process, the CloudEvents the job builds for what moved, encoded as the outbox does.

CPU time in the worker is the main figure (the machine is shared; wall time is printed too).
Fitted as cpu = a * ratings^b over the sizes and extrapolated to ``--raters`` (1,000,000) at
the largest size's ratings per rater. At one size (``--moved-at``) the skill is also calibrated
without its newest 0.05%, 0.2% and 2% of ratings, and the re-scoring from each of those
calibrations to the full one counts the scores such a recalibration moves. Checked at every
size: the estimated biases correlate with the simulator's true leniency (Pearson >= 0.8), and
every SciUpdated the re-scoring announces names the new calibration. The encoded size of the
events one session puts in the log is printed for the storage estimate
(``bench.calibration_scale_events``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.calibration_scale_events import event_bytes
from bench.calibration_scale_fit import extrapolate
from services.sci.calibration import Calibration, Rating, calibrate
from services.sci.documents import facts_to_doc, score_key
from services.sci.domain import UNCALIBRATED, Correction, EvidenceItem, facts_of
from services.sci.offload import ProcessOffload
from services.sci.recalibration import GROWTH, _rescore
from services.sci.rubric_calibration import residuals_of
from shared.events.envelope import deterministic_id, encode, new_event
from shared.events.payloads import SciUpdated, TierChanged
from shared.settings import Settings as ServiceSettings
from sim.population import SKILL, Settings, simulate

DEFAULT_SIZES = (1000, 3000, 10000, 30000)
QUICK_SIZES = (300, 1000)
BIAS_CORRELATION_MIN = 0.8
TARGET_RATERS = 1_000_000
#: growths of the rating set whose recalibration is measured (the job's 2%, and the smaller steps
#: its one-minute rule takes on a skill that grows steadily)
GROWTHS = (0.0005, 0.002, GROWTH)
#: ratings/s one skill of a million raters takes at the platform's peak (10% of 100/s): arithmetic
SKILL_RATE = 10.0

Doc = dict[str, Any]
Payloads = list[SciUpdated | TierChanged]


@dataclass(frozen=True)
class Skill:
    """One simulated skill: its ratings, the raters' true leniency, the learners' score documents."""

    learners: int
    ratings: list[Rating]  # oldest first
    leniency: dict[str, float]
    scores: list[Doc]  # sorted by key, learners with ratings only, as the job reads them


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    peak_mib: float  # the process's peak resident memory so far


def simulated(learners: int, sessions: int, seed: int) -> Skill:
    """A skill of ``learners`` learners, each in ``sessions`` sessions (no-shows rate nobody)."""
    population = simulate(Settings(learners=learners, sessions_per_learner=sessions), seed)
    items: dict[str, list[EvidenceItem]] = {}
    ratings: list[tuple[datetime, Rating]] = []
    for r in population.ratings:
        mean = math.fsum(r.scores.values()) / len(r.scores)  # as EvidenceItem.from_event
        rating = Rating(r.ratee_id, r.rater_id, r.rating_id, mean, residuals_of(r.scores))
        ratings.append((r.occurred_at, rating))
        item = EvidenceItem(r.rating_id, r.session_id, r.rater_id, mean, r.specialty, r.occurred_at, r.scores)
        items.setdefault(r.ratee_id, []).append(item)
    no_shows: dict[str, list[str]] = {}
    for s in population.sessions:
        if s.no_show is not None:
            no_shows.setdefault(s.no_show, []).append(s.session_id)
    ratings.sort(key=lambda pair: pair[0])
    return Skill(
        learners=learners,
        ratings=[r for _, r in ratings],
        leniency={i: learner.leniency for i, learner in population.learners.items()},
        scores=[
            score_doc(i, items[i], no_shows.get(i, []))
            for i in sorted(items, key=lambda i: score_key(i, SKILL))
        ],
    )


def score_doc(learner: str, items: list[EvidenceItem], no_shows: list[str]) -> Doc:
    """The learner's ``scores/{learner}/{skill}`` document as the sci fold leaves it."""
    facts = facts_of(items, no_shows)
    return {
        "learner_id": learner,
        "skill": SKILL,
        "claimed": True,
        "facts": len(items) + facts.no_shows,
        **facts_to_doc(facts),
        "as_of": max(i.occurred_at for i in items).isoformat(),
    }


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_calibrate(ratings: list[Rating]) -> tuple[Calibration, Timing]:
    """``calibrate(ratings)`` with its wall and CPU time (run in the worker process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    found = calibrate(ratings)
    return found, Timing(time.perf_counter() - wall, time.process_time() - cpu, _peak_mib())


def timed_rescore(
    scores: list[Doc], current: Correction, new: Correction
) -> tuple[tuple[Correction, Payloads], Timing]:
    """The job's ``_rescore`` with its wall and CPU time (run in the worker process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    found = _rescore(scores, current, new)
    return found, Timing(time.perf_counter() - wall, time.process_time() - cpu, _peak_mib())


class Worker:
    """The job's worker process, or this process (``in_process``: tests, profiles)."""

    def __init__(self, in_process: bool) -> None:
        self.offload = None if in_process else ProcessOffload()

    async def __aenter__(self) -> Worker:
        if self.offload is not None:
            await self.offload.run(os.getpid)  # spawned and imported before anything is timed
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.offload is not None:
            await self.offload.stop()

    async def base_mib(self) -> float:
        """The worker's resident memory before the skill's ratings reach it."""
        return await self.offload.run(_rss_mib) if self.offload is not None else _rss_mib()

    async def calibrate(self, ratings: list[Rating]) -> tuple[Calibration, Timing, float]:
        """The calibration, the worker's timing and the wall time around it (pickling included)."""
        wall = time.perf_counter()
        if self.offload is None:
            found, timing = timed_calibrate(ratings)
        else:
            found, timing = await self.offload.run(timed_calibrate, ratings)
        return found, timing, time.perf_counter() - wall

    async def rescore(
        self, scores: list[Doc], current: Correction, new: Correction
    ) -> tuple[Correction, Payloads, Timing, float]:
        wall = time.perf_counter()
        if self.offload is None:
            (senior, payloads), timing = timed_rescore(scores, current, new)
        else:
            (senior, payloads), timing = await self.offload.run(timed_rescore, scores, current, new)
        return senior, payloads, timing, time.perf_counter() - wall


def bias_check(
    bias: dict[str, float], truth: dict[str, float], minimum: float = BIAS_CORRELATION_MIN
) -> dict[str, Any]:
    """Pearson correlation of the estimated biases with the true leniencies, against ``minimum``."""
    raters = sorted(bias)
    value = statistics.correlation([bias[r] for r in raters], [truth[r] for r in raters])
    return {"value": round(value, 4), "minimum": minimum, "met": value >= minimum}


def built_events(payloads: Payloads, digest: str) -> float:
    """Seconds to wrap and encode what the job announces, as it and the outbox do (this process)."""
    wall, at = time.perf_counter(), datetime.now(UTC)
    for p in payloads:
        event_id = deterministic_id("sci-calibration", SKILL, digest, p.learner_id, type(p).__name__)
        encode(new_event(p, source="sci", time=at, id=event_id))
    return time.perf_counter() - wall


async def measure(skill: Skill, in_process: bool, moved: bool) -> dict[str, Any]:
    """Every figure of one size, in a fresh worker (its peak memory is this size's)."""
    async with Worker(in_process) as worker:
        base = await worker.base_mib()
        found, cal, cal_wall = await worker.calibrate(skill.ratings)
        new = found.correction()
        senior, payloads, res, res_wall = await worker.rescore(skill.scores, UNCALIBRATED, new)
        events_s = built_events(payloads, new.digest)
        raters, n = len(found.bias), found.ratings
        stored = len(json.dumps(senior.to_doc()))  # the calibrations/{skill} document, as JSON
        id_length = statistics.fmean(len(r) for r in found.bias)
        with_uuids = stored + (36 - id_length) * (2 * raters + len(senior.senior))  # UUID ids: arithmetic
        figures: dict[str, Any] = {
            "learners": skill.learners,
            "raters": raters,
            "ratings": n,
            "ratings_per_rater": round(n / raters, 2),
            "calibrate": {
                "cpu_s": round(cal.cpu_s, 3),
                "wall_s": round(cal.wall_s, 3),
                "transfer_s": round(cal_wall - cal.wall_s, 3),
                "cpu_us_per_rating": round(cal.cpu_s / n * 1e6, 2),
            },
            "rescore": {
                "learners": len(skill.scores),
                "cpu_s": round(res.cpu_s, 3),
                "wall_s": round(res.wall_s, 3),
                "transfer_s": round(res_wall - res.wall_s, 3),
                "cpu_us_per_learner": round(res.cpu_s / len(skill.scores) * 1e6, 2),
                "announced": len(payloads),
                "scores_moved": sum(isinstance(p, SciUpdated) for p in payloads),
                "seniors": len(senior.senior),
            },
            "events_s": round(events_s, 3),
            "calibration_doc_bytes": {"sim_ids": stored, "uuid_ids": round(with_uuids)},
            "worker_mib": {"base": round(base, 1), "peak": round(max(cal.peak_mib, res.peak_mib), 1)},
            "checks": {
                "bias_correlates_with_leniency": bias_check(dict(found.bias), skill.leniency),
                "rescored_under_new": {
                    "met": all(p.calibration == n for p in payloads if isinstance(p, SciUpdated))
                },
            },
        }
        if moved:
            figures["recalibration"] = await recalibration(worker, skill, new)
    return figures


async def recalibration(worker: Worker, skill: Skill, new: Correction) -> list[dict[str, Any]]:
    """What a recalibration after each of ``GROWTHS`` more ratings moves: the job's re-scoring
    from the calibration without the newest ratings (with its seniors, as stored) to the full one."""
    found = []
    for growth in GROWTHS:
        earlier, _, _ = await worker.calibrate(
            skill.ratings[: len(skill.ratings) - math.ceil(growth * len(skill.ratings))]
        )
        stored, _, _, _ = await worker.rescore(skill.scores, UNCALIBRATED, earlier.correction())
        _, payloads, timing, _ = await worker.rescore(skill.scores, stored, new)
        moved = sum(isinstance(p, SciUpdated) for p in payloads)
        found.append(
            {
                "growth": growth,
                "from_ratings": earlier.ratings,
                "to_ratings": new.ratings,
                "scores_moved": moved,
                "tiers_changed": len(payloads) - moved,
                "moved_share": round(moved / len(skill.scores), 4),
                "rescore_cpu_s": round(timing.cpu_s, 3),
            }
        )
    return found


async def run(
    sizes: Sequence[int],
    *,
    sessions: int,
    seed: int,
    moved_at: int | None,
    in_process: bool,
    raters: int = TARGET_RATERS,
    skill_rate: float = SKILL_RATE,
) -> dict[str, Any]:
    """Every size, smallest first; the growth fit, the extrapolation and the verdict."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    figures: list[dict[str, Any]] = []
    for learners in sorted(sizes):
        skill = simulated(learners, sessions, seed)
        size = await measure(skill, in_process, moved=learners == moved_at)
        del skill
        smallest = figures[0] if figures else size
        base = smallest["calibrate"]["cpu_us_per_rating"]
        size["calibrate"]["per_rating_vs_smallest"] = round(size["calibrate"]["cpu_us_per_rating"] / base, 3)
        figures.append(size)
        print(row(size), flush=True)
    interval = ServiceSettings().sci_calibration_interval_s
    out = extrapolate(figures, raters, skill_rate, interval) if len(figures) > 1 else {"targets": {}}
    failed = [
        f"{s['raters']}:{name}" for s in figures for name, check in s["checks"].items() if not check["met"]
    ]
    missed = [name for name, target in out["targets"].items() if not target["met"]]
    return {
        "benchmark": "calibration_scale",
        "seed": seed,
        "sessions_per_learner": sessions,
        "worker": "in-process" if in_process else "process",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(load, 2), round(os.getloadavg()[0], 2)],
        },
        "seconds": round(time.perf_counter() - started, 1),
        "sizes": figures,
        "extrapolation": {k: v for k, v in out.items() if k != "targets"},
        "event_bytes": event_bytes(),
        "targets": out["targets"],
        "checks_failed": failed,
        "meets_targets": not missed and not failed,
        "missed": missed,
    }


def row(size: dict[str, Any]) -> str:
    cal, res = size["calibrate"], size["rescore"]
    line = (
        f"{size['raters']:>8,} raters {size['ratings']:>9,} ratings | calibrate cpu {cal['cpu_s']:8.2f} s"
        f" ({cal['cpu_us_per_rating']:6.1f} us/rating, x{cal.get('per_rating_vs_smallest', 1):.2f}) wall"
        f" {cal['wall_s']:7.2f} s | rescore cpu {res['cpu_s']:6.2f} s ({res['scores_moved']:,} moved,"
        f" {res['seniors']:,} seniors) | worker peak {size['worker_mib']['peak']:,.0f} MiB"
        f" | bias r {size['checks']['bias_correlates_with_leniency']['value']:.3f}"
    )
    if "recalibration" in size:
        shares = ", ".join(f"+{r['growth']:.2%}: {r['moved_share']:.1%}" for r in size["recalibration"])
        line += f" | scores a recalibration moves: {shares}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="learners (each also a rater) per skill")
    parser.add_argument("--quick", action="store_true", help=f"smoke: {QUICK_SIZES}")
    parser.add_argument("--sessions", type=int, default=8, help="sessions per learner (default 8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--moved-at",
        type=int,
        help="the size whose recalibrations are measured (default: the second smallest)",
    )
    parser.add_argument("--raters", type=int, default=TARGET_RATERS, help="raters to extrapolate to")
    parser.add_argument(
        "--skill-rate", type=float, default=SKILL_RATE, help="ratings/s that skill takes (default 10)"
    )
    parser.add_argument("--in-process", action="store_true", help="no worker process (profiles)")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    moved_at = args.moved_at or sizes[min(1, len(sizes) - 1)]
    out = asyncio.run(
        run(
            sizes,
            sessions=args.sessions,
            seed=args.seed,
            moved_at=moved_at,
            in_process=args.in_process,
            raters=args.raters,
            skill_rate=args.skill_rate,
        )
    )
    print(json.dumps(out))
    return 0 if not out["checks_failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
