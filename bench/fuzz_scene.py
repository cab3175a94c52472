"""The data the fuzzer's requests find: learners, claims, a match, two sessions, a rating.

``seed_scene`` makes it through the gateway as clients would: five learners register; two
claim Machine Learning and are paired, start, complete and confirm, and one rates the other (the second
rating is left for the fuzzer to make); two claim Data Engineering and are paired (that
session is started and left for the fuzzer to complete, confirm or abandon); the fifth only
claims. Two more only register: they are the ones the fuzzer may erase (``DELETE
/v1/learners/{id}``), so the others stay for every other route.

``settle`` runs after the fuzzer: it cancels every match request still waiting (the fuzzer's
learners must not be partners for later clients) and waits until every service has folded what
the fuzzer wrote, passing back the consistency tokens its writes were answered with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.auth import mint_token
from shared.catalog import Skill, get_catalog
from shared.consistency import AFTER_HEADER, STALE_HEADER, TOKEN_HEADER, decode_tokens, encode_token
from shared.settings import Settings

LEVEL = "intermediate"
ML, DATA = "machine-learning", "data-engineering"
#: how long a seeding step may take to show on the read side (folds are about a second behind)
APPEAR_S = 30.0


@dataclass
class Scene:
    """What the fuzzer is told exists. ``sessions``: session id -> its two participants;
    ``tickets``: ticket id -> its learner; ``projections``: service -> its projections' names."""

    secret: str
    learners: list[str]
    handles: list[str]
    skills: list[str]
    erasable: list[str] = field(default_factory=list)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    tickets: dict[str, str] = field(default_factory=dict)
    projections: dict[str, list[str]] = field(default_factory=dict)

    def token(self, subject: str, role: str = "learner") -> str:
        return mint_token(Settings(jwt_secret=self.secret), subject, role=role)

    def auth(self, subject: str, role: str = "learner") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, role)}"}


def _skill(skill_id: str) -> Skill:
    skill = get_catalog().get(skill_id)
    assert skill is not None, skill_id
    return skill


def _until(
    fetch: Callable[[], httpx.Response], ok: Callable[[httpx.Response], bool], what: str
) -> httpx.Response:
    deadline = time.monotonic() + APPEAR_S
    answer = fetch()
    while not ok(answer):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what}: not within {APPEAR_S:g} s; last answer {answer.status_code} {answer.text}"
            )
        time.sleep(0.1)
        answer = fetch()
    return answer


def _expect(answer: httpx.Response, *statuses: int) -> httpx.Response:
    if answer.status_code not in statuses:
        request = answer.request
        raise RuntimeError(f"{request.method} {request.url.path}: {answer.status_code} {answer.text}")
    return answer


def seed_scene(gateway_url: str, service_urls: dict[str, str], secret: str, run: str) -> Scene:
    """Make the scene through the gateway; ``run`` keeps its names apart from any other run's."""
    names = ("ann", "bob", "cat", "dan", "eve")
    learners = [f"fz{run}-{name}" for name in names]
    erasable = [f"fz{run}-{name}" for name in ("gus", "hal")]
    scene = Scene(secret, learners, [*learners, *erasable], [s.id for s in get_catalog().skills], erasable)
    ann, bob, cat, dan, eve = learners
    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        for learner in erasable:
            body = {"handle": learner, "display_name": learner}
            _expect(http.post("/v1/learners", json=body, headers=scene.auth(learner)), 201)
        claimed: dict[str, str] = {}
        for learner, skill in ((ann, ML), (bob, ML), (cat, DATA), (dan, DATA), (eve, DATA)):
            auth = scene.auth(learner)
            _expect(
                http.post("/v1/learners", json={"handle": learner, "display_name": learner}, headers=auth),
                201,
            )
            body = {"self_level": LEVEL}
            answer = _expect(http.put(f"/v1/learners/{learner}/skills/{skill}", json=body, headers=auth), 200)
            claimed[learner] = answer.headers.get(TOKEN_HEADER, "")
        rated = _pair(http, scene, ann, bob, ML, claimed)
        started = _pair(http, scene, cat, dan, DATA, claimed)
        # started, so the fuzzer's complete has a happy path whatever order it calls in
        _expect(http.post(f"/v1/sessions/{started}/start", headers=scene.auth(cat)), 200)
        session = f"/v1/sessions/{rated}"
        _expect(http.post(f"{session}/start", headers=scene.auth(ann)), 200)
        _expect(http.post(f"{session}/complete", headers=scene.auth(bob)), 200)
        _expect(http.post(f"{session}/confirm", headers=scene.auth(ann)), 200)  # so its ratings count
        scores = {dimension.id: 4 for dimension in _skill(ML).rubric}
        rating = {"ratee_id": bob, "scores": scores}
        _expect(http.post(f"{session}/ratings", json=rating, headers=scene.auth(ann)), 201)
        _until(
            lambda: http.get(f"/v1/scores/{bob}/{ML}"),
            lambda r: r.status_code == 200 and r.json()["sessions"] == 1,
            "the rating in bob's score",
        )
        _until(
            lambda: http.get(f"/v1/passports/{bob}/evidence"),
            lambda r: r.status_code == 200 and len(r.json()["items"]) == 1,
            "the rating on bob's passport",
        )
    for service, url in service_urls.items():
        answer = _expect(httpx.get(f"{url}/ops/projections", headers=scene.auth("fuzz-ops", "ops")), 200)
        scene.projections[service] = [p["projection"] for p in answer.json()["projections"]]
    return scene


