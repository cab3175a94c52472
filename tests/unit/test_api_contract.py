"""Each service's OpenAPI document tells the truth about its errors, tokens and headers (what
Schemathesis found it did not: ``tests/e2e/test_service_openapi_fuzz.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.evidence.app import bootstrap as evidence
from services.matching.app import bootstrap as matching
from services.passport.app import bootstrap as passport
from services.sci.app import bootstrap as sci
from services.sessions.app import bootstrap as sessions
from shared.api_contract import ProblemDetail
from shared.auth import mint_token
from shared.consistency import AFTER_HEADER
from shared.problems import PROBLEM_JSON
from shared.settings import Settings
from shared.store.sqlite import SqliteStore

SETTINGS = Settings(environment="test")
PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}
APPS = {"passport": passport, "matching": matching, "sessions": sessions, "evidence": evidence, "sci": sci}


def app_of(service: str) -> FastAPI:
    """The service's app, not started: its routes and its document, no broker or fold."""
    return APPS[service](SETTINGS, store=SqliteStore(":memory:"))


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


@pytest.mark.parametrize("service", APPS)
def test_every_error_is_documented_as_a_problem_detail(service: str) -> None:
    doc = app_of(service).openapi()
    for name, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and name != "GET /readyz":
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (name, status)
        assert "422" in operation["responses"], name  # a malformed Lemma-After, at least
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert headers.count(AFTER_HEADER) == 1, name
        if "requestBody" in operation:
            assert "400" in operation["responses"], name
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"
    }


@pytest.mark.parametrize("service", APPS)
def test_routes_taking_a_token_document_the_bearer_scheme_401_and_for_operators_403(service: str) -> None:
    doc = app_of(service).openapi()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    secured = {name for name, op in operations(doc) if op.get("security") == [{"bearer": []}]}
    for name, operation in operations(doc):
        if name in secured:
            assert "401" in operation["responses"], name
        if " /ops/" in name:
            assert name in secured and "403" in operation["responses"], name
    assert "POST /ops/projections/{name}/resume" in secured and "GET /healthz" not in secured
    if service == "sessions":
        assert "POST /v1/sessions/{session_id}/ratings" in secured


@pytest.mark.parametrize(
    ("service", "name", "statuses"),
    [
        ("passport", "PUT /v1/learners/{learner_id}/skills/{skill}", "200 400 401 403 404 409 410 422 429"),
        ("passport", "GET /v1/passports/{who}", "200 404 410 422 429"),
        ("passport", "GET /v1/skills/{skill}", "200 404 422 429"),
        ("matching", "DELETE /v1/match-requests/{ticket_id}", "200 202 401 403 404 409 422 429"),
        ("sessions", "POST /v1/sessions/{session_id}/ratings", "201 400 401 403 404 409 410 422 429"),
        ("sci", "GET /v1/scores/{learner_id}/{skill}", "200 404 422 429"),
        ("evidence", "POST /ops/projections/{name}/redrive", "200 400 401 403 404 422 429"),
        ("evidence", "GET /healthz", "200 422"),  # probes are not limited
    ],
)
def test_the_statuses_a_route_answers_with_are_documented(service: str, name: str, statuses: str) -> None:
    assert set(dict(operations(app_of(service).openapi()))[name]["responses"]) == set(statuses.split())


def test_problems_a_service_answers_with_fit_the_documented_shape() -> None:
    client = TestClient(app_of("passport"), raise_server_exceptions=False)
    for answer in (
        client.get("/v1/skills/astrology"),  # Problem
        client.post("/v1/waitlist", json={"email": 7}),  # a request that does not fit its schema
        client.get("/v1/skills", headers={AFTER_HEADER: "not a token!"}),  # the middleware's
    ):
        assert answer.status_code in (404, 422) and answer.headers["content-type"] == PROBLEM_JSON, (
            answer.text
        )
        ProblemDetail.model_validate(answer.json())


def test_passport_answers_its_operator_routes_with_problem_details_not_its_404_page() -> None:
    """Found by fuzzing: ``/ops/`` was not among passport's JSON paths, so an unknown projection
    (404) or method (405) there got the HTML 'no page at this address'."""
    client = TestClient(app_of("passport"), raise_server_exceptions=False)
    ops = {"Authorization": f"Bearer {mint_token(SETTINGS, 'operator', role='ops')}"}
    missing = client.post("/ops/projections/no-such-projection/resume", headers=ops)
    wrong_method = client.delete("/ops/projections", headers=ops)
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    for answer in (missing, wrong_method):
        assert answer.headers["content-type"] == PROBLEM_JSON, answer.text
        ProblemDetail.model_validate(answer.json())
    assert client.get("/no/such/page").headers["content-type"].startswith("text/html")  # pages keep theirs
