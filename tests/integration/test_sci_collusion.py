"""A pact found on a real broker and store: the sci service's calibration job suspects the pair
who rate each other far above how everyone else rates them, discounts their ratings of each
other in their Proof, announces it on the log and shows it to operators only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.sci.app import bootstrap
from services.sci.calibration import Rating, calibrate
from services.sci.domain import EvidenceItem, facts_of, score
from shared.auth import mint_token
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import EvidenceRecorded, RatersCalibrated
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, read_until

SKILL = "backend-development"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def truth(n: int) -> float:
    return 1.5 + (n % 7) * 0.45


async def test_a_pair_who_rate_each_other_up_is_suspected_discounted_and_shown_to_operators(
    kafka: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    crowd = [f"c{run}-{i:02d}" for i in range(24)]
    ann, bob = crowd[0], crowd[10]
    ratings: list[tuple[str, str, str, float]] = []  # (ratee, rater, id, value)
    for i, rater in enumerate(crowd):
        for k in range(1, 5):
            j = (i + k) % len(crowd)
            ratings.append((crowd[j], rater, f"{rater}>{crowd[j]}", truth(j)))
    for n in range(3):  # the pact: three sessions together, each rating the other 1.5 up
        ratings.append((bob, ann, f"{ann}>{bob}#{n}", min(5.0, truth(10) + 1.5)))
        ratings.append((ann, bob, f"{bob}>{ann}#{n}", min(5.0, truth(0) + 1.5)))
    events: list[CloudEvent] = []
    for ratee, rater, rid, value in ratings:
        at = T0 + timedelta(minutes=len(events))
        payload = EvidenceRecorded(
            evidence_id=rid,
            learner_id=ratee,
            skill=SKILL,
            session_id=rid,
            rater_id=rater,
            scores={"api-design": round(value)},
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
    ops = {"Authorization": f"Bearer {mint_token(cfg, 'operator', role='ops')}"}
    learner = {"Authorization": f"Bearer {mint_token(cfg, ann)}"}
    async with serving(bootstrap(cfg)) as client:
        await publish(kafka, events)

        async def suspected() -> dict[str, Any] | None:
            body = (await client.get("/ops/collusion", params={"skill": SKILL}, headers=ops)).json()
            skills = body.get("skills", [])
            return skills[0] if skills and [ann, bob] in skills[0]["pairs"] else None

        found = await eventually(suspected, timeout=30)
        assert isinstance(found, dict) and [ann, bob] in found["groups"]
        assert not any(run in name for pair in found["pairs"] if pair != [ann, bob] for name in pair)
        assert (await client.get("/ops/collusion", headers=learner)).status_code == 403
        metrics = (await client.get("/metrics")).text
        assert f'lemma_collusion_suspects{{service="sci",skill="{SKILL}"}}' in metrics

        # bob's Proof discounts ann's ratings of him: near what the crowd sees, not what she gives
        detail = (await client.get(f"/v1/scores/{bob}/{SKILL}")).json()
        items = [
            EvidenceItem(
                evidence_id=rid,
                session_id=rid,
                rater_id=rater,
                mean=float(round(v)),
                specialty=None,
                occurred_at=T0,
            )
            for ratee, rater, rid, v in ratings
            if ratee == bob
        ]
        crowd_only = [i for i in items if i.rater_id != ann]
        pooled = [Rating(r, rater, rid, float(round(v))) for r, rater, rid, v in ratings]
        undefended = calibrate(pooled, detect_collusion=False).correction()
        inflated = score(facts_of(items), T0, undefended, learner_id=bob).proof
        honest = score(facts_of(crowd_only), T0, undefended, learner_id=bob).proof
        assert abs(detail["parts"]["proof"]["value"] - honest) < abs(inflated - honest) / 2

        # the calibration on the log carries the pair, so an audit scores as the service did
        def announced(rs: list[Any]) -> bool:
            return any(
                isinstance(e.data, RatersCalibrated) and [ann, bob] in [list(p) for p in e.data.collusive]
                for e in (decode(r.value) for r in rs)
                if e.key == SKILL
            )

        await read_until(kafka, Topic.SCI.value, announced)
