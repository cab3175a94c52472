"""Which bearer token each fuzzed request carries, so that it reaches the route's happy path.

A request to an operator's route (tagged ``ops`` in its document: ``/ops/...``, matching's
ownership) carries an operator's token. Any other carries a
learner's, whose subject is the learner the request names: the ``learner_id`` in its path or
query; a participant of the session in its path (the partner of the one its body names as
ratee or no-show); the learner of the ticket in its path; for a registration, a new learner
named after the handle. Otherwise one of the scene's learners. Where there is a choice (which
learner, which of a few operators: a token's requests are limited per minute) it is made by a
hash of the request, so a run with one seed sends the same tokens. Sessions and tickets the
fuzzer comes across on its way (``fuzz_run.Learned``) count too.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from requests.structures import CaseInsensitiveDict
from schemathesis import AuthContext, Case

from bench.fuzz_scene import Scene
from shared.auth import LEARNER_ID_PATTERN

OPS_SUBJECT = "fuzz-ops"
#: operators the fuzzer's requests to ``/ops/`` are spread over (each token has its own limit)
OPERATORS = 5


def credentials(
    scene: Scene,
    method: str,
    path: str,
    path_parameters: Mapping[str, Any],
    body: Any,
    query: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
) -> tuple[str, str]:
    """(subject, role) of the token for a request to the route ``path`` (its template), tagged
    ``tags`` in its document."""
    fields = body if isinstance(body, Mapping) else {}
    request = [method, path, dict(path_parameters), dict(fields), dict(query or {})]
    pick = zlib.crc32(json.dumps(request, sort_keys=True, default=str).encode())
    if "ops" in tags or path.startswith("/ops/"):
        return f"{OPS_SUBJECT}-{pick % OPERATORS}", "ops"
    for learner in (path_parameters.get("learner_id"), (query or {}).get("learner_id")):
        if _is_learner_id(learner):
            return str(learner), "learner"
    session = scene.sessions.get(str(path_parameters.get("session_id")))
    if session is not None:
        first, second = session
        named = fields.get("ratee_id", fields.get("no_show"))
        return (second if named == first else first), "learner"
    owner = scene.tickets.get(str(path_parameters.get("ticket_id")))
    if owner is not None:
        return owner, "learner"
    handle = fields.get("handle")
    registering = method.upper() == "POST" and path == "/v1/learners"
    if registering and isinstance(handle, str) and _is_learner_id(f"fz-{handle}"):
        return f"fz-{handle}", "learner"
    return scene.learners[pick % len(scene.learners)], "learner"


def _is_learner_id(value: object) -> bool:
    return isinstance(value, str) and LEARNER_ID_PATTERN.fullmatch(value) is not None


def token_provider(scene: Scene) -> type:
    """A Schemathesis auth provider class (``schema.auth(refresh_interval=None)(...)``)."""

    class SceneTokens:
        def get(self, case: Case[Any], context: AuthContext) -> str:
            subject, role = credentials(
                scene,
                case.method,
                case.path,
                case.path_parameters or {},
                case.body,
                case.query or {},
                case.operation.tags or (),
            )
            return scene.token(subject, role)

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            if case.headers is None:
                case.headers = CaseInsensitiveDict()
            case.headers["Authorization"] = f"Bearer {data}"

    return SceneTokens
