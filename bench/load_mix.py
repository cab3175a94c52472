"""The mixed workload of the step-up search: what a crowd of clients asks of the gateway.

Per 100 arrivals (``WEIGHTS``): 72 reads (passports 50, skill pages 8, evidence trails 6,
scores 6, a ticket 4, a session 4 ... the ticket and session reads are the clients following
their own match requests) and 28 writes (session steps 8, match requests 4, registrations 3,
skill claims 3, waitlist sign-ups 4... plus the reads above that advance the clients' state).

The writes are chains, as a client runs them; each step is sent only once the one before it
was answered:

- a session the engine made: start (participant a) -> complete (b) -> confirm (a: so it counts
  at once) -> a rates b -> b rates a; then both ask for a partner again;
- a learner asking for a partner: ``POST /v1/match-requests`` (a 409 while matching has not yet
  folded the end of their last session puts them back in line) -> the ticket is read until
  matched -> the session is read until the sessions service has it -> its steps as above;
- a new learner: register -> claim one skill -> ask for a partner (and on into the cycle).

An arrival of a chain kind whose line is empty sends a passport read instead (counted in
``fallbacks``). One worker process runs the mix, so every chain's state is in one place; it
is handed back after a run and given to the next.
"""

from __future__ import annotations

import json
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from bench.load_gen import Call
from bench.load_http import Answer, request_bytes

#: Arrivals per 100 by kind (the kinds the figures are reported under, chains by their step).
WEIGHTS: dict[str, int] = {
    "passport": 50,
    "skill": 8,
    "evidence": 6,
    "scores": 6,
    "ticket": 4,
    "session": 4,
    "step": 8,
    "match": 4,
    "register": 3,
    "claim": 3,
    "waitlist": 4,
}
#: Kinds left out of the p99 target: the route waits for its ticket to come back from the log
#: (up to the matching service's settle time), so its latency is the log's, reported apart.
SLO_EXCLUDED = ("POST /v1/match-requests",)

STEPS = ("start", "complete", "confirm", "rate-ab", "rate-ba")


@dataclass
class Lifecycle:
    session_id: str
    skill: str
    a: str
    b: str
    step: int = 0


@dataclass
class MixState:
    """Everything the mix knows, carried from run to run."""

    host: bytes
    secret: str
    run_id: str
    seed: int
    learners: list[str]  # setup learners (reads pick from them)
    skills: list[str]
    rubric: dict[str, list[str]]
    tickets_known: list[tuple[str, str]]  # (ticket, its learner: only they may read it)
    sessions_known: list[tuple[str, str]]  # (session, a participant: only they may read it)
    lifecycle: deque[Lifecycle] = field(default_factory=deque)
    to_match: deque[tuple[str, str]] = field(default_factory=deque)  # (learner, skill)
    following: deque[tuple[str, str, str]] = field(default_factory=deque)  # (ticket, learner, skill)
    appearing: deque[tuple[str, str, str]] = field(default_factory=deque)  # (session, skill, participant)
    to_claim: deque[tuple[str, str]] = field(default_factory=deque)
    new_learners: int = 0
    waitlisted: int = 0
    seen_sessions: set[str] = field(default_factory=set)
    # results the checks use
    ratings: list[tuple[str, str, str, str]] = field(default_factory=list)  # (session, rater, ratee, skill)
    unanswered: list[tuple[str, str, str, str]] = field(default_factory=list)  # ratings sent, no answer
    registered: list[str] = field(default_factory=list)
    claims: list[tuple[str, str]] = field(default_factory=list)
    fallbacks: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)  # "kind status" of chain steps
    busy: int = 0  # match requests answered 409 (put back in line)
    pattern: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = [kind for kind, weight in WEIGHTS.items() for _ in range(weight)]
        random.Random(self.seed).shuffle(kinds)
        self.pattern = kinds
        self.rng = random.Random(self.seed + 1)


