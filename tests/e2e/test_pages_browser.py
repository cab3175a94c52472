"""The server-rendered pages, as a headless Chromium sees them through the gateway.

The scene is set through the public API (learners, claims, a rated session); the pages are
then read by the attributes of their contract (``data-figure``, ``data-part``, ``data-tier``,
``data-trail``, ...), never by layout. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from playwright.sync_api import Page

from deploy.local.stack import StackConfig
from tests.e2e.browser import DESKTOP, PHONE, OpenPage, broken_resources, reload_until, screenshot, text_of
from tests.support.lemma_api import LemmaApi, poll

SKILL = "machine-learning"
PARTS = ("practice", "proof", "reliability", "freshness")
TIER_NAMES = {1: "Claimed", 2: "Practicing", 3: "Practitioner", 4: "Peer-endorsed"}
SUBMIT = 'form[action="/waitlist"] :is(button:not([type]), button[type="submit"], input[type="submit"])'


@dataclass(frozen=True)
class Learner:
    learner_id: str
    handle: str
    name: str


@dataclass
class Scene:
    api: LemmaApi
    ann: Learner  # rated by bob in a completed session
    bob: Learner
    carol: Learner  # rated by erin the same way, so close to ann in level: ann's next partner
    dave: Learner  # claimed only


@pytest.fixture(scope="module")
def scene(stack: StackConfig) -> Iterator[Scene]:
    run = uuid.uuid4().hex[:8]
    api = LemmaApi.open(stack)
    try:
        people = {
            name: Learner(f"pg-{run}-{name}", f"{name}-{run}", f"{name.title()} {run}")
            for name in ("ann", "bob", "carol", "erin", "dave")
        }
        for who in people.values():
            api.register(who.learner_id, who.handle, who.name)
            api.claim(who.learner_id, SKILL, "intermediate")
        for first, second in (("ann", "bob"), ("carol", "erin")):  # one pair after the other
            a, b = people[first].learner_id, people[second].learner_id
            session = api.pair(a, b, SKILL)
            api.complete(session, by=a)
            api.rate(session, b, a)
            api.rate(session, a, b)
        for name in ("ann", "bob", "carol", "erin"):
            poll(
                partial(api.passport_skill, people[name].learner_id, SKILL),
                lambda entry: entry is not None and entry["sci"] > 0,
                what=f"{name}'s SCI",
            )
        yield Scene(api, people["ann"], people["bob"], people["carol"], people["dave"])
    finally:
        api.close()


def one_decimal(text: str, value: float | None) -> bool:
    """Whether a page's figure shows ``value`` with one decimal (``–`` for none)."""
    if value is None:
        return text == "–"
    return re.fullmatch(r"\d+\.\d", text) is not None and abs(float(text) - value) <= 0.05 + 1e-9


def skill_figures_shown(page: Page) -> dict[str, str]:
    shown = {
        "learners_verifying": text_of(page, '[data-figure="learners-verifying"]'),
        "sessions_completed": text_of(page, '[data-figure="sessions-completed"]'),
        "avg_sci": text_of(page, '[data-figure="avg-sci"]'),
    }
    shown.update({f"tier_{t}": text_of(page, f'[data-tier-count="{t}"]') for t in "1234"})
    shown.update({f"avg_{p}": text_of(page, f'[data-part="{p}"] [data-value]') for p in PARTS})
    return shown


def skill_figures_differ(shown: dict[str, str], api: dict[str, Any]) -> list[str]:
    """The figures the page shows otherwise than the API answers (empty when they agree)."""
    expected_counts = {
        "learners_verifying": api["learners_verifying"],
        "sessions_completed": api["sessions_completed"],
        **{f"tier_{t}": api["tier_distribution"][t] for t in "1234"},
    }
    wrong = [f"{k}: page {shown[k]!r}, API {v}" for k, v in expected_counts.items() if shown[k] != str(v)]
    for key in ("avg_sci", *(f"avg_{p}" for p in PARTS)):
        if not one_decimal(shown[key], api[key]):
            wrong.append(f"{key}: page {shown[key]!r}, API {api[key]}")
    return wrong


