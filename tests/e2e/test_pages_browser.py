"""The server-rendered pages, as a headless Chromium sees them through the gateway.

The scene is set through the public API (learners, claims, rated sessions); the pages are
then read by the attributes of their contract (``data-figure``, ``data-part``, ``data-tier``,
``data-trail``, ...), never by layout. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from deploy.local.stack import StackConfig
from tests.e2e.browser import (
    DESKTOP,
    LOOP,
    PHONE,
    OpenPage,
    broken_resources,
    reload_until,
    screenshot,
    text_of,
)
from tests.support.lemma_api import LemmaApi, poll

pytestmark = LOOP

SKILL = "machine-learning"
PARTS = ("practice", "proof", "reliability", "freshness")
TIER_NAMES = {1: "Claimed", 2: "Practicing", 3: "Practitioner", 4: "Peer-endorsed"}
FORM = 'form[action="/waitlist"]'
SUBMIT = f'{FORM} :is(button:not([type]), button[type="submit"], input[type="submit"])'


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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scene(stack: StackConfig) -> AsyncIterator[Scene]:
    run = uuid.uuid4().hex[:8]
    api = LemmaApi.open(stack)
    try:
        people = {
            name: Learner(f"pg-{run}-{name}", f"{name}-{run}", f"{name.title()} {run}")
            for name in ("ann", "bob", "carol", "erin", "dave")
        }
        for who in people.values():
            await api.register(who.learner_id, who.handle, who.name)
            await api.claim(who.learner_id, SKILL, "intermediate")
        for first, second in (("ann", "bob"), ("carol", "erin")):  # one pair after the other
            a, b = people[first].learner_id, people[second].learner_id
            session = await api.pair(a, b, SKILL)
            await api.complete(session, by=a, partner=b)
            await api.rate(session, b, a)
            await api.rate(session, a, b)
        for name in ("ann", "bob", "carol", "erin"):
            await poll(
                partial(api.passport_skill, people[name].learner_id, SKILL),
                lambda entry: entry is not None and entry["sci"] > 0,
                what=f"{name}'s SCI",
            )
        yield Scene(api, people["ann"], people["bob"], people["carol"], people["dave"])
    finally:
        await api.close()


def one_decimal(text: str, value: float | None) -> bool:
    """Whether a page's figure shows ``value`` with one decimal (``–`` for none)."""
    if value is None:
        return text == "–"
    return re.fullmatch(r"\d+\.\d", text) is not None and abs(float(text) - value) <= 0.05 + 1e-9


async def skill_figures_shown(page: Page) -> dict[str, str]:
    shown = {
        "learners_verifying": await text_of(page, '[data-figure="learners-verifying"]'),
        "sessions_completed": await text_of(page, '[data-figure="sessions-completed"]'),
        "avg_sci": await text_of(page, '[data-figure="avg-sci"]'),
    }
    for t in "1234":
        shown[f"tier_{t}"] = await text_of(page, f'[data-tier-count="{t}"]')
    for p in PARTS:
        shown[f"avg_{p}"] = await text_of(page, f'[data-part="{p}"] [data-value]')
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


async def test_the_gateway_root_links_every_service_api_docs(page: Page, stack: StackConfig) -> None:
    response = await page.goto("/")
    assert response is not None and response.status == 200
    assert await text_of(page, "h1") == "Lemma local gateway"
    for service in stack.services:
        link = page.locator(f'a[href="/{service}/docs"]')
        assert await link.count() == 1, f"no API docs link for {service}"
        assert await link.inner_text() == "API docs"
    await screenshot(page, "gateway-root")


