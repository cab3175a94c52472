"""The passport service on a real broker and SQLite: registration, claims, passports, skill pages.

It runs on topics of its own: skill figures count every learner on the topics, so events
other tests leave on the shared topics would blur the exact counts checked here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.passport.app import bootstrap
from services.passport.domain import WAITLIST
from shared.auth import mint_token
from shared.events import new_event
from shared.events.payloads import EvidenceRecorded, RatersCalibrated, SciUpdated
from shared.events.registry import Topic
from shared.settings import Settings
from shared.store import Store
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

ML = "machine-learning"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 2,
}


@pytest.fixture
def broker(private_kafka: Namespace) -> Namespace:
    """Topics of this test's own: skill figures count every learner on the topics."""
    return private_kafka


def auth(settings: Settings, learner_id: str, role: str = "learner") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, learner_id, role=role)}"}


def evidence(learner: str, session: str, specialty: str) -> EvidenceRecorded:
    return EvidenceRecorded(
        evidence_id=f"ev-{learner}-{session}",
        learner_id=learner,
        skill=ML,
        specialty=specialty,
        session_id=session,
        rater_id="rater",
        scores=SCORES,
        format="build",
        occurred_at=T0,
    )


async def get_json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_passport_service(broker: Namespace, tmp_path: Path) -> None:
    """One app for every check: each start joins three consumer groups, which takes seconds."""
    settings = broker.settings(state_dir=str(tmp_path))
    app = bootstrap(settings)
    async with serving(app) as client:
        await register_claim_and_see_passport_and_skill_page(client, settings, broker)
        await waitlist_is_public_and_idempotent_per_email(client, app.state.ctx.store)
        await freshness_decays_at_read_time(client, settings, broker)
        await evidence_trail_is_newest_first_paginated_and_calibrated(
            client, settings, broker, app.state.ctx.store
        )


async def register_claim_and_see_passport_and_skill_page(
    client: httpx.AsyncClient, settings: Settings, broker: Namespace
) -> None:
    ada, bob = auth(settings, "ada-id"), auth(settings, "bob-id")
    body = {"handle": "ada", "display_name": "Ada Lovelace"}
    assert (await client.post("/v1/learners", json=body)).status_code == 401
    created = await client.post("/v1/learners", json=body, headers=ada)
    assert created.status_code == 201, created.text
    assert created.json()["learner_id"] == "ada-id" and created.json()["handle"] == "ada"
    assert (
        await client.post("/v1/learners", json={**body, "handle": "ada2"}, headers=ada)
    ).status_code == 409
    taken = await client.post("/v1/learners", json=body, headers=bob)
    assert taken.status_code == 409 and taken.headers["content-type"] == "application/problem+json"
    bad = await client.post("/v1/learners", json={"handle": "Bo", "display_name": "Bob"}, headers=bob)
    assert bad.status_code == 422
    assert (
        await client.post("/v1/learners", json={"handle": "bob", "display_name": "Bob"}, headers=bob)
    ).status_code == 201

    claim = {"self_level": "intermediate"}
    path = f"/v1/learners/ada-id/skills/{ML}"
    assert (await client.put(path, json=claim)).status_code == 401
    assert (await client.put(path, json=claim, headers=bob)).status_code == 403
    assert (await client.put(path, json={"self_level": "guru"}, headers=ada)).status_code == 422
    assert (
        await client.put("/v1/learners/ada-id/skills/knitting", json=claim, headers=ada)
    ).status_code == 422
    ops = auth(settings, "operator", role="ops")
    assert (await client.put(f"/v1/learners/ghost/skills/{ML}", json=claim, headers=ops)).status_code == 404
    claimed = await client.put(path, json=claim, headers=ada)
    assert claimed.status_code == 200 and claimed.json()["self_level"] == "intermediate"

    async def claimed_on_passport() -> Any:
        passport = await get_json(client, "/v1/passports/ada")
        return passport if passport["skills"] else None

    passport = await eventually(claimed_on_passport)
    assert passport["learner_id"] == "ada-id" and passport["display_name"] == "Ada Lovelace"
    (entry,) = passport["skills"]
    assert entry["skill"] == ML and entry["tier"] == 1 and entry["sci"] == 0 and entry["sessions"] == 0
    assert (await get_json(client, "/v1/passports/ada-id"))["handle"] == "ada"
    page = await get_json(client, f"/v1/skills/{ML}")
    assert page["learners_verifying"] == 1 and page["tier_distribution"] == {
        "1": 1,
        "2": 0,
        "3": 0,
        "4": 0,
    }
    assert page["avg_sci"] == 0 and page["sessions_completed"] == 0 and len(page["rubric"]) == 5

    first = new_event(evidence("ada-id", "s1", "nlp"), source="test", time=T0)
    copy = new_event(evidence("ada-id", "s1", "nlp"), source="test", time=T0)  # a new id, same item
    partner = new_event(evidence("bob-id", "s1", "nlp"), source="test", time=T0)
    score = SciUpdated(
        learner_id="ada-id",
        skill=ML,
        sci=45.62,
        practice=4.12,
        proof=20.5,
        reliability=6.0,
        freshness=15.0,
        tier=2,
        sessions=1,
        as_of=T0,
    )
    await broker.publish([first, first, copy, partner, new_event(score, source="test", time=T0)])
    # Same key, so folded after the copies: once s2 shows, every copy of s1 has been seen.
    await broker.publish([new_event(evidence("ada-id", "s2", "tabular"), source="test", time=T0)])

    async def scored() -> Any:
        passport = await get_json(client, "/v1/passports/ada")
        skill = passport["skills"][0]
        return skill if skill["sessions"] == 2 and skill["sci"] > 0 else None

    entry = await eventually(scored)
    assert entry["tier"] == 2 and entry["sci"] == 45.62 and entry["proof"] == 20.5
    assert entry["specialties"] == {"nlp": 1, "tabular": 1}
    assert entry["last_evidence_at"].startswith("2026-11-01T10:00:00")

    async def both_learners() -> Any:
        page = await get_json(client, f"/v1/skills/{ML}")
        return page if page["learners_verifying"] == 2 else None

    page = await eventually(both_learners)
    assert page["sessions_completed"] == 2  # s1 once, though two learners and three copies
    assert page["tier_distribution"] == {"1": 1, "2": 1, "3": 0, "4": 0}
    assert page["avg_sci"] == round(45.62 / 2, 2) and page["avg_freshness"] == 7.5

    assert (await client.delete(path, headers=bob)).status_code == 403
    assert (await client.delete(path, headers=ada)).status_code == 200
    assert (await client.delete(path, headers=ada)).status_code == 404

    async def unclaimed() -> Any:
        skill = (await get_json(client, "/v1/passports/ada"))["skills"][0]
        return skill["self_level"] is None

    await eventually(unclaimed)  # evidence keeps the skill on the passport
    assert (await get_json(client, f"/v1/skills/{ML}"))["learners_verifying"] == 2

    missing = await client.get("/v1/passports/nobody")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert (await client.get("/v1/skills/knitting")).status_code == 404
    assert {s["id"] for s in await get_json(client, "/v1/skills")} >= {ML, "data-engineering"}

    registered = await broker.read_until(Topic.PASSPORT, lambda rs: sum(r.key == b"ada-id" for r in rs) >= 3)
    assert registered and all(b"Lovelace" not in (r.value or b"") for r in registered)


