"""The HTML pages: skill pages, Skill Passports, the waitlist form, the 404 page, the stylesheet.

Server-rendered from the same projections the JSON routes read (``views`` shapes what is
shown, the Jinja2 templates in ``templates/`` lay it out), so what the event log says is what
a person sees. No JavaScript and no inline style: the waitlist form posts plain form fields,
and the pages' Content-Security-Policy (``shared.http_security``) allows only the stylesheet.
"""

from __future__ import annotations

import hashlib
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from services.passport import domain, views
from services.passport.projection import PASSPORTS, SKILL_STATS, passport_skills, skill_figures
from services.passport.records import add_to_waitlist, find_learner
from services.passport.trail import BadCursor, evidence_trail
from shared.catalog import Skill, get_catalog
from shared.service import ContextDep

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")


def step(percent: float) -> int:
    """A share as a whole percent, 0..100: bars and gauges are drawn with one class per step
    (``w-58``, ``share-58``), since the pages' Content-Security-Policy allows no inline style."""
    return max(0, min(100, round(percent)))


TEMPLATES.env.filters["step"] = step
#: The stylesheet, then a width class and a gauge share class for every step.
STYLESHEET = (HERE / "static" / "lemma.css").read_bytes() + "".join(
    f".w-{n} {{ width: {n}%; }}\n.share-{n} {{ --share: {n}; }}\n" for n in range(101)
).encode()
#: In the stylesheet's URL, so a changed stylesheet is fetched again despite the cache.
STYLE_VERSION = hashlib.sha256(STYLESHEET).hexdigest()[:12]
TRAIL_PAGE = 10
MAX_CURSOR = 400  # longer `before` values are not positions in a trail
#: Paths that are JSON, whatever the error; everything else this service answers is a page.
JSON_PATHS = (
    "/v1/",
    "/ops/",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/asyncapi",
)

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    skills = get_catalog().skills
    base = {
        "all_skills": skills,
        "home_skill": skills[0].id,
        "current_skill": None,
        "style_version": STYLE_VERSION,
    }
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status)


def not_found(request: Request, message: str) -> HTMLResponse:
    return _page(request, "not_found.html", 404, message=message)


@router.get("/static/lemma.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/skills/{skill}", response_class=HTMLResponse)
async def skill_page(request: Request, skill: str, ctx: ContextDep) -> HTMLResponse:
    found = get_catalog().get(skill)
    if found is None:
        return not_found(request, f"There is no skill called {skill!r} on Lemma.")
    figures = skill_figures(await ctx.store.get(SKILL_STATS, skill))
    return _page(
        request,
        "skill.html",
        view=views.skill_page(found, figures),
        current_skill=found.id,
        form_skill=found.id,
    )


@router.get("/passports/{handle}", response_class=HTMLResponse)
async def passport_page(
    request: Request, handle: str, ctx: ContextDep, before: str | None = None
) -> HTMLResponse:
    """A learner's passport by handle (or learner id, as the JSON route looks them up)."""
    learner = await find_learner(ctx.store, handle)
    if learner is None:
        return not_found(request, f"There is no Skill Passport for {handle!r}.")
    if learner.get("erased"):
        return _page(request, "deleted.html", 410)
    learner_id = learner["learner_id"]
    now = datetime.now(UTC)
    shown = passport_skills(await ctx.store.get(PASSPORTS, learner_id), now)
    if before is not None and len(before) > MAX_CURSOR:
        before = None
    try:
        trail = await evidence_trail(ctx.store, learner_id, before=before, limit=TRAIL_PAGE)
    except BadCursor:  # someone else's cursor, or garbage: show the newest page
        before = None
        trail = await evidence_trail(ctx.store, learner_id, limit=TRAIL_PAGE)
    skills = {s.id: s for s in get_catalog().skills}
    base = f"/passports/{quote(learner['handle'], safe='')}"
    return _page(
        request,
        "passport.html",
        learner=learner,
        as_of=now.strftime("%d %b %Y"),
        skills=views.passport_skills(skills, shown),
        trail=[_entry(skills, item) for item in trail.items],
        older_href=f"{base}?before={quote(trail.next_before, safe='')}" if trail.next_before else None,
        newer_href=base if before else None,
    )


def _entry(skills: dict[str, Skill], item: Any) -> views.TrailEntry:
    return views.trail_entry(
        skills,
        evidence_id=item.evidence_id,
        skill_id=item.skill,
        specialty=item.specialty,
        format=item.format,
        occurred_at=item.occurred_at,
        rating=item.rating,
        calibrated=item.calibrated,
        calibrated_by=item.calibrated_by,
    )


@router.get("/waitlist")
async def waitlist_get() -> RedirectResponse:
    """Someone who bookmarked the form's target, or went back to it: the form itself."""
    return RedirectResponse(f"/skills/{get_catalog().skills[0].id}#waitlist", status_code=303)


@router.post("/waitlist", response_class=HTMLResponse)
async def waitlist_form(request: Request, ctx: ContextDep) -> HTMLResponse:
    """The form's target (fields ``email`` and ``skill``). Same answer for a new or a known
    email; the email stays in this service's store and is never put in an event. The fields are
    read by hand so that any bad input (too long, a file, missing) answers this page, not JSON."""
    form = await request.form()
    raw_email, raw_skill = form.get("email"), form.get("skill")
    email = raw_email if isinstance(raw_email, str) else ""
    skill = raw_skill if isinstance(raw_skill, str) else ""
    found = get_catalog().get(skill) if skill else None
    normal = domain.normalise_email(email) if len(email) <= 4 * domain.MAX_EMAIL else None
    if normal is None or (skill and found is None):
        problem = (
            "That does not look like an email address. Please check it and try again."
            if normal is None
            else f"There is no skill called {skill[:100]!r}; join from one of the skill pages."
        )
        return _page(
            request,
            "waitlist_error.html",
            422,
            error=problem,
            email_invalid=normal is None,
            email=email[: 4 * domain.MAX_EMAIL],
            form_skill=found.id if found else "",
        )
    await add_to_waitlist(ctx, normal, found.id if found else None)
    return _page(request, "waitlist_done.html", email=normal, skill=found)


def install_html_errors(app: FastAPI) -> None:
    """Page paths that match no route (``/passports/a/b``) or no method answer the HTML 404 page;
    API paths keep their problem details."""
    json_handler = app.exception_handlers[HTTPException]

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405) and not request.url.path.startswith(JSON_PATHS):
            return not_found(request, "There is no page at this address.")
        response = json_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(HTTPException, on_http)