async def test_the_skill_page_shows_the_live_figures_of_the_api(page: Page, scene: Scene) -> None:
    path = f"/v1/skills/{SKILL}"
    api = await poll(
        partial(scene.api.get, path),
        lambda a: a["sessions_completed"] >= 1 and a["learners_verifying"] >= 2,
        what="the rated sessions on the skill figures",
    )
    broken = broken_resources(page)
    # the figures move while the consumers fold: compare a page read between two equal API reads
    deadline = time.monotonic() + 15
    while True:
        response = await page.goto(f"/skills/{SKILL}")
        assert response is not None and response.status == 200
        shown = await skill_figures_shown(page)
        after = await scene.api.get(path)
        if after == api or time.monotonic() > deadline:
            break
        api = after
    assert await text_of(page, "h1") == api["name"]
    assert skill_figures_differ(shown, api) == []
    assert int(shown["sessions_completed"]) >= 1
    assert broken == [], "sub-resources that did not load"


async def trail_ids(page: Page) -> list[str]:
    items = page.locator("ol[data-trail] > li[data-evidence]")
    return [str(await items.nth(i).get_attribute("data-evidence")) for i in range(await items.count())]


async def check_skill_section(page: Page, entry: dict[str, Any]) -> None:
    """The passport page's section of ``entry`` (the API's passport skill) shows its figures."""
    section = f'section[data-skill="{entry["skill"]}"]'
    sci = await text_of(page, f'{section} [data-figure="sci"]')
    assert one_decimal(sci, entry["sci"]), f"sci: page {sci!r}, API {entry['sci']}"
    for part in PARTS:
        shown = await text_of(page, f'{section} [data-part="{part}"] [data-value]')
        assert one_decimal(shown, entry[part]), f"{part}: page {shown!r}, API {entry[part]}"
    assert await text_of(page, f"{section} [data-tier]") == TIER_NAMES[entry["tier"]]


async def test_a_rating_reaches_the_passport_page_within_seconds(page: Page, scene: Scene) -> None:
    api, ann, carol = scene.api, scene.ann, scene.carol
    response = await page.goto(f"/passports/{ann.handle}")
    assert response is not None and response.status == 200
    assert await text_of(page, "h1") == ann.name
    first = [item["evidence_id"] for item in await api.evidence(ann.learner_id, SKILL)]
    assert len(first) == 1

    async def shows_first(p: Page) -> bool:
        return await trail_ids(p) == first

    await reload_until(page, shows_first, 10, "the first evidence item")
    await check_skill_section(page, await api.passport_skill(ann.learner_id, SKILL) or {})
    sci = f'section[data-skill="{SKILL}"] [data-figure="sci"]'
    sci_before = await text_of(page, sci)

    session = await api.pair(ann.learner_id, carol.learner_id, SKILL)
    await api.complete(session, by=carol.learner_id, partner=ann.learner_id)
    await api.rate(session, carol.learner_id, ann.learner_id)

    async def shows_more(p: Page) -> bool:
        return len(await trail_ids(p)) > len(first)

    took = await reload_until(page, shows_more, 20, "the new evidence item")
    print(f"the rating was on the passport page {took:.1f}s after it was submitted")
    newest = await api.evidence(ann.learner_id, SKILL)
    ids = await trail_ids(page)
    assert ids == [item["evidence_id"] for item in newest], "newest first, as the evidence service has them"
    assert newest[0]["session_id"] == session
    rating = await text_of(page, f'li[data-evidence="{ids[0]}"] [data-rating]')
    assert re.fullmatch(r"\d\.\d\d", rating) and 1 <= float(rating) <= 5, rating

    # the SCI follows the item: sci scores the evidence, then passport folds the score
    async def shows_new_sci(p: Page) -> bool:
        return await text_of(p, sci) != sci_before

    took = await reload_until(page, shows_new_sci, 20, "the new SCI")
    print(f"the new SCI was on the passport page {took:.1f}s after the evidence item")
    entry = await api.passport_skill(ann.learner_id, SKILL) or {}
    assert entry["sessions"] == 2, entry
    await check_skill_section(page, entry)
    older = page.locator('a[rel="next"]')
    if await older.count():  # only when the trail is longer than one page
        await older.first.click()
        assert ids[0] not in await trail_ids(page)