async def waitlist_is_public_and_idempotent_per_email(client: httpx.AsyncClient, store: Store) -> None:
    first = await client.post("/v1/waitlist", json={"email": "Grace@Example.com", "skill": ML})
    assert first.status_code == 202 and first.json()["first_session_free"] is True
    again = await client.post("/v1/waitlist", json={"email": "  grace@example.COM "})
    assert again.status_code == 202 and again.json() == first.json()
    assert (await client.post("/v1/waitlist", json={"email": "grace@"})).status_code == 422
    assert (
        await client.post("/v1/waitlist", json={"email": "g@x.io", "skill": "knitting"})
    ).status_code == 422
    assert await store.count(WAITLIST) == 1
    entry = await store.get(WAITLIST, "grace@example.com")
    assert entry is not None and entry["skills"] == [ML]


async def freshness_decays_at_read_time(
    client: httpx.AsyncClient, settings: Settings, broker: Namespace
) -> None:
    """One SciUpdated, read at its as_of and 90 days later: Freshness and the SCI fall by the same
    amount (15 e^(-10/60) = 12.70 to 15 e^(-100/60) = 2.83) with no new event; the tier stays."""
    de, cy = "data-engineering", auth(settings, "cy-id")
    body = {"handle": "cyd", "display_name": "Cy D"}
    assert (await client.post("/v1/learners", json=body, headers=cy)).status_code == 201
    claim = {"self_level": "beginner"}
    assert (await client.put(f"/v1/learners/cy-id/skills/{de}", json=claim, headers=cy)).status_code == 200
    scored_at = T0 + timedelta(days=30)
    score = SciUpdated(
        learner_id="cy-id",
        skill=de,
        sci=47.7,
        practice=10.0,
        proof=20.0,
        reliability=5.0,
        freshness=12.7,
        tier=3,
        sessions=3,
        as_of=scored_at,
        revision=3,
        calibration=4,
        last_evidence_at=scored_at - timedelta(days=10),
    )
    await broker.publish([new_event(score, source="test", time=scored_at)])

    async def read(as_of: str) -> Any:
        response = await client.get("/v1/passports/cyd", params={"freshness_at": as_of})
        assert response.status_code == 200, response.text
        skills = response.json()["skills"]
        return skills[0] if skills and skills[0]["sci"] > 0 else None

    then = await eventually(lambda: read(scored_at.isoformat()))
    later = await read((scored_at + timedelta(days=90)).isoformat())
    assert (then["sci"], then["freshness"], then["tier"]) == (47.7, 12.7, 3)
    assert (later["sci"], later["freshness"], later["tier"]) == (37.83, 2.83, 3)
    assert round(then["freshness"] - later["freshness"], 2) == round(then["sci"] - later["sci"], 2) == 9.87
    naive = await read((scored_at + timedelta(days=90)).replace(tzinfo=None).isoformat())
    assert naive == later  # a naive as_of is UTC
    old_name = await client.get("/v1/passports/cyd", params={"as_of": scored_at.isoformat()})
    assert old_name.json()["as_of"].startswith("2026-12-01T10:00:00") and old_name.json()["skills"][0] == then
    assert old_name.headers["Deprecation"]  # the former name still answers, marked deprecated
    both = {"as_of": scored_at.isoformat(), "freshness_at": (scored_at + timedelta(days=1)).isoformat()}
    assert (await client.get("/v1/passports/cyd", params=both)).status_code == 422
    for bad in ("soon", "0001-01-01T00:00:00+01:00"):
        refused = await client.get("/v1/passports/cyd", params={"freshness_at": bad})
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"