def test_the_gateway_root_links_every_service_api_docs(page: Page, stack: StackConfig) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Lemma local gateway"
    for service in stack.services:
        link = page.locator(f'a[href="/{service}/docs"]')
        assert link.count() == 1, f"no API docs link for {service}"
        assert link.inner_text() == "API docs"
    screenshot(page, "gateway-root")


def test_the_skill_page_shows_the_live_figures_of_the_api(page: Page, scene: Scene) -> None:
    path = f"/v1/skills/{SKILL}"
    api = poll(
        lambda: scene.api.get(path),
        lambda a: a["sessions_completed"] >= 1 and a["learners_verifying"] >= 2,
        what="the rated session on the skill figures",
    )
    broken = broken_resources(page)
    # the figures move while the consumers fold: compare a page read between two equal API reads
    deadline = time.monotonic() + 15
    while True:
        response = page.goto(f"/skills/{SKILL}")
        assert response is not None and response.status == 200
        shown = skill_figures_shown(page)
        after = scene.api.get(path)
        if after == api or time.monotonic() > deadline:
            break
        api = after
    assert text_of(page, "h1") == api["name"]
    assert skill_figures_differ(shown, api) == []
    assert int(shown["sessions_completed"]) >= 1
    assert broken == [], "sub-resources that did not load"


def trail_ids(page: Page) -> list[str]:
    items = page.locator("ol[data-trail] > li[data-evidence]")
    return [str(items.nth(i).get_attribute("data-evidence")) for i in range(items.count())]


def check_skill_section(page: Page, entry: dict[str, Any]) -> None:
    """The passport page's section of ``entry`` (the API's passport skill) shows its figures."""
    section = f'section[data-skill="{entry["skill"]}"]'
    sci = text_of(page, f'{section} [data-figure="sci"]')
    assert one_decimal(sci, entry["sci"]), f"sci: page {sci!r}, API {entry['sci']}"
    for part in PARTS:
        shown = text_of(page, f'{section} [data-part="{part}"] [data-value]')
        assert one_decimal(shown, entry[part]), f"{part}: page {shown!r}, API {entry[part]}"
    assert text_of(page, f"{section} [data-tier]") == TIER_NAMES[entry["tier"]]


def test_a_rating_reaches_the_passport_page_within_seconds(page: Page, scene: Scene) -> None:
    api, ann, carol = scene.api, scene.ann, scene.carol
    response = page.goto(f"/passports/{ann.handle}")
    assert response is not None and response.status == 200
    assert text_of(page, "h1") == ann.name
    first = [item["evidence_id"] for item in api.evidence(ann.learner_id, SKILL)]
    assert len(first) == 1
    reload_until(page, lambda p: trail_ids(p) == first, 10, "the first evidence item")
    check_skill_section(page, api.passport_skill(ann.learner_id, SKILL) or {})
    sci_before = text_of(page, f'section[data-skill="{SKILL}"] [data-figure="sci"]')

    session = api.pair(ann.learner_id, carol.learner_id, SKILL)
    api.complete(session, by=carol.learner_id)
    api.rate(session, carol.learner_id, ann.learner_id)
    took = reload_until(page, lambda p: len(trail_ids(p)) > len(first), 20, "the new evidence item")
    print(f"the rating was on the passport page {took:.1f}s after it was submitted")

    newest = api.evidence(ann.learner_id, SKILL)
    ids = trail_ids(page)
    assert ids == [item["evidence_id"] for item in newest], "newest first, as the evidence service has them"
    assert newest[0]["session_id"] == session and ids[0] == newest[0]["evidence_id"]
    rating = text_of(page, f'li[data-evidence="{ids[0]}"] [data-rating]')
    assert re.fullmatch(r"\d\.\d\d", rating) and 1 <= float(rating) <= 5, rating
    # the SCI follows later than the item: sci scores the evidence, then passport folds the score
    sci = f'section[data-skill="{SKILL}"] [data-figure="sci"]'
    took = reload_until(page, lambda p: text_of(p, sci) != sci_before, 20, "the new SCI")
    print(f"the new SCI was on the passport page {took:.1f}s after the evidence item")
    entry = api.passport_skill(ann.learner_id, SKILL) or {}
    assert entry["sessions"] == 2, entry
    check_skill_section(page, entry)
    older = page.locator('a[rel="next"]')
    if older.count():  # only when the trail is longer than one page
        older.first.click()
        assert set(trail_ids(page)).isdisjoint(ids[:1])


