"""Depth per rubric dimension on a real broker and store: the sci service's calibration job finds
raters who are harsh on one dimension from the rubric scores it stored, announces their severity
on the log, and the score route shows each learner's level per dimension with it taken out."""

from __future__ import annotations

import functools
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.sci.app import bootstrap
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import EvidenceRecorded, RatersCalibrated
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, read_until

SKILL = "data-engineering"
DIMENSIONS = ("data-modeling", "pipeline-design", "data-quality", "performance", "operations")
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def level(i: int, dimension: str) -> float:
    """Learner ``i``'s true level: 3, with odd learners strong on operations and even ones weak."""
    lean = 1.0 if i % 2 else -1.0
    return 3.0 + (lean if dimension == "operations" else -lean / 4)


async def test_raters_harsh_on_one_dimension_are_found_and_depth_is_shown_without_them(
    kafka: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    rng = random.Random(7)
    crowd = [f"r{run}-{i:02d}" for i in range(24)]
    harsh = set(crowd[::4])  # score data quality 1.5 below what they see; every learner meets some
    events: list[CloudEvent] = []
    given: dict[str, list[dict[str, int]]] = {learner: [] for learner in crowd}
    for i, rater in enumerate(crowd):
        for k in range(1, 9):
            j = (i + k) % len(crowd)
            lean = {d: -1.5 if rater in harsh and d == "data-quality" else 0.0 for d in DIMENSIONS}
            scores = {d: min(5, max(1, round(level(j, d) + lean[d] + rng.gauss(0, 0.6)))) for d in DIMENSIONS}
            given[crowd[j]].append(scores)
            at = T0 + timedelta(minutes=len(events))
            payload = EvidenceRecorded(
                evidence_id=f"{rater}>{crowd[j]}",
                learner_id=crowd[j],
                skill=SKILL,
                session_id=f"{rater}>{crowd[j]}",
                rater_id=rater,
                scores=scores,
                occurred_at=at,
            )
            events.append(new_event(payload, source="evidence", time=at))
    cfg = Settings(
        environment="test",
        kafka_bootstrap=kafka,
        state_dir=str(tmp_path),
        sci_calibration_interval_s=0.3,
        sci_calibration_min_ratings=50,
    )
    async with serving(bootstrap(cfg)) as client:
        await publish(kafka, events)

        def severity_of(rs: list[Any]) -> dict[str, dict[str, float]]:
            """The severities of the latest calibration over all these ratings on the log."""
            found: dict[str, dict[str, float]] = {}
            parts = [decode(r.value) for r in rs]
            for e in sorted(
                parts,
                key=lambda e: (
                    (e.data.ratings, e.time) if isinstance(e.data, RatersCalibrated) else (0, e.time)
                ),
            ):
                if e.key == SKILL and isinstance(e.data, RatersCalibrated) and e.data.ratings >= len(events):
                    found.update(e.data.severity)
            return found

        records = await read_until(
            kafka, Topic.SCI.value, lambda rs: set(severity_of(rs)) >= harsh, timeout=30
        )
        on_quality = {r: severity_of(records).get(r, {}).get("data-quality", 0.0) for r in crowd}
        # the harsh raters found harsh there, against the average rater (the rest lean a little up)
        assert statistics.fmean(on_quality[r] for r in harsh) < -0.4
        assert max(on_quality[r] for r in harsh) < min(on_quality[r] for r in crowd if r not in harsh)

        async def depth_of(learner: str) -> dict[str, float] | None:
            r = await client.get(f"/v1/scores/{learner}/{SKILL}")
            body = r.json() if r.status_code == 200 else None
            if not body or body["calibration"]["ratings"] < len(events) or not body["rubric"]:
                return None
            return {d["dimension"]: d["level"] for d in body["rubric"]}

        ours: list[float] = []
        plain: list[float] = []
        leaning_shown = 0
        for i, learner in enumerate(crowd):
            shown = await eventually(functools.partial(depth_of, learner), timeout=20)
            assert isinstance(shown, dict) and list(shown) == list(DIMENSIONS)  # the catalog's order
            others = [shown[d] for d in DIMENSIONS if d != "operations"]
            leaning_shown += shown["operations"] > max(others) if i % 2 else shown["operations"] < min(others)
            truth = level(i, "data-quality")
            ours.append(abs(shown["data-quality"] - truth))
            plain.append(abs(statistics.fmean(s["data-quality"] for s in given[learner]) - truth))
        assert leaning_shown >= 20  # operations stands out the way it truly does for nearly everyone
        # data quality shown nearer the truth than the plain mean of its scores, harshness and all
        assert statistics.fmean(ours) < statistics.fmean(plain)
