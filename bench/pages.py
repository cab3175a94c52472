"""Benchmark: server time of the HTML pages with a demo-sized population.

    .venv/bin/python -m bench.pages [--learners 300] [--sessions 8] [--requests 300] [--seed 1]

Builds a passport store (SQLite, a file) the way the running service would hold it after the
demo seeding: ``--learners`` learners registered and claiming Machine Learning, the rated
sessions of a simulated population (``sim.population``, about ``learners x sessions``
evidence items over 120 days) folded through the real ``PassportProjection`` by the real
``ProjectionRuntime``, with each learner's SciUpdated scored by the sci domain under the rater
calibration of the whole rating set, which is also announced as RatersCalibrated.

Then it calls the real passport app in process (httpx's ASGI transport: no network, so the
time is the server's: routing, store reads, the view models and the template) and times, per
page, ``--requests`` calls, against the JSON route that reads the same documents as the
baseline in the same run:

- the skill page ``/skills/machine-learning`` vs ``GET /v1/skills/machine-learning``;
- the passport of the learner with the most evidence, and of random learners, vs
  ``GET /v1/passports/{handle}``; the passport's second trail page;
- the waitlist form ``POST /waitlist`` vs ``POST /v1/waitlist`` (new emails each time).

Target: p95 under 50 ms for every page. The last output line is one JSON object with the
figures, the target and whether it is met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.passport import domain as passport_domain
from services.passport.app import bootstrap
from services.passport.projection import PassportProjection
from services.sci import domain as sci_domain
from services.sci.calibration import Rating, calibrate
from shared.events.envelope import encode, new_event
from shared.events.payloads import EvidenceRecorded, Payload, RatersCalibrated, SciUpdated, SkillClaimed
from shared.projection.runtime import ProjectionRuntime
from shared.settings import Settings
from shared.store.base import Change
from shared.store.sqlite import SqliteStore
from sim.inprocess import evidence_events, fold
from sim.population import SKILL, scenario, simulate
from tests.support.records import Rec

TARGET_P95_MS = 50.0
RATERS_PER_PART = 2_000


def events_of(learners: int, sessions: int, seed: int) -> tuple[list[Payload], list[str]]:
    """The demo population's events in time order, and its learner ids."""
    population = simulate(scenario("biased", learners=learners, sessions_per_learner=sessions), seed)
    evidence = evidence_events(population)
    ratings = [
        Rating(e.learner_id, e.rater_id, e.evidence_id, sum(e.scores.values()) / len(e.scores))
        for e in evidence
    ]
    calibration = calibrate(ratings)
    correction = calibration.correction()
    folded = fold(population)
    out: list[Payload] = [
        SkillClaimed(learner_id=learner, skill=SKILL, self_level="intermediate")
        for learner in population.learners
    ]
    in_time: list[EvidenceRecorded] = sorted(evidence, key=lambda e: e.occurred_at)
    out += in_time
    for learner, items in folded.items.items():
        if not items:
            continue
        stats = sci_domain.summarize(
            sci_domain.facts_of(items, folded.no_shows[learner]), correction, learner
        )
        score = sci_domain.score_from_stats(stats, folded.as_of)
        out.append(
            SciUpdated(
                learner_id=learner,
                skill=SKILL,
                **score.parts(),
                sci=score.sci,
                tier=score.tier,
                sessions=score.sessions,
                as_of=score.as_of,
                revision=len(items),
                calibration=calibration.ratings,
                last_evidence_at=score.last_evidence_at,
            )
        )
    raters = sorted(calibration.bias)
    parts = max(1, -(-len(raters) // RATERS_PER_PART))
    for part in range(parts):
        chosen = raters[part * RATERS_PER_PART : (part + 1) * RATERS_PER_PART]
        out.append(
            RatersCalibrated(
                skill=SKILL,
                version="bench",
                digest=calibration.digest,
                ratings=calibration.ratings,
                part=part,
                parts=parts,
                bias={r: calibration.bias[r] for r in chosen},
            )
        )
    return out, list(population.learners)


async def build_store(
    path: Path, learners: int, sessions: int, seed: int
) -> tuple[SqliteStore, list[str], int]:
    store = SqliteStore(str(path))
    payloads, ids = events_of(learners, sessions, seed)
    now = datetime.now(UTC)
    for n, learner in enumerate(ids):  # what POST /v1/learners writes
        decision = passport_domain.register(
            learner, f"learner-{n}", f"Learner {n}", existing=None, handle_owner=None, now=now
        )
        await store.write([Change(c, k, d) for (c, k), d in decision.docs.items()], offsets={}, outbox=[])
    runtime = ProjectionRuntime(PassportProjection(), store, service="bench")
    records = [
        Rec(new.topic, 0, offset, new.key.encode(), encode(new))
        for offset, new in enumerate(new_event(p, source="bench") for p in payloads)
    ]
    for begin in range(0, len(records), 1000):
        await runtime.handle(records[begin : begin + 1000])
    evidence = sum(1 for p in payloads if isinstance(p, EvidenceRecorded))
    return store, ids, evidence


async def timed(call: Callable[[], Awaitable[httpx.Response]], n: int, status: int = 200) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = await call()
        times.append(1000 * (time.perf_counter() - started))
        if response.status_code != status:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")
    return times


def summary(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)

    return {
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(times), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lemma-bench-pages-"))
    started = time.perf_counter()
    store, ids, evidence = await build_store(workdir / "passport.db", args.learners, args.sessions, args.seed)
    built_s = time.perf_counter() - started
    handles = {learner: f"learner-{n}" for n, learner in enumerate(ids)}
    counts = {learner: await store.count("passport_trail", f"{learner}/") for learner in ids}
    deepest = max(ids, key=lambda learner: counts[learner])
    rng = random.Random(args.seed)
    settings = Settings(environment="test", state_dir=str(workdir))
    app = bootstrap(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    n = args.requests
    emails = iter(range(10 * n))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        first = await client.get(f"/passports/{handles[deepest]}")
        older = re.search(r'href="([^"]+)" rel="next"', first.text)
        second_page = older.group(1).replace("&amp;", "&") if older else None

        def get(path: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: client.get(path)

        def random_passport(html: bool) -> Callable[[], Awaitable[httpx.Response]]:
            prefix = "/passports/" if html else "/v1/passports/"
            return lambda: client.get(prefix + handles[rng.choice(ids)])

        def form() -> Awaitable[httpx.Response]:
            return client.post("/waitlist", data={"email": f"p{next(emails)}@example.org", "skill": SKILL})

        def api_join() -> Awaitable[httpx.Response]:
            return client.post("/v1/waitlist", json={"email": f"j{next(emails)}@example.org", "skill": SKILL})

        for warm in (get(f"/skills/{SKILL}"), get(f"/v1/skills/{SKILL}"), random_passport(True)):
            await timed(warm, 20)
        pages = {
            "skill_page": (
                await timed(get(f"/skills/{SKILL}"), n),
                await timed(get(f"/v1/skills/{SKILL}"), n),
            ),
            "passport_deepest": (
                await timed(get(f"/passports/{handles[deepest]}"), n),
                await timed(get(f"/v1/passports/{handles[deepest]}"), n),
            ),
            "passport_random": (
                await timed(random_passport(True), n),
                await timed(random_passport(False), n),
            ),
            "waitlist_form": (await timed(form, n), await timed(api_join, n, status=202)),
        }
        if second_page is not None:  # the deepest trail has more than one page
            pages["passport_second_trail_page"] = (
                await timed(get(second_page), n),
                await timed(get(f"/v1/passports/{handles[deepest]}"), n),
            )
    await store.close()
    figures: dict[str, dict[str, Any]] = {
        name: {
            "page": summary(html),
            "json_baseline": summary(api),
            "p95_ratio": round(summary(html)["p95_ms"] / summary(api)["p95_ms"], 2),
        }
        for name, (html, api) in pages.items()
    }
    meets = all(f["page"]["p95_ms"] < TARGET_P95_MS for f in figures.values())
    return {
        "benchmark": "pages",
        "learners": len(ids),
        "evidence_items": evidence,
        "deepest_trail": counts[deepest],
        "store_built_s": round(built_s, 1),
        "requests_per_page": n,
        "figures": figures,
        "target": f"p95 server time < {TARGET_P95_MS:g} ms for every page",
        "meets_targets": meets,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=8, help="sessions per learner")
    parser.add_argument("--requests", type=int, default=300, help="calls per page and per baseline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    out = asyncio.run(run(args))
    print(
        f"pages: {out['learners']} learners, {out['evidence_items']:,} evidence items "
        f"(deepest trail {out['deepest_trail']}), store built in {out['store_built_s']} s; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"  {'page':<28}{'p50':>8}{'p95':>8}{'p99':>8}   {'JSON p50':>9}{'p95':>8}   p95 ratio")
    for name, f in out["figures"].items():
        page, api = f["page"], f["json_baseline"]
        print(
            f"  {name:<28}{page['p50_ms']:>8.2f}{page['p95_ms']:>8.2f}{page['p99_ms']:>8.2f}   "
            f"{api['p50_ms']:>9.2f}{api['p95_ms']:>8.2f}   {f['p95_ratio']:>6.2f}"
        )
    print(f"target: {out['target']}: {'met' if out['meets_targets'] else 'MISSED'}")
    print(json.dumps(out))
    return 0 if out["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
