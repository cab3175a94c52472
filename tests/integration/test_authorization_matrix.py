"""The authorization matrix of ``docs/security.md``, checked against the five running services.

The routes come from each service's own route table, so a route without a row (or a row
without a route) fails. Then every route is called as every caller of its row (anonymous,
the learner concerned, another learner, a session participant, an operator) against the
services on a real broker and their stores, and each status is compared with the table; the
table's door (the gateway, or only the service's port) is compared with the gateway's routes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from deploy.local.gateway import ROUTES
from services.evidence.app import bootstrap as evidence_app
from services.matching.app import MatchingRules
from services.matching.app import bootstrap as matching_app
from services.passport.app import bootstrap as passport_app
from services.sci.app import bootstrap as sci_app
from services.sessions.app import bootstrap as sessions_app
from shared.api_docs import ASSETS
from shared.auth import mint_token
from shared.catalog import get_catalog
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchedTicket, MatchFound, MatchRequested
from shared.events.registry import Topic
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
CALLERS = ("anonymous", "concerned", "another", "participant", "ops")
#: The order callers are tried in: whoever may change something goes last, so a refusal is
#: never checked against a state someone else's success changed.
ORDER = ("anonymous", "another", "ops", "participant", "concerned")
SERVICES: dict[str, Callable[[Settings], FastAPI]] = {
    "passport": passport_app,
    "matching": lambda s: matching_app(s, rules=MatchingRules(expansions="0:0.01")),  # nobody pairs
    "sessions": sessions_app,
    "evidence": evidence_app,
    "sci": sci_app,
}
SESSION_SKILL = "data-engineering"  # sessions here; tickets in another skill, so nobody is busy
TICKET_SKILL = "machine-learning"
OTHER_SKILL = "backend-development"  # where a newcomer asks: not paired with ann's ticket


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    door: str
    expected: dict[str, str]  # caller -> "401", "200 public", ... (callers with "—" left out)


def matrix() -> list[Row]:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 + len(CALLERS) or not cells[1].startswith("`"):
            continue
        method, path = cells[1].strip("`").split(" ", 1)
        expected = {who: cell for who, cell in zip(CALLERS, cells[3:], strict=True) if cell != "—"}
        rows.append(Row(cells[0], method, path, cells[2].replace("&lt;", "<").replace("&gt;", ">"), expected))
    return rows


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, from its own route table."""
    found = set()
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, Mount):
            found.add(("GET", f"{route.path}/{{path}}"))
            continue
        for method in getattr(route, "methods", None) or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((method, str(getattr(route, "path", context.path))))
    return found


def door_of(service: str, path: str) -> str:
    """Where the gateway (``deploy.local.gateway``) lets ``path`` of ``service`` through."""
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    if any(fnmatch.fnmatchcase(concrete, pattern) for pattern in ROUTES[service]):
        return "gateway"
    if concrete in ("/openapi.json", "/docs") or concrete.startswith(f"{ASSETS}/"):
        return "gateway /<service>"
    return "service port"


def test_every_route_has_exactly_one_row_and_its_door_is_the_gateways() -> None:
    rows = matrix()
    assert len(rows) > 30
    keyed = [(r.service, r.method, r.path) for r in rows]
    assert len(keyed) == len(set(keyed)), "a route has two rows"
    settings = Settings(environment="test", state_dir="/nonexistent")  # apps are built, not started
    for service, build in SERVICES.items():
        documented = {(r.method, r.path) for r in rows if r.service in (service, "every")}
        actual = routes_of(build(settings))
        assert actual - documented == set(), f"{service}: routes without a row in docs/security.md"
        assert documented - actual == set(), f"{service}: rows naming no route of the service"
        for row in rows:
            if row.service in (service, "every"):
                assert door_of(service, row.path) == row.door, (service, row.method, row.path)


@dataclass
class Call:
    """What one caller sends: the path (and query), a body, form fields; ``instead`` is what a
    given caller sends instead (a delete that succeeds twice needs two things to delete)."""

    path: str
    json: Any = None
    form: dict[str, str] | None = None
    instead: dict[str, Call] = field(default_factory=dict)

    def of(self, caller: str) -> Call:
        return self.instead.get(caller, self)