class MixWorkload:
    """The ``Workload`` of the mix over a ``MixState``."""

    def __init__(self, state: MixState) -> None:
        self.s = state

    # --- requests ------------------------------------------------------------------------------

    def _token(self, learner: str) -> str:
        if learner not in self.s.tokens:
            from shared.auth import mint_token  # imported in the worker, where it is used
            from shared.settings import Settings

            self.s.tokens[learner] = f"Bearer {mint_token(Settings(jwt_secret=self.s.secret), learner)}"
        return self.s.tokens[learner]

    def _call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        actor: str | None = None,
        body: Any = None,
        key: Any = None,
    ) -> Call:
        headers = {"Authorization": self._token(actor)} if actor else None
        raw_body = None if body is None else json.dumps(body).encode()
        return Call(kind, 0, request_bytes(self.s.host, method, path, raw_body, headers), key)

    def _read_passport(self) -> Call:
        who = self.s.rng.choice(self.s.learners)
        return self._call("GET /v1/passports/{id}", "GET", f"/v1/passports/{who}")

    def next_call(self, index: int) -> Call:
        s = self.s
        kind = s.pattern[index % len(s.pattern)]
        rng = s.rng
        if kind == "passport":
            return self._read_passport()
        if kind == "skill":
            return self._call("GET /v1/skills/{skill}", "GET", f"/v1/skills/{rng.choice(s.skills)}")
        if kind == "evidence":
            path = f"/v1/evidence?learner_id={rng.choice(s.learners)}"
            return self._call("GET /v1/evidence?learner_id", "GET", path)  # as a stranger sees it
        if kind == "scores":
            path = f"/v1/scores/{rng.choice(s.learners)}/{rng.choice(s.skills)}"
            return self._call("GET /v1/scores/{id}/{skill}", "GET", path)
        if kind == "ticket":
            if s.following:
                item = s.following.popleft()
                return self._call(
                    "GET /v1/match-requests/{id}",
                    "GET",
                    f"/v1/match-requests/{item[0]}",
                    actor=item[1],
                    key=("ticket", item),
                )
            ticket, owner = rng.choice(s.tickets_known)
            path = f"/v1/match-requests/{ticket}"
            return self._call("GET /v1/match-requests/{id}", "GET", path, actor=owner)
        if kind == "session":
            if s.appearing:
                item2 = s.appearing.popleft()
                path = f"/v1/sessions/{item2[0]}"
                route = "GET /v1/sessions/{id}"
                return self._call(route, "GET", path, actor=item2[2], key=("session", item2))
            session, participant = rng.choice(s.sessions_known)
            path = f"/v1/sessions/{session}"
            return self._call("GET /v1/sessions/{id}", "GET", path, actor=participant)
        if kind == "step" and s.lifecycle:
            return self._step(s.lifecycle.popleft())
        if kind == "match" and s.to_match:
            learner, skill = s.to_match.popleft()
            body = {"skill": skill}
            return self._call(
                "POST /v1/match-requests",
                "POST",
                "/v1/match-requests",
                actor=learner,
                body=body,
                key=("match", (learner, skill)),
            )
        if kind == "register":
            learner = f"{s.run_id}-n{s.new_learners:05d}"
            s.new_learners += 1
            body2 = {"handle": learner, "display_name": f"New {learner}"}
            return self._call(
                "POST /v1/learners",
                "POST",
                "/v1/learners",
                actor=learner,
                body=body2,
                key=("register", learner),
            )
        if kind == "claim" and s.to_claim:
            learner, skill = s.to_claim.popleft()
            return self._call(
                "PUT /v1/learners/{id}/skills/{skill}",
                "PUT",
                f"/v1/learners/{learner}/skills/{skill}",
                actor=learner,
                body={"self_level": "intermediate"},
                key=("claim", (learner, skill)),
            )
        if kind == "waitlist":
            s.waitlisted += 1
            body3 = {"email": f"{s.run_id}-{s.waitlisted}@example.com", "skill": rng.choice(s.skills)}
            return self._call("POST /v1/waitlist", "POST", "/v1/waitlist", body=body3)
        s.fallbacks[kind] += 1
        return self._read_passport()

    def _step(self, life: Lifecycle) -> Call:
        base = f"/v1/sessions/{life.session_id}"
        step = STEPS[life.step]
        if step == "start":
            return self._call(
                "POST /v1/sessions/{id}/start", "POST", f"{base}/start", actor=life.a, key=("step", life)
            )
        if step in ("complete", "confirm"):  # the one, then the other, says it took place
            return self._call(
                f"POST /v1/sessions/{{id}}/{step}",
                "POST",
                f"{base}/{step}",
                actor=life.b if step == "complete" else life.a,
                key=("step", life),
            )
        rater, ratee = (life.a, life.b) if step == "rate-ab" else (life.b, life.a)
        scores = {dim: self.s.rng.randint(2, 5) for dim in self.s.rubric[life.skill]}
        return self._call(
            "POST /v1/sessions/{id}/ratings",
            "POST",
            f"{base}/ratings",
            actor=rater,
            body={"ratee_id": ratee, "scores": scores},
            key=("step", life),
        )

    # --- answers -------------------------------------------------------------------------------

    def answered(self, call: Call, answer: Answer | None) -> None:
        if call.key is None:
            return
        what, item = call.key
        s = self.s
        status = answer.status if answer is not None else 0
        if what == "step":
            self._stepped(item, status)
        elif what == "match":
            if status in (200, 202) and answer is not None:
                s.following.append((str(answer.json()["ticket_id"]), *item))
            elif status == 409:
                s.busy += 1
                s.to_match.append(item)
            else:
                s.unexpected[f"{call.kind} {status}"] += 1
        elif what == "ticket":
            view = answer.json() if answer is not None and status == 200 else {}
            if view.get("status") == "matched":
                session = str(view["session_id"])
                if session not in s.seen_sessions:
                    s.seen_sessions.add(session)
                    s.appearing.append((session, item[2], item[1]))
            elif view.get("status") == "waiting" or status != 200:
                s.following.append(item)  # read again later
        elif what == "session":
            if status == 200 and answer is not None:
                a, b = (str(x) for x in answer.json()["participants"])
                s.lifecycle.append(Lifecycle(item[0], item[1], a, b))
            else:
                s.appearing.append(item)  # not folded yet: read again later
        elif what == "register":
            if status == 201:
                s.registered.append(item)
                s.to_claim.append((item, s.skills[len(s.registered) % len(s.skills)]))
            else:
                s.unexpected[f"{call.kind} {status}"] += 1
        elif what == "claim":
            if status == 200:
                s.claims.append(item)
                s.to_match.append(item)
            else:
                s.unexpected[f"{call.kind} {status}"] += 1

    def _stepped(self, life: Lifecycle, status: int) -> None:
        s = self.s
        step = STEPS[life.step]
        expected = 201 if step.startswith("rate") else 200
        if status != expected:
            s.unexpected[f"{step} {status}"] += 1
            if status == 0 and step.startswith("rate"):
                rater, ratee = (life.a, life.b) if step == "rate-ab" else (life.b, life.a)
                s.unanswered.append((life.session_id, rater, ratee, life.skill))
            return  # the chain stops here
        if step == "rate-ab":
            s.ratings.append((life.session_id, life.a, life.b, life.skill))
        elif step == "rate-ba":
            s.ratings.append((life.session_id, life.b, life.a, life.skill))
        life.step += 1
        if life.step < len(STEPS):
            s.lifecycle.appendleft(life)  # a session under way goes on before a new one starts
        else:
            s.to_match.extend([(life.a, life.skill), (life.b, life.skill)])

    def outcome(self) -> dict[str, Any]:
        return {"state": self.s}