async def evidence_trail_is_newest_first_paginated_and_calibrated(
    client: httpx.AsyncClient, settings: Settings, broker: Namespace, store: Store
) -> None:
    """Five items from a lenient and a fair judge, and two calibrations of the lenient one (the
    newer sent first): the trail lists the items newest first, page by page, each with its mean
    rating and that rating less the newer calibration's bias."""
    dee = auth(settings, "dee-id")
    assert (
        await client.post("/v1/learners", json={"handle": "dee", "display_name": "Dee"}, headers=dee)
    ).status_code == 201
    items = []
    for n in range(5):
        judge = "lenient-judge" if n % 2 == 0 else "fair-judge"
        value = 5 if judge == "lenient-judge" else 3
        payload = EvidenceRecorded(
            evidence_id=f"trail-{n}",
            learner_id="dee-id",
            skill=ML,
            specialty="nlp" if n < 3 else None,
            session_id=f"trail-s{n}",
            rater_id=judge,
            scores={"model-selection": value, "deployment": value - 1},  # mean value - 0.5
            format="build",
            occurred_at=T0 + timedelta(days=n),
        )
        items.append(new_event(payload, source="evidence", time=payload.occurred_at))

    def calibration(ratings: int, bias: float, rater: str = "lenient-judge") -> Any:
        payload = RatersCalibrated(
            skill=ML,
            version="pg1-link-v3",
            digest=f"digest-{ratings}",
            ratings=ratings,
            part=0,
            parts=1,
            bias={rater: bias},
        )
        return new_event(payload, source="sci", time=T0 + timedelta(days=9))

    # the older calibration comes after the newer one; then a sentinel in the same partition (skill)
    sentinel = calibration(1, 0.0, rater="sentinel-judge")
    await broker.publish([calibration(50, 0.6), *items[::-1], items[0], calibration(40, 1.5), sentinel])

    async def whole_trail() -> Any:
        body = await get_json(client, "/v1/passports/dee/evidence?limit=50")
        done = len(body["items"]) == 5 and all(
            i["calibrated_by"] for i in body["items"] if i["evidence_id"] in ("trail-0", "trail-2")
        )
        return body if done else None

    await eventually(lambda: store.get("rater_bias", f"{ML}/sentinel-judge"), timeout=20)
    body = await eventually(whole_trail, timeout=20)
    assert [i["evidence_id"] for i in body["items"]] == [f"trail-{n}" for n in (4, 3, 2, 1, 0)]
    assert body["next_before"] is None
    newest, fair = body["items"][0], body["items"][1]
    assert newest["rating"] == 4.5 and newest["calibrated"] == 3.9 and newest["calibrated_by"] is True
    assert fair["rating"] == 2.5 and fair["calibrated"] == 2.5 and fair["calibrated_by"] is False
    assert newest["skill"] == ML and newest["specialty"] is None and newest["format"] == "build"
    assert body["items"][2]["specialty"] == "nlp"
    assert newest["occurred_at"].startswith("2026-11-05T10:00:00")
    again = await get_json(client, "/v1/passports/dee-id/evidence?limit=50")  # by id as by handle
    assert again == body

    seen: list[str] = []
    params, pages = {"limit": "2"}, 0
    while True:
        response = await client.get("/v1/passports/dee/evidence", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [i["evidence_id"] for i in page["items"]]
        pages += 1
        if page["next_before"] is None:
            break
        assert len(page["items"]) == 2
        params = {"limit": "2", "before": page["next_before"]}
    assert pages == 3 and seen == [f"trail-{n}" for n in (4, 3, 2, 1, 0)]
    assert len((await get_json(client, "/v1/passports/dee/evidence"))["items"]) == 5  # default 10

    for bad in ("limit=0", "limit=51", "limit=many", "before=ada-id/2026", "before="):
        refused = await client.get(f"/v1/passports/dee/evidence?{bad}")
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    missing = await client.get("/v1/passports/nobody/evidence")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
