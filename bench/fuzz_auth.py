"""Which bearer token each fuzzed request carries, so that it reaches the route's happy path.

A request to an operator's route (``/ops/...``) carries an operator's token. Any other carries a
learner's, whose subject is the learner the request names: the ``learner_id`` in its path; a
participant of the session in its path (the partner of the one its body names as ratee or
no-show); the learner of the ticket in its path; for a registration, a new learner named after
the handle. Otherwise one of the scene's learners, picked by a hash of the request (so a run
with one seed sends the same tokens). Sessions and tickets the fuzzer comes across on its way
(``Scene.learn``) count too.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from requests.structures import CaseInsensitiveDict
from schemathesis import AuthContext, Case

from bench.fuzz_scene import Scene
from shared.auth import LEARNER_ID_PATTERN

OPS_SUBJECT = "fuzz-ops"


def credentials(
    scene: Scene, method: str, path: str, path_parameters: Mapping[str, Any], body: Any
) -> tuple[str, str]:
    """(subject, role) of the token for a request to the route ``path`` (its template)."""
    if path.startswith("/ops/"):
        return OPS_SUBJECT, "ops"
    learner = path_parameters.get("learner_id")
    if _is_learner_id(learner):
        return str(learner), "learner"
    fields = body if isinstance(body, Mapping) else {}
    session = scene.sessions.get(str(path_parameters.get("session_id")))
    if session is not None:
        first, second = session
        named = fields.get("ratee_id", fields.get("no_show"))
        return (second if named == first else first), "learner"
    owner = scene.tickets.get(str(path_parameters.get("ticket_id")))
    if owner is not None:
        return owner, "learner"
    handle = fields.get("handle")
    if (
        method.upper() == "POST"
        and path == "/v1/learners"
        and isinstance(handle, str)
        and _is_learner_id(f"fz-{handle}")
    ):
        return f"fz-{handle}", "learner"
    key = json.dumps([method, path, dict(path_parameters), fields], sort_keys=True, default=str)
    return scene.learners[zlib.crc32(key.encode()) % len(scene.learners)], "learner"


def _is_learner_id(value: object) -> bool:
    return isinstance(value, str) and LEARNER_ID_PATTERN.fullmatch(value) is not None


def token_provider(scene: Scene) -> type:
    """A Schemathesis auth provider class (``schema.auth(refresh_interval=None)(...)``)."""

    class SceneTokens:
        def get(self, case: Case[Any], context: AuthContext) -> str:
            subject, role = credentials(scene, case.method, case.path, case.path_parameters or {}, case.body)
            return scene.token(subject, role)

        def set(self, case: Case[Any], data: str, context: AuthContext) -> None:
            if case.headers is None:
                case.headers = CaseInsensitiveDict()
            case.headers["Authorization"] = f"Bearer {data}"

    return SceneTokens