@dataclass
class Scene:
    ns: Namespace
    settings: Settings
    clients: dict[str, httpx.AsyncClient]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    sessions: dict[str, str] = field(default_factory=dict)  # purpose -> session id
    ticket: str = ""
    projections: dict[str, str] = field(default_factory=dict)  # service -> one of its projections

    @property
    def ann(self) -> str:  # the learner concerned, and a participant
        return f"ann-{self.run}"

    @property
    def bob(self) -> str:  # her partner
        return f"bob-{self.run}"

    @property
    def eve(self) -> str:  # another learner
        return f"eve-{self.run}"

    @property
    def zed(self) -> str:  # a learner who erases their data
        return f"zed-{self.run}"

    def token(self, who: str, *, ops: bool = False) -> dict[str, str]:
        role = "ops" if ops else "learner"
        return {"Authorization": f"Bearer {mint_token(self.settings, who, role=role)}"}

    def caller(self, who: str, concerned: str) -> dict[str, str]:
        return {
            "anonymous": {},
            "another": self.token(self.eve),
            "ops": self.token("operator", ops=True),
            "participant": self.token(self.ann),
            "concerned": self.token(concerned),
        }[who]


def rubric(skill: str) -> dict[str, int]:
    found = get_catalog().get(skill)
    assert found is not None
    return {dimension.id: 4 for dimension in found.rubric}


def match_events(session_id: str, a: str, b: str) -> list[CloudEvent]:
    t0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    tickets = (f"{session_id}-a", f"{session_id}-b")
    events = [
        new_event(
            MatchRequested(ticket_id=t, learner_id=who, skill=SESSION_SKILL, level=2.0, requested_at=t0),
            source="matching",
            time=t0,
        )
        for t, who in zip(tickets, (a, b), strict=True)
    ]
    found = MatchFound(
        match_id=session_id,
        skill=SESSION_SKILL,
        tickets=(
            MatchedTicket(ticket_id=tickets[0], learner_id=a, level=2.0),
            MatchedTicket(ticket_id=tickets[1], learner_id=b, level=2.0),
        ),
        level_gap=0.0,
        waited_ms=10,
    )
    return [*events, new_event(found, source="matching", time=t0)]


