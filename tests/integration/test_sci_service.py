"""The sci service on a real broker and SQLite: evidence, no-shows and claims in; scores over HTTP
and SciUpdated / TierChanged out on ``lemma.sci.v1`` keyed by learner id."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import ConsumerRecord

from services.sci.app import bootstrap
from services.sci.calibration import Rating, calibrate
from services.sci.domain import EvidenceItem, facts_of, score
from shared.auth import mint_token
from shared.events import decode, new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    RatersCalibrated,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
    TierChanged,
)
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import eventually, publish, read_until

ML = "machine-learning"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=5)
PARTS = ("practice", "proof", "reliability", "freshness")


def settings(kafka: str, tmp_path: Path, calibrate_every_s: float = 0) -> Settings:
    """Calibration off unless asked for: these scores are checked against the uncalibrated rules."""
    return Settings(
        environment="test",
        kafka_bootstrap=kafka,
        state_dir=str(tmp_path),
        sci_calibration_interval_s=calibrate_every_s,
        sci_calibration_min_ratings=10,
    )


def evidence(
    learner: str, n: int, value: int, at: datetime, deployment: int | None = None, rater: str | None = None
) -> CloudEvent:
    """A rating of ``value`` on every dimension (``deployment``: that one scored apart) by
    ``rater`` (default ``rater-{n}``, shared by every learner rated this way)."""
    payload = EvidenceRecorded(
        evidence_id=f"{learner}-ev-{n}",
        learner_id=learner,
        skill=ML,
        specialty="nlp",
        session_id=f"{learner}-s-{n}",
        rater_id=rater or f"rater-{n}",
        scores={
            "model-selection": value,
            "feature-engineering": value,
            "evaluation-metrics": value,
            "generalization": value,
            "deployment": value if deployment is None else deployment,
        },
        format="build",
        occurred_at=at,
    )
    return new_event(payload, source="evidence", time=at)


def expected(events: list[CloudEvent], no_show_sessions: tuple[str, ...] = ()) -> dict[str, float]:
    items = [EvidenceItem.from_event(e.data) for e in events if isinstance(e.data, EvidenceRecorded)]
    result = score(facts_of(items, no_show_sessions), AS_OF)
    return {"sci": result.sci, **result.parts()}


def sci_events(records: list[ConsumerRecord[bytes, bytes]], learner: str) -> list[CloudEvent]:
    return [e for e in map(lambda r: decode(r.value), records) if e.key == learner]


def updated_to(records: list[ConsumerRecord[bytes, bytes]], learner: str, sessions: int) -> bool:
    return any(
        isinstance(e.data, SciUpdated) and e.data.sessions == sessions for e in sci_events(records, learner)
    )


def ascending(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


async def detail(client: httpx.AsyncClient, learner: str, skill: str = ML) -> dict[str, Any] | None:
    r = await client.get(f"/v1/scores/{learner}/{skill}", params={"freshness_at": AS_OF.isoformat()})
    return r.json() if r.status_code == 200 else None


async def test_scores_from_evidence_claims_and_no_shows(kafka: str, tmp_path: Path) -> None:
    ann = f"ann-{uuid.uuid4().hex[:8]}"
    first = [evidence(ann, 1, 4, T0), evidence(ann, 2, 5, T0 + timedelta(days=1))]
    async with serving(bootstrap(settings(kafka, tmp_path))) as client:
        await publish(kafka, first)

        async def two_sessions() -> dict[str, Any] | None:
            body = await detail(client, ann)
            return body if body and body["sessions"] == 2 else None

        body = await eventually(two_sessions, timeout=20)
        assert isinstance(body, dict)
        assert body["sci"] > 0 and body["tier"] == 2 and body["tier_name"] == "Practicing"
        assert body["sci"] == round(sum(body["parts"][p]["value"] for p in PARTS), 2)
        assert {p: body["parts"][p]["value"] for p in PARTS} == {p: expected(first)[p] for p in PARTS}
        assert body["parts"]["practice"]["reason"].startswith("Practice 7.1/25: 2 sessions;")
        assert body["distinct_raters"] == 2 and body["specialties"]["nlp"]["sessions"] == 2
        assert body["as_of"].startswith(AS_OF.isoformat()[:19])
        # two ratings: a wide band around the SCI, Proof's; the tier is earned at its low end
        band = body["band"]
        assert band["half_width"] == body["parts"]["proof"]["band"] > 5 and band["confidence"] == 0.9
        assert band["low"] == round(body["sci"] - band["half_width"], 2) < body["sci"] < band["high"]
        assert body["parts"]["practice"]["band"] == 0 and "from 2 ratings" in band["meaning"]
        # depth per rubric dimension, in the catalog's order: every dimension scored alike, so each
        # sits at the overall level (Proof's mean on the rubric's 1..5)
        rubric = body["rubric"]
        assert [d["dimension"] for d in rubric] == [
            "model-selection",
            "feature-engineering",
            "evaluation-metrics",
            "generalization",
            "deployment",
        ]
        overall = 1 + 4 * body["parts"]["proof"]["value"] / 40
        assert all(abs(d["level"] - overall) <= 0.05 and d["ratings"] == 2 for d in rubric)  # to the tenth
        assert rubric[0]["name"] == "Model selection"

        listing = (await client.get(f"/v1/scores/{ann}", params={"freshness_at": AS_OF.isoformat()})).json()
        assert listing["learner_id"] == ann and len(listing["skills"]) == 1
        row = listing["skills"][0]
        assert row["skill"] == ML and row["sci"] == body["sci"] and row["sessions"] == 2
        assert (row["band"], row["low"], row["high"]) == (band["half_width"], band["low"], band["high"])

        later = await client.get(
            f"/v1/scores/{ann}/{ML}", params={"freshness_at": (AS_OF + timedelta(days=90)).isoformat()}
        )
        assert later.json()["parts"]["freshness"]["value"] < body["parts"]["freshness"]["value"]

        records = await read_until(kafka, Topic.SCI.value, lambda rs: updated_to(rs, ann, 2))
        mine = sci_events(records, ann)
        updates = [e.data for e in mine if isinstance(e.data, SciUpdated)]
        changes = [e.data for e in mine if isinstance(e.data, TierChanged)]
        # one update per batch that folded facts (both facts may come in one): revisions only grow
        assert ascending([u.sessions for u in updates]) and updates[-1].sessions == 2
        assert updates[-1].tier == 2 and [u.revision for u in updates] == [u.sessions for u in updates]
        assert [(c.from_tier, c.to_tier) for c in changes] == [(1, 2)]
        assert updates[-1].as_of == T0 + timedelta(days=1)
        assert updates[-1].rubric is not None and set(updates[-1].rubric) == {d["dimension"] for d in rubric}

        # a redelivery, a second copy under a new event id, then a new item as the sentinel
        copy = first[0].model_copy(update={"id": str(uuid.uuid4())})
        sentinel = evidence(ann, 3, 3, T0 + timedelta(days=2))
        await publish(kafka, [first[0], copy, sentinel])

        async def three_sessions() -> dict[str, Any] | None:
            got = await detail(client, ann)
            return got if got and got["sessions"] == 3 else None

        body = await eventually(three_sessions, timeout=20)
        assert isinstance(body, dict)
        assert body["sci"] == expected([*first, sentinel])["sci"]
        records = await read_until(kafka, Topic.SCI.value, lambda rs: updated_to(rs, ann, 3))
        updates = [e.data for e in sci_events(records, ann) if isinstance(e.data, SciUpdated)]
        # the redelivery and the copy fold nothing, so they announce nothing
        assert ascending([u.revision for u in updates]) and updates[-1].revision == 3
        assert [u.sessions for u in updates] == [u.revision for u in updates]

        assert (await client.get(f"/v1/scores/{ann}/no-such-skill")).status_code == 422
        missing = await client.get(f"/v1/scores/{ann}/data-engineering")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert (
            await client.get(f"/v1/scores/{ann}/{ML}", params={"freshness_at": "yesterday"})
        ).status_code == 422
        # a valid ISO time that UTC cannot hold (before year 1 once shifted): 422, not a 500
        for path in (f"/v1/scores/{ann}", f"/v1/scores/{ann}/{ML}"):
            for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
                for name in ("freshness_at", "as_of"):  # as_of: its deprecated name
                    out = await client.get(path, params={name: edge})
                    assert out.status_code == 422, (path, edge, out.text)
                    assert out.headers["content-type"] == "application/problem+json"
                    assert out.json()["detail"].startswith(name)
        old_name = await client.get(f"/v1/scores/{ann}", params={"as_of": AS_OF.isoformat()})
        new_name = await client.get(f"/v1/scores/{ann}", params={"freshness_at": AS_OF.isoformat()})
        assert old_name.json() == new_name.json() and old_name.headers["Deprecation"].startswith("@")
        assert "Deprecation" not in (await client.get(f"/v1/scores/{ann}")).headers
        assert (await client.get("/v1/scores/nobody-at-all")).json() == {
            "learner_id": "nobody-at-all",
            "skills": [],
        }

        # four raters see bo weaker on deployment than on the rest: it sits below their overall
        # level, the others above it (shrunk: four ratings do not move it by the full point)
        bo = f"bo-{uuid.uuid4().hex[:8]}"
        # (raters of bo's own: on the shared broker the calibration test below calibrates this
        # skill's every rating, and a tiny skill's estimate of how much raters differ in
        # leniency is fragile: four more ratings by ann's raters took it, and every bias, to 0)
        bo_evidence = [
            evidence(bo, n, 4, T0 + timedelta(hours=n), deployment=3, rater=f"{bo}-rater-{n}")
            for n in range(4)
        ]
        await publish(kafka, bo_evidence)

        async def four_sessions() -> dict[str, Any] | None:
            got = await detail(client, bo)
            return got if got and got["sessions"] == 4 else None

        leaning = await eventually(four_sessions, timeout=20)
        assert isinstance(leaning, dict)
        level = {d["dimension"]: d["level"] for d in leaning["rubric"]}
        overall = 1 + 4 * leaning["parts"]["proof"]["value"] / 40
        assert level["deployment"] < overall - 0.5 < overall < level["model-selection"] < overall + 0.25


async def claims_and_no_shows(kafka: str, client: httpx.AsyncClient) -> None:
    """Claims (passport topic) show tier 1; a no-show (sessions topic) lands in the session's skill."""
    run = uuid.uuid4().hex[:8]
    cy, dee, session = f"cy-{run}", f"dee-{run}", f"ns-{run}"
    claim = new_event(
        SkillClaimed(learner_id=cy, skill="data-engineering", self_level="expert"), source="passport"
    )
    scheduled = new_event(
        SessionScheduled(session_id=session, match_id=session, skill=ML, participants=(cy, dee)),
        source="sessions",
        time=T0,
    )
    abandoned = new_event(
        SessionAbandoned(session_id=session, abandoned_by=dee, reason="partner-absent", no_show=cy),
        source="sessions",
        time=T0 + timedelta(hours=2),
    )
    work = evidence(cy, 1, 4, T0 + timedelta(days=1))
    await publish(kafka, [claim, scheduled, abandoned, abandoned, work])

    claimed = await eventually(lambda: detail(client, cy, "data-engineering"), timeout=20)
    assert isinstance(claimed, dict)
    assert (claimed["sci"], claimed["tier"], claimed["tier_name"]) == (0.0, 1, "Claimed")

    async def with_no_show() -> dict[str, Any] | None:
        body = await detail(client, cy)
        return body if body and "1 of 2 sessions" in body["parts"]["reliability"]["reason"] else None

    body = await eventually(with_no_show, timeout=20)
    assert isinstance(body, dict)
    assert body["parts"]["reliability"]["value"] == expected([work], (session,))["reliability"]
    assert body["sci"] == expected([work], (session,))["sci"]