def _pair(
    http: httpx.Client, scene: Scene, first: str, second: str, skill: str, claimed: dict[str, str]
) -> str:
    """Both ask for a partner in ``skill`` (after matching has seen their claims); the session
    they were paired in, once the sessions service has it."""
    tickets = []
    for learner in (first, second):
        headers = {**scene.auth(learner), AFTER_HEADER: claimed[learner]}
        answer = _expect(http.post("/v1/match-requests", json={"skill": skill}, headers=headers), 200, 202)
        tickets.append(answer.json()["ticket_id"])
        scene.tickets[answer.json()["ticket_id"]] = learner
    found = [
        _expect(
            http.get(f"/v1/match-requests/{t}", params={"wait": 15}, headers=scene.auth(learner)), 200
        ).json()
        for t, learner in zip(tickets, (first, second), strict=True)
    ]
    if {f["status"] for f in found} != {"matched"} or found[0]["session_id"] != found[1]["session_id"]:
        raise RuntimeError(f"{first} and {second} were not paired together: {found}")
    session_id = str(found[0]["session_id"])
    _until(
        lambda: http.get(f"/v1/sessions/{session_id}", headers=scene.auth(first)),
        lambda r: r.status_code == 200,
        f"session {session_id}",
    )
    scene.sessions[session_id] = (first, second)
    return session_id


@dataclass
class Settled:
    """What ``settle`` did: tickets it cancelled, and whether every service caught up in time."""

    cancelled: list[str]
    caught_up: bool


def merged_token(tokens: Iterable[str]) -> str | None:
    """One consistency token as far as all of ``tokens`` (the furthest position per partition)."""
    joined = ", ".join(t for t in tokens if t)
    return encode_token(decode_tokens(joined)) if joined else None


def settle(gateway_url: str, scene: Scene, tickets: Iterable[str], tokens: Iterable[str]) -> Settled:
    """Cancel every ticket of ``tickets`` still waiting (an operator's token), then read from
    every service with the furthest of ``tokens``: each answers once it has folded past them."""
    cancelled = []
    ops = scene.auth("fuzz-ops", "ops")
    written = list(tokens)
    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        for ticket in sorted(set(tickets)):
            answer = http.get(f"/v1/match-requests/{ticket}", headers=ops)
            if answer.status_code == 200 and answer.json()["status"] == "waiting":
                gone = _expect(http.delete(f"/v1/match-requests/{ticket}", headers=ops), 200, 202, 409)
                written.append(gone.headers.get(TOKEN_HEADER, ""))
                cancelled.append(ticket)
        token = merged_token(written)
        caught_up = True
        if token is not None:
            session = next(iter(scene.sessions))
            reads = (
                f"/v1/skills/{ML}",
                f"/v1/match-requests/{next(iter(scene.tickets))}",
                f"/v1/sessions/{session}",
                f"/v1/evidence?learner_id={scene.learners[0]}",
                f"/v1/scores/{scene.learners[0]}",
            )
            for path in reads:
                answer = _expect(http.get(path, headers={**ops, AFTER_HEADER: token}), 200)
                caught_up = caught_up and answer.headers.get(STALE_HEADER) != "true"
    return Settled(cancelled, caught_up)


def describe(scene: Scene) -> dict[str, Any]:
    return {
        "learners": len(scene.learners),
        "sessions": len(scene.sessions),
        "tickets": len(scene.tickets),
        "projections": sum(len(names) for names in scene.projections.values()),
    }