def test_a_learner_with_only_claims_is_told_to_book_a_first_session(page: Page, scene: Scene) -> None:
    dave = scene.dave
    response = page.goto(f"/passports/{dave.handle}")
    assert response is not None and response.status == 200
    assert text_of(page, "h1") == dave.name
    section = f'section[data-skill="{SKILL}"]'
    assert text_of(page, f"{section} [data-tier]") == "Claimed"
    hint = " ".join((page.locator(section).text_content() or "").split())
    assert re.search(r"book a first (peer )?session", hint, re.IGNORECASE), hint
    assert trail_ids(page) == []


def submit_waitlist(page: Page, email: str) -> int:
    """Fills and submits the skill page's waitlist form as a person would; the answer's status."""
    form = page.locator('form[method="post"][action="/waitlist"]')
    assert form.count() == 1, "no waitlist form"
    email_input = page.locator('form[action="/waitlist"] input[type="email"][name="email"]#email')
    assert email_input.evaluate("e => e.labels.length") >= 1, "the email input has no label"
    hidden = page.locator('form[action="/waitlist"] input[type="hidden"][name="skill"]')
    assert hidden.get_attribute("value") == SKILL
    email_input.fill(email)
    with page.expect_navigation() as answer:
        page.locator(SUBMIT).click()
    assert answer.value is not None
    return answer.value.status


def test_the_waitlist_form_works_without_javascript(open_page: OpenPage) -> None:
    page = open_page(javascript=False)
    email = f"learner-{uuid.uuid4().hex[:8]}@example.org"
    thanks: list[str] = []
    for _ in range(2):  # the same email twice: the same thank-you
        page.goto(f"/skills/{SKILL}")
        assert submit_waitlist(page, email) == 200
        heading = text_of(page, "h1")
        assert "waitlist" in heading.lower(), heading
        assert "first peer session is free" in (page.locator("body").text_content() or "")
        thanks.append(heading)
    assert thanks[0] == thanks[1]

    # valid for the browser's own check (no dot is needed there), refused by the server
    page.goto(f"/skills/{SKILL}")
    assert submit_waitlist(page, "learner@localhost") == 422
    alert = page.locator('[role="alert"]')
    assert alert.count() == 1 and "email" in (alert.text_content() or "").lower()
    assert page.locator('form[action="/waitlist"] input[name="email"]').count() == 1, "form shown again"


def test_an_unknown_passport_is_a_real_404_page(page: Page) -> None:
    response = page.goto("/passports/nobody-here")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert text_of(page, "h1") == "Page not found"


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_screenshots_of_the_skill_and_passport_pages(open_page: OpenPage, scene: Scene, width: str) -> None:
    page = open_page(viewport=PHONE if width == "phone" else DESKTOP)
    broken = broken_resources(page)
    for name, path in (("skill", f"/skills/{SKILL}"), ("passport", f"/passports/{scene.ann.handle}")):
        response = page.goto(path)
        assert response is not None and response.status == 200
        screenshot(page, f"{name}-{width}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width} width"
    assert broken == [], "sub-resources that did not load"
