"""The HTML pages of the passport service on a real broker and SQLite: the skill page shows the
JSON route's figures, the passport shows claimed and verified skills and a paginated, calibrated
evidence trail, the waitlist form works without JavaScript, and unknown pages are real 404s."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.passport.app import bootstrap
from services.passport.domain import WAITLIST
from shared.auth import mint_token
from shared.events import new_event
from shared.events.payloads import EvidenceRecorded, RatersCalibrated, SciUpdated
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

ML = "machine-learning"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
RUBRIC = ["model-selection", "feature-engineering", "evaluation-metrics", "generalization", "deployment"]


@pytest.fixture
def broker(private_kafka: Namespace) -> Namespace:
    """Topics of this test's own: skill figures count every learner on the topics."""
    return private_kafka


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', page)
    assert found, f"no figure {name}"
    return found.group(1)


def part(page: str, name: str) -> str:
    found = re.search(rf'data-part="{name}".*?data-value>([^<]*)<', page, re.S)
    assert found, f"no part {name}"
    return found.group(1)


def one_decimal(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def item(n: int, score: int) -> EvidenceRecorded:
    return EvidenceRecorded(
        evidence_id=f"ev-{n:02d}",
        learner_id="bob-id",
        skill=ML,
        specialty="nlp" if n % 3 else "mlops",
        session_id=f"s-{n}",
        rater_id="lenient" if n % 2 else "fair",
        scores=dict.fromkeys(RUBRIC, score),
        format="build",
        occurred_at=T0 + timedelta(days=n),
    )


async def test_pages(broker: Namespace, tmp_path: Path) -> None:
    settings = broker.settings(state_dir=str(tmp_path))
    app = bootstrap(settings)
    async with serving(app) as client:
        await learners_and_evidence(client, settings, broker)
        await skill_page_shows_the_api_figures(client)
        await passport_shows_skills_and_a_calibrated_paginated_trail(client)
        await waitlist_form(client, app)
        await unknown_pages_are_404_pages(client)


async def learners_and_evidence(client: httpx.AsyncClient, settings: Settings, broker: Namespace) -> None:
    for who, name in (("ada", "Ada <b>Lovelace</b>"), ("bob", "Bob Builder")):
        token = mint_token(settings, f"{who}-id")
        headers = {"Authorization": f"Bearer {token}"}
        created = await client.post(
            "/v1/learners", json={"handle": who, "display_name": name}, headers=headers
        )
        assert created.status_code == 201, created.text
        claimed = await client.put(
            f"/v1/learners/{who}-id/skills/{ML}", json={"self_level": "advanced"}, headers=headers
        )
        assert claimed.status_code == 200, claimed.text
    score = SciUpdated(
        learner_id="bob-id",
        skill=ML,
        sci=61.5,
        practice=15.25,
        proof=26.0,
        reliability=12.25,
        freshness=8.0,
        tier=3,
        sessions=12,
        as_of=T0 + timedelta(days=12),
        revision=12,
        last_evidence_at=T0 + timedelta(days=12),
        band=4.6,
        rubric={"deployment": 2.64, "model-selection": 4.12, "generalization": 3.5},
    )
    calibration = RatersCalibrated(
        skill=ML, version="v", digest="d", ratings=12, part=0, parts=1, bias={"lenient": 0.5}
    )
    events = [item(n, 3 + n % 3) for n in range(1, 13)] + [score, calibration]
    await broker.publish([new_event(e, source="test", time=T0) for e in events])

    async def folded() -> bool:
        trail = (await client.get("/v1/passports/bob/evidence", params={"limit": 50})).json()
        return len(trail.get("items", [])) == 12 and any(i["calibrated_by"] for i in trail["items"])

    await eventually(folded, timeout=30)


async def skill_page_shows_the_api_figures(client: httpx.AsyncClient) -> None:
    data = (await client.get(f"/v1/skills/{ML}")).json()
    response = await client.get(f"/skills/{ML}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<h1>Machine Learning</h1>" in page
    assert figure(page, "learners-verifying") == f"{data['learners_verifying']:,}"
    assert figure(page, "sessions-completed") == f"{data['sessions_completed']:,}"
    assert data["learners_verifying"] == 2  # Ada (claimed) and Bob (SCI 61.5)
    assert figure(page, "avg-sci") == one_decimal(data["avg_sci"]) == "30.8"
    assert "(Practicing band)" in page
    for tier, n in data["tier_distribution"].items():
        assert re.search(rf'data-tier-count="{tier}">{n}<', page)
    for name in ("practice", "proof", "reliability", "freshness"):
        assert part(page, name) == one_decimal(data[f"avg_{name}"])
    catalog_text = "Sessions are framework-agnostic"
    assert catalog_text in page and "What does the SCI measure?" in page
    assert 'action="/waitlist"' in page and '<label for="email">' in page
    css = await client.get("/static/lemma.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def passport_shows_skills_and_a_calibrated_paginated_trail(client: httpx.AsyncClient) -> None:
    ada = (await client.get("/passports/ada")).text
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in ada and "<b>Lovelace" not in ada  # escaped
    assert re.search(r"data-tier>Claimed<", ada) and "Book a first peer session" in ada

    first = (await client.get("/passports/bob")).text
    assert re.search(r'data-skill="machine-learning"', first)
    assert figure(first, "sci") != "–" and re.search(r"data-tier>Practitioner<", first)
    assert part(first, "proof") == "26.0"
    # the band sci sent, around the SCI as shown today (Freshness decayed), with what it means
    shown = float(figure(first, "sci"))
    low, high = round(shown - 4.6), round(shown + 4.6)
    assert figure(first, "band").strip() == "± 5" and f"({low}–{high})" in first
    assert "data-band-meaning" in first and f"lies between {low} and {high}." in first
    assert "data-band-meaning" not in ada  # no score, no band
    # depth per rubric dimension as sci sent it, in the catalog's order, out of 5
    depth = first.split("data-rubric", 1)[1].split("</ul>", 1)[0]
    names = re.findall(r"<li><span>([^<]+)</span>", depth)
    assert names == ["Model selection", "Generalization", "Deployment"]
    assert re.findall(r"data-level>([^<]+)<", depth) == ["4.1", "3.5", "2.6"]
    assert "data-rubric" not in ada  # no score, no depth
    shown_json = (await client.get("/v1/passports/bob")).json()["skills"][0]
    assert shown_json["rubric"] == {"deployment": 2.64, "generalization": 3.5, "model-selection": 4.12}
    assert shown_json["band"] == 4.6
    ids = re.findall(r'data-evidence="([^"]+)"', first)
    assert ids == [f"ev-{n:02d}" for n in range(12, 2, -1)]  # newest first, 10 a page
    ratings = dict(zip(ids, re.findall(r"data-rating>([^<]+)<", first), strict=True))
    # ev-11: rated 3 + 11 % 3 = 5 by the lenient rater (bias 0.5): 4.50; ev-12: 3 by "fair" (no bias)
    assert ratings["ev-11"] == "4.50" and ratings["ev-12"] == "3.00"
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older
    second = (await client.get(html.unescape(older.group(1)))).text
    assert re.findall(r'data-evidence="([^"]+)"', second) == ["ev-02", "ev-01"]
    assert 'rel="next"' not in second and 'rel="first"' in second
    for cursor in ("ada-id/zzz", "x" * 5000):  # someone else's cursor, garbage: the newest page
        odd = await client.get("/passports/bob", params={"before": cursor})
        assert odd.status_code == 200 and re.findall(r'data-evidence="([^"]+)"', odd.text)[0] == "ev-12"
    stale = (await client.get("/passports/bob", params={"before": "bob-id/0"})).text
    assert "No older evidence" in stale and 'rel="first"' in stale and "data-evidence" not in stale


async def waitlist_form(client: httpx.AsyncClient, app: object) -> None:
    form = {"email": "  New.Person@Example.org ", "skill": ML}
    done = await client.post("/waitlist", data=form)
    assert done.status_code == 200, done.text
    assert "first peer session is free" in done.text and "new.person@example.org" in done.text
    again = await client.post("/waitlist", data=form)
    assert again.status_code == 200 and again.text == done.text  # idempotent, same answer
    store = app.state.ctx.store  # type: ignore[attr-defined]
    assert await store.get(WAITLIST, "new.person@example.org") is not None
    assert await store.count(WAITLIST) == 1
    bad = await client.post("/waitlist", data={"email": "not-an-email", "skill": ML})
    assert bad.status_code == 422 and 'role="alert"' in bad.text and 'value="not-an-email"' in bad.text
    unknown = await client.post("/waitlist", data={"email": "a@b.org", "skill": "knitting"})
    assert unknown.status_code == 422 and "knitting" in unknown.text
    for odd in ({"email": "a" * 5000 + "@b.org"}, {"skill": "x" * 500}, {}):
        refused = await client.post("/waitlist", data=odd)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    upload = await client.post("/waitlist", files={"email": ("e.txt", b"a@b.org")})
    assert upload.status_code == 422 and 'role="alert"' in upload.text
    assert await store.count(WAITLIST) == 1
    back = await client.get("/waitlist", follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"].endswith("#waitlist")


async def unknown_pages_are_404_pages(client: httpx.AsyncClient) -> None:
    for path in ("/passports/nobody-here", "/skills/knitting", "/passports/a/b", "/passports/", "/nothing"):
        response = await client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
        assert "<h1>Page not found</h1>" in response.text
    api = await client.get("/v1/nothing-here")  # the API keeps its problem details
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