async def test_a_learner_with_only_claims_is_told_to_book_a_first_session(page: Page, scene: Scene) -> None:
    dave = scene.dave
    response = await page.goto(f"/passports/{dave.handle}")
    assert response is not None and response.status == 200
    assert await text_of(page, "h1") == dave.name
    section = f'section[data-skill="{SKILL}"]'
    assert await text_of(page, f"{section} [data-tier]") == "Claimed"
    hint = await text_of(page, section)
    assert re.search(r"\bfirst (peer )?session\b", hint, re.IGNORECASE), hint
    assert await trail_ids(page) == []


async def submit_waitlist(page: Page, email: str) -> int:
    """Fills and submits the skill page's waitlist form as a person would; the answer's status."""
    assert await page.locator(f'{FORM}[method="post"]').count() == 1, "no waitlist form"
    email_input = page.locator(f'{FORM} input[type="email"][name="email"]#email')
    assert await email_input.evaluate("e => e.labels.length") >= 1, "the email input has no label"
    hidden = page.locator(f'{FORM} input[type="hidden"][name="skill"]')
    assert await hidden.get_attribute("value") == SKILL
    await email_input.fill(email)
    async with page.expect_navigation() as answer:
        await page.locator(SUBMIT).click()
    response = await answer.value
    assert response is not None
    return response.status


async def test_the_waitlist_form_works_without_javascript(open_page: OpenPage) -> None:
    page = await open_page(javascript=False)
    email = f"learner-{uuid.uuid4().hex[:8]}@example.org"
    thanks: list[str] = []
    for _ in range(2):  # the same email twice: the same thank-you
        await page.goto(f"/skills/{SKILL}")
        assert await submit_waitlist(page, email) == 200
        heading = await text_of(page, "h1")
        assert "waitlist" in heading.lower(), heading
        assert "first peer session is free" in await text_of(page, "body")
        thanks.append(heading)
    assert thanks[0] == thanks[1]

    # valid for the browser's own check (no dot is needed there), refused by the server
    await page.goto(f"/skills/{SKILL}")
    assert await submit_waitlist(page, "learner@localhost") == 422
    alert = await text_of(page, '[role="alert"]')
    assert "email" in alert.lower(), alert
    assert await page.locator(f'{FORM} input[name="email"]').count() == 1, "the form is shown again"


@pytest.mark.parametrize("path", ["/passports/nobody-here", "/skills/no-such-skill"])
async def test_an_unknown_passport_or_skill_is_a_real_404_page(page: Page, path: str) -> None:
    response = await page.goto(path)
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert await text_of(page, "h1") == "Page not found"


@pytest.mark.parametrize("width", ["phone", "desktop"])
async def test_screenshots_of_the_skill_and_passport_pages(
    open_page: OpenPage, scene: Scene, width: str
) -> None:
    page = await open_page(viewport=PHONE if width == "phone" else DESKTOP)
    broken = broken_resources(page)
    for name, path in (("skill", f"/skills/{SKILL}"), ("passport", f"/passports/{scene.ann.handle}")):
        response = await page.goto(path)
        assert response is not None and response.status == 200
        await screenshot(page, f"{name}-{width}")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width} width"
    assert broken == [], "sub-resources that did not load"


async def test_the_pages_draw_within_their_content_security_policy(open_page: OpenPage, scene: Scene) -> None:
    """No script, no inline style: the browser refuses nothing the pages need, and the bars and
    the gauge are drawn from the stylesheet's classes."""
    page = await open_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    for path in (f"/skills/{SKILL}", f"/passports/{scene.ann.handle}"):
        response = await page.goto(path)
        assert response is not None and response.status == 200
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, policy
        widths = await page.eval_on_selector_all(
            ".fill", "els => els.map(e => e.getBoundingClientRect().width)"
        )
        assert widths and max(widths) > 0, f"{path}: no bar is drawn"
    share = await page.eval_on_selector(".gauge", "e => getComputedStyle(e).getPropertyValue('--share')")
    assert share.strip() not in ("", "0"), share
    assert refused == [], refused