def recipe(scene: Scene, service: str, method: str, path: str) -> tuple[str, Call]:
    """Who is concerned by a call of this route, and the well-formed request every caller sends."""
    ann, run = scene.ann, scene.run
    fresh = f"new-{uuid.uuid4().hex[:8]}"
    session = {
        "/v1/sessions/{session_id}": "read",
        "/v1/sessions/{session_id}/start": "start",
        "/v1/sessions/{session_id}/complete": "complete",
        "/v1/sessions/{session_id}/confirm": "confirm",
        "/v1/sessions/{session_id}/dispute": "dispute",
        "/v1/sessions/{session_id}/contest": "contest",
        "/v1/sessions/{session_id}/abandon": "abandon",
        "/v1/sessions/{session_id}/ratings": "rate",
    }
    if path in session:
        sid = scene.sessions[session[path]]
        body: Any = None
        if path.endswith("/abandon"):
            body = {"reason": "schedule-conflict"}
        elif path.endswith("/dispute"):
            body = {"reason": "ended-early"}
        elif path.endswith("/ratings"):
            body = {"ratee_id": scene.bob, "scores": rubric(SESSION_SKILL)}
        return ann, Call(path.replace("{session_id}", sid), body)
    projection = scene.projections[service]
    table: dict[tuple[str, str], tuple[str, Call]] = {
        ("POST", "/v1/learners"): (fresh, Call("/v1/learners", {"handle": fresh, "display_name": "New"})),
        ("DELETE", "/v1/learners/{learner_id}"): (scene.zed, Call(f"/v1/learners/{scene.zed}")),
        ("GET", "/v1/learners/{learner_id}/export"): (ann, Call(f"/v1/learners/{ann}/export")),
        ("PUT", "/v1/learners/{learner_id}/skills/{skill}"): (
            ann,
            Call(f"/v1/learners/{ann}/skills/backend-development", {"self_level": "beginner"}),
        ),
        ("DELETE", "/v1/learners/{learner_id}/skills/{skill}"): (
            ann,
            Call(
                f"/v1/learners/{ann}/skills/backend-development",  # claimed by the row above
                instead={"ops": Call(f"/v1/learners/{ann}/skills/{SESSION_SKILL}")},  # by the scene
            ),
        ),
        ("GET", "/v1/passports/{who}"): (ann, Call(f"/v1/passports/{ann}")),
        ("GET", "/v1/passports/{who}/evidence"): (ann, Call(f"/v1/passports/{ann}/evidence")),
        ("GET", "/v1/skills"): (ann, Call("/v1/skills")),
        ("GET", "/v1/skills/{skill}"): (ann, Call(f"/v1/skills/{SESSION_SKILL}")),
        ("POST", "/v1/waitlist"): (ann, Call("/v1/waitlist", {"email": f"{fresh}@example.com"})),
        ("GET", "/static/lemma.css"): (ann, Call("/static/lemma.css")),
        ("GET", "/skills/{skill}"): (ann, Call(f"/skills/{SESSION_SKILL}")),
        ("GET", "/passports/{handle}"): (ann, Call(f"/passports/h-{run}")),
        ("GET", "/waitlist"): (ann, Call("/waitlist")),
        ("POST", "/waitlist"): (ann, Call("/waitlist", form={"email": f"{fresh}@example.com"})),
        ("POST", "/v1/match-requests"): (fresh, Call("/v1/match-requests", {"skill": OTHER_SKILL})),
        ("GET", "/v1/match-requests/{ticket_id}"): (ann, Call(f"/v1/match-requests/{scene.ticket}")),
        ("DELETE", "/v1/match-requests/{ticket_id}"): (ann, Call(f"/v1/match-requests/{scene.ticket}")),
        ("GET", "/v1/matching/ownership"): (ann, Call("/v1/matching/ownership")),
        ("GET", "/v1/evidence"): (ann, Call(f"/v1/evidence?learner_id={ann}")),
        ("GET", "/v1/scores/{learner_id}"): (ann, Call(f"/v1/scores/{ann}")),
        ("GET", "/v1/scores/{learner_id}/{skill}"): (ann, Call(f"/v1/scores/{ann}/{SESSION_SKILL}")),
        ("GET", "/v1/raters/{learner_id}"): (ann, Call(f"/v1/raters/{ann}")),
        ("GET", "/openapi.json"): (ann, Call("/openapi.json")),
        ("GET", "/docs"): (ann, Call("/docs")),
        ("GET", "/docs-assets/{path}"): (ann, Call(f"{ASSETS}/swagger-ui.css")),
        ("GET", "/healthz"): (ann, Call("/healthz")),
        ("GET", "/readyz"): (ann, Call("/readyz")),
        ("GET", "/metrics"): (ann, Call("/metrics")),
        ("GET", "/asyncapi.json"): (ann, Call("/asyncapi.json")),
        ("GET", "/ops/projections"): (ann, Call("/ops/projections")),
        ("GET", "/ops/collusion"): (ann, Call("/ops/collusion")),
        ("POST", "/ops/projections/{name}/resume"): (
            ann,
            Call(f"/ops/projections/{projection}/resume"),
        ),
        ("POST", "/ops/projections/{name}/redrive"): (
            ann,
            Call(
                f"/ops/projections/{projection}/redrive",
                {"records": [{"topic": scene.ns.topic(Topic.DLQ), "partition": 0, "offset": 10**9}]},
            ),
        ),
    }
    return table[(method, path)]


def check(row: Row, caller: str, answer: httpx.Response) -> str | None:
    """What is wrong with ``answer`` for the row's cell of ``caller`` (None: as the table says)."""
    want = row.expected[caller]
    status, _, view = want.partition(" ")
    if str(answer.status_code) != status:
        return f"{answer.status_code} {answer.text[:200]}"
    if view:
        items = answer.json()["items"]
        if not items:
            return "no items to tell the views apart"
        hidden = all(i["rater_id"] is None and i["scores"] is None for i in items)
        if hidden != (view == "public"):
            return f"the {'full' if hidden else 'public'} view, not the {view} one"
    return None


@contextlib.asynccontextmanager
async def services(ns: Namespace, tmp_path: Path) -> AsyncIterator[Scene]:
    settings = ns.settings(state_dir=str(tmp_path), rate_limit_per_token="", rate_limit_per_ip="")
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(serving(build(settings)))
            for name, build in SERVICES.items()
        }
        yield Scene(ns, settings, clients)


