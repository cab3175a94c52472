"""The HTML pages: skill pages, Skill Passports, the waitlist form, the 404 page, the stylesheet.

Server-rendered from the same projections the JSON routes read (``views`` shapes what is
shown, the Jinja2 templates in ``templates/`` lay it out), so what the event log says is what
a person sees. No JavaScript: the waitlist form posts plain form fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from services.passport import domain, views
from services.passport.domain import HANDLES, LEARNERS, WAITLIST
from services.passport.projection import PASSPORTS, SKILL_STATS, passport_skills, skill_figures
from services.passport.trail import evidence_trail
from shared.catalog import Skill, get_catalog
from shared.service import ContextDep
from shared.store import Store

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
STYLESHEET = (HERE / "static" / "lemma.css").read_bytes()
TRAIL_PAGE = 10

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    skills = get_catalog().skills
    base = {"all_skills": skills, "home_skill": skills[0].id, "current_skill": None}
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


async def _learner_by_handle(store: Store, handle: str) -> dict[str, Any] | None:
    owner = await store.get(HANDLES, handle)
    return await store.get(LEARNERS, owner["learner_id"]) if owner else None


@router.get("/passports/{handle}", response_class=HTMLResponse)
async def passport_page(
    request: Request,
    handle: str,
    ctx: ContextDep,
    before: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    learner = await _learner_by_handle(ctx.store, handle)
    if learner is None:
        return not_found(request, f"There is no Skill Passport for {handle!r}.")
    learner_id = learner["learner_id"]
    now = datetime.now(UTC)
    shown = passport_skills(await ctx.store.get(PASSPORTS, learner_id), now)
    if before is not None and not before.startswith(f"{learner_id}/"):
        before = None  # a cursor of someone else's trail, or garbage: show the newest page
    trail = await evidence_trail(ctx.store, learner_id, before=before, limit=TRAIL_PAGE)
    skills = {s.id: s for s in get_catalog().skills}
    base = f"/passports/{quote(handle)}"
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


@router.post("/waitlist", response_class=HTMLResponse)
async def waitlist_form(
    request: Request,
    ctx: ContextDep,
    email: Annotated[str, Form(max_length=1000)] = "",
    skill: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """The form's target. Same answer for a new or a known email; the email stays in this
    service's store and is never put in an event."""
    found = get_catalog().get(skill) if skill else None
    error = None
    if skill and found is None:
        error = f"There is no skill called {skill!r}; choose one from the menu."
    normal = domain.normalise_email(email)
    if normal is None:
        error = "That does not look like an email address. Please check it and try again."
    if error is not None:
        return _page(
            request, "waitlist_error.html", 422, error=error, email=email, form_skill=skill if found else ""
        )
    assert normal is not None
    async with ctx.lock:
        existing = await ctx.store.get(WAITLIST, normal)
        decision = domain.join_waitlist(existing, normal, found.id if found else None, datetime.now(UTC))
        await ctx.commit(decision.docs, [ctx.event(p) for p in decision.events])
    return _page(request, "waitlist_done.html", email=normal, skill=found)
