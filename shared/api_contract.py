"""What every service's OpenAPI document says beyond its routes' own declarations: its errors,
its bearer tokens and the consistency header every route takes.

Every error a service answers with is an RFC 9457 problem detail (``shared.problems``), served as
``application/problem+json``; FastAPI's own document would say ``application/json`` with its
validation error shape. ``describe_contract`` rewrites the document once, when it is first built:

- an error response (4xx, 5xx) that names no body of its own is a ``ProblemDetail`` served as
  ``application/problem+json`` (a route lists the statuses it answers with in ``responses=``);
- a route that takes a bearer token (it depends on ``require_principal``) documents the bearer
  scheme and its 401; one for operators (``require_ops``) also its 403; one that reads a token
  when one is sent (``optional_principal``) the scheme as optional and its 401;
- every route the request limits count (all but the probes and the scrape,
  ``shared.rate_limits``) documents its 429;
- a route that takes a body documents the 400 FastAPI answers when it cannot decode it (bytes
  that are not UTF-8; JSON that does not parse is a 422);
- every route takes the ``Lemma-After`` header (``shared.consistency_http``, a middleware) and
  answers a malformed one with a 422.

An error response that names a model of its own (``/readyz``'s 503) is left as it is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import optional_principal, require_ops, require_principal
from shared.consistency import AFTER_HEADER, STALE_HEADER, TOKEN_HEADER
from shared.problems import PROBLEM_JSON
from shared.rate_limits import UNLIMITED_PATHS

BEARER = "bearer"
_REF = "#/components/schemas/{model}"
_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="ProblemDetail")}}}
#: FastAPI's validation error shapes, which no service answers with
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
AFTER_PARAMETER = {
    "name": AFTER_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": f"{TOKEN_HEADER} values of earlier writes (comma-separated): the answer waits, 5 s at "
    f"most, until this service has seen them, else it says {STALE_HEADER}: true",
}


class FieldError(BaseModel):
    """One reason a request was not valid: where (``["body", "scores"]``), what and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ProblemDetail(BaseModel):
    """An RFC 9457 problem detail: every error a service answers with."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="always about:blank: the status says it all")
    title: str = Field(description="the status's phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, for a person")
    instance: str = Field(description="the request's path")
    errors: list[FieldError] | None = Field(
        default=None, description="with a 422 for a request that does not fit its schema: each reason"
    )


def install_contract_docs(app: FastAPI) -> None:
    """Have ``app``'s OpenAPI document say what the module's docstring lists."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe_contract(build(), app.routes)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_contract(doc: dict[str, Any], routes: Iterable[Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document built from ``routes`` in place (see the module's docstring)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDetail.model_json_schema(ref_template=_REF)
    schemas.update(problem.pop("$defs", {}))
    schemas["ProblemDetail"] = problem
    bearer = False
    for route in iter_route_contexts(list(routes)):  # included routers' routes too, as FastAPI sees them
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_dependency_calls(route.dependant))
        for method in route.methods or ():
            operation = doc.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            operation.setdefault("parameters", []).append(dict(AFTER_PARAMETER))
            responses.setdefault(
                "422", {"description": f"A {AFTER_HEADER} header that holds no token of ours"}
            )
            if require_principal in calls:
                bearer = True
                operation["security"] = [{BEARER: []}]
                responses.setdefault("401", {"description": "No bearer token, or one that is not valid"})
            elif optional_principal in calls:
                bearer = True
                operation["security"] = [{}, {BEARER: []}]  # anyone; a token sent must be good
                responses.setdefault("401", {"description": "A bearer token that is not valid"})
            if route.path_format not in UNLIMITED_PATHS:
                responses.setdefault(
                    "429",
                    {"description": "Over the request limit of the token or the address: see Retry-After"},
                )
            if require_ops in calls:
                responses.setdefault("403", {"description": "The token is not an operator's (role ops)"})
            if "requestBody" in operation:  # FastAPI's answer to a body it cannot decode (not UTF-8)
                responses.setdefault("400", {"description": "The body could not be read"})
            for status, response in responses.items():
                if _is_error(status) and _names_no_body(response):
                    response["content"] = copy.deepcopy(_PROBLEM)
    if bearer:
        doc["components"].setdefault("securitySchemes", {})[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "`sub` is the learner id; `role: ops` marks operators",
        }
    for name in _FASTAPI_ERRORS:  # unless a route still names one
        if f'"{_REF.format(model=name)}"' not in json.dumps(doc):
            schemas.pop(name, None)
    return doc


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependency_calls(dependency)


def _is_error(status: str) -> bool:
    return status[:1] in ("4", "5")


def _names_no_body(response: dict[str, Any]) -> bool:
    """No content, or FastAPI's validation error shape (which the services never answer with)."""
    content = response.get("content")
    if not content:
        return True
    refs = {str(media.get("schema", {}).get("$ref", "")).rsplit("/", 1)[-1] for media in content.values()}
    return refs <= set(_FASTAPI_ERRORS)