async def set_the_scene(scene: Scene) -> None:
    """ann and bob registered with sessions in every state the rows need, ann with a waiting
    ticket, evidence and a score; eve registered, in nothing."""
    c, ann, bob = scene.clients, scene.ann, scene.bob
    ops = scene.token("operator", ops=True)
    for who in (ann, bob, scene.eve, scene.zed):
        handle = f"h-{scene.run}" if who == ann else f"h-{who}"
        r = await c["passport"].post(
            "/v1/learners", json={"handle": handle, "display_name": who}, headers=scene.token(who)
        )
        assert r.status_code == 201, r.text
    claim = {"self_level": "intermediate"}
    r = await c["passport"].put(
        f"/v1/learners/{ann}/skills/{SESSION_SKILL}", json=claim, headers=scene.token(ann)
    )
    assert r.status_code == 200, r.text
    for purpose in (
        "read",
        "start",
        "complete",
        "confirm",
        "dispute",
        "contest",
        "abandon",
        "rate",
        "evidence",
    ):
        scene.sessions[purpose] = f"s-{purpose}-{scene.run}"
    await scene.ns.publish([e for sid in scene.sessions.values() for e in match_events(sid, ann, bob)])

    async def scheduled() -> bool:
        answers = [
            await c["sessions"].get(f"/v1/sessions/{sid}", headers=ops) for sid in scene.sessions.values()
        ]
        return all(a.status_code == 200 for a in answers)

    await eventually(scheduled, timeout=30)
    no_show = {"reason": "partner-absent", "no_show": ann}
    for purpose, steps in (
        ("complete", ((ann, "start", None),)),
        ("confirm", ((ann, "start", None),)),
        ("dispute", ((ann, "start", None), (bob, "complete", None))),  # ann may dispute bob's word
        ("contest", ((bob, "abandon", no_show),)),  # ann may contest being named a no-show
        ("rate", ((ann, "start", None), (ann, "complete", None))),
        ("evidence", ((ann, "start", None), (ann, "complete", None), (bob, "confirm", None))),
    ):
        for who, step, body in steps:
            r = await c["sessions"].post(
                f"/v1/sessions/{scene.sessions[purpose]}/{step}", json=body, headers=scene.token(who)
            )
            assert r.status_code == 200, r.text
    rated = await c["sessions"].post(
        f"/v1/sessions/{scene.sessions['evidence']}/ratings",
        json={"ratee_id": ann, "scores": rubric(SESSION_SKILL)},
        headers=scene.token(bob),
    )
    assert rated.status_code == 201, rated.text
    r = await c["matching"].post("/v1/match-requests", json={"skill": TICKET_SKILL}, headers=scene.token(ann))
    assert r.status_code == 202, r.text
    scene.ticket = r.json()["ticket_id"]

    async def scored() -> bool:
        trail = await c["evidence"].get(f"/v1/evidence?learner_id={ann}", headers=ops)
        score = await c["sci"].get(f"/v1/scores/{ann}/{SESSION_SKILL}")
        return bool(trail.status_code == 200 and trail.json()["items"]) and score.status_code == 200

    await eventually(scored, timeout=60)
    for name, client in c.items():
        listed = (await client.get("/ops/projections", headers=ops)).json()["projections"]
        scene.projections[name] = listed[0]["projection"]


async def test_every_route_answers_every_caller_as_the_matrix_says(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    rows = matrix()
    async with services(private_kafka, tmp_path) as scene:
        await set_the_scene(scene)
        wrong: list[str] = []
        for row in rows:
            for service in SERVICES if row.service == "every" else (row.service,):
                concerned, for_all = recipe(scene, service, row.method, row.path)
                for caller in (c for c in ORDER if c in row.expected):
                    call = for_all.of(caller)
                    answer = await scene.clients[service].request(
                        row.method,
                        call.path,
                        json=call.json,
                        data=call.form,
                        headers=scene.caller(caller, concerned),
                        follow_redirects=False,
                    )
                    if (problem := check(row, caller, answer)) is not None:
                        where = f"{service} {row.method} {row.path} as {caller}"
                        wrong.append(f"{where}: {row.expected[caller]} expected, {problem}")
        assert wrong == [], "\n".join(wrong)