async def test_the_calibration_job_recalibrates_the_skill_and_announces_what_moved(
    kafka: str, tmp_path: Path
) -> None:
    """Ratings from a lenient rater and honest ones; the job calibrates over all of them, the
    scores served are the calibrated ones, and SciUpdated carries the calibration's size."""
    run = uuid.uuid4().hex[:6]
    learners = [f"cal-{run}-{n}" for n in range(6)]
    raters = [f"judge-{run}-{n}" for n in range(4)]
    events: list[CloudEvent] = []
    recorded: list[EvidenceRecorded] = []
    for i, learner in enumerate(learners):
        for j, rater in enumerate(raters):
            value = min(5, 2 + i % 3 + (1 if j == 0 else 0))  # judge 0 adds a point
            payload = EvidenceRecorded(
                evidence_id=f"{learner}-{rater}",
                learner_id=learner,
                skill=ML,
                specialty="nlp",
                session_id=f"{learner}-s{j}",
                rater_id=rater,
                scores={"model-selection": value, "deployment": value},
                occurred_at=T0 + timedelta(hours=j),
            )
            recorded.append(payload)
            events.append(new_event(payload, source="evidence", time=T0 + timedelta(hours=j)))
    async with serving(bootstrap(settings(kafka, tmp_path, calibrate_every_s=0.3))) as client:
        await publish(kafka, events)
        # the broker is shared: the skill's rating set is everything on the topic so far
        ids = {p.evidence_id for p in recorded}
        records = await read_until(
            kafka,
            Topic.EVIDENCE.value,
            lambda rs: ids <= {decode(r.value).data.evidence_id for r in rs},  # type: ignore[attr-defined]
        )
        ratings = sorted(
            {
                Rating(ratee_id=d.learner_id, rater_id=d.rater_id, rating_id=d.evidence_id, value=item.mean)
                for d in (decode(r.value).data for r in records)
                if isinstance(d, EvidenceRecorded) and d.skill == ML
                for item in [EvidenceItem.from_event(d)]
            }
        )

        async def calibrated() -> dict[str, Any] | None:
            body = await detail(client, learners[0])
            return body if body and body["calibration"]["ratings"] >= len(ratings) else None

        body = await eventually(calibrated, timeout=30)
        assert isinstance(body, dict)
        # the job sees the same rating set as this test, so it gets the same calibration
        correction = calibrate(ratings).correction()
        assert body["calibration"] == {
            "version": correction.version,
            "ratings": len(ratings),
            "digest": correction.digest,
        }
        assert correction.bias[raters[0]] > 0.3  # the lenient judge is found out
        # ... and can read it in their own rater profile, which nobody else but operators may
        cfg = settings(kafka, tmp_path)

        def as_(who: str, role: str = "learner") -> dict[str, str]:
            return {"Authorization": f"Bearer {mint_token(cfg, who, role=role)}"}

        lenient = f"/v1/raters/{raters[0]}"
        profile = (await client.get(lenient, headers=as_(raters[0]))).json()
        (mine,) = profile["skills"]
        assert (
            mine["skill"] == ML
            and mine["ratings"] == len(learners)
            and mine["calibrated_over"] == len(ratings)
        )
        assert mine["bias"] == round(correction.bias[raters[0]], 2)
        assert f"about {mine['bias']:.1f} points above your peers'" in mine["summary"][0]
        fair = (await client.get(f"/v1/raters/{raters[1]}", headers=as_("operator", "ops"))).json()
        assert abs(fair["skills"][0]["bias"]) < mine["bias"]
        assert (await client.get(lenient, headers=as_(raters[1]))).status_code == 403
        assert (await client.get(lenient)).status_code == 401
        assert (await client.get(f"/v1/raters/{learners[0]}", headers=as_(learners[0]))).json()[
            "skills"
        ] == []
        for learner in learners:
            got = await detail(client, learner)
            assert isinstance(got, dict)
            items = [EvidenceItem.from_event(p) for p in recorded if p.learner_id == learner]
            want = score(facts_of(items), AS_OF, correction)
            assert got["sci"] == want.sci and got["parts"]["proof"]["value"] == want.proof
            assert "corrected for how lenient or harsh" in got["parts"]["proof"]["reason"]

        def recalibrated(rs: list[ConsumerRecord[bytes, bytes]]) -> bool:
            return any(
                isinstance(e.data, SciUpdated) and e.data.calibration == len(ratings)
                for learner in learners
                for e in sci_events(rs, learner)
            )

        records = await read_until(kafka, Topic.SCI.value, recalibrated)
        moved = [
            e.data
            for learner in learners
            for e in sci_events(records, learner)
            if isinstance(e.data, SciUpdated) and e.data.calibration == len(ratings)
        ]
        assert moved and all(u.revision == len(raters) for u in moved)  # same facts, newer calibration
        assert len({r.rating_id for r in ratings}) == len(ratings)

        # the same write announced the biases, keyed by skill, for the passport's evidence trail
        def announced(rs: list[ConsumerRecord[bytes, bytes]]) -> list[RatersCalibrated]:
            return [
                e.data
                for e in map(lambda r: decode(r.value), rs)
                if isinstance(e.data, RatersCalibrated) and e.data.digest == correction.digest
            ]

        records = await read_until(kafka, Topic.SCI.value, lambda rs: raters[0] in _biases(announced(rs)))
        parts = announced(records)
        assert {(p.skill, p.version, p.ratings) for p in parts} == {(ML, correction.version, len(ratings))}
        assert _biases(parts)[raters[0]] == correction.bias[raters[0]] > 0.3
        calibrations = [(r.key, decode(r.value).data) for r in records]
        keyed = {
            (key, data.skill.encode()) for key, data in calibrations if isinstance(data, RatersCalibrated)
        }
        assert (ML.encode(), ML.encode()) in keyed and all(k == s for k, s in keyed)  # keyed by skill


def _biases(parts: list[RatersCalibrated]) -> dict[str, float]:
    return {rater: bias for p in parts for rater, bias in p.bias.items()}
