"""Every error a service returns is RFC 9457 problem details, the unexpected ones included."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.errors import Refused
from shared.metrics import http_latency_middleware
from shared.problems import install_problem_handlers


class Body(BaseModel):
    n: int


def app() -> FastAPI:
    api = FastAPI()
    api.middleware("http")(http_latency_middleware("test"))
    install_problem_handlers(api)

    @api.post("/things/{thing}")
    async def thing(thing: str, body: Body) -> dict[str, int]:
        if thing == "taken":
            raise Refused(409, "taken already")
        if thing == "boom":
            raise RuntimeError("a bug")
        return {"n": body.n}

    return api


def test_refused_validation_and_bugs_are_problem_details() -> None:
    client = TestClient(app(), raise_server_exceptions=False)
    r = client.post("/things/taken", json={"n": 1})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "about:blank", "title": "Conflict", "status": 409, "detail": "taken already",
        "instance": "/things/taken",
    }  # fmt: skip
    r = client.post("/things/x", json={"n": "many"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "n"]
    r = client.post("/things/boom", json={"n": 1})
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert "a bug" not in r.text  # the cause is logged, not shown
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["status"] == 404
