"""Request limits per token and per address: the 429 with Retry-After, who counts against
what, and that a limit is a bound (exactly N requests pass in the window, not N+1)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import PrincipalDep, mint_token
from shared.problems import install_problem_handlers
from shared.rate_limits import RATE_LIMIT_ERRORS, RateLimited, RateLimiter, address_limit_middleware
from shared.settings import Settings

SECRET = "k" * 32


def app_with(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.state.limiter = RateLimiter.from_settings("test", settings)
    app.middleware("http")(address_limit_middleware(app.state.limiter))
    install_problem_handlers(app)

    @app.get("/mine")
    async def mine(principal: PrincipalDep) -> dict[str, str]:
        return {"who": principal.learner_id}

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def client(app: FastAPI, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://lemma")


def bearer(settings: Settings, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, who)}"}


async def test_a_token_gets_exactly_its_limit_then_429_with_retry_after() -> None:
    settings = Settings(jwt_secret=SECRET, rate_limit_per_token="5/minute", rate_limit_per_ip="")
    app = app_with(settings)
    async with client(app) as http:
        answers = [await http.get("/mine", headers=bearer(settings, "ann")) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        refused = answers[-1]
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # another token is not held back by ann's, though both come from one address
        assert (await http.get("/mine", headers=bearer(settings, "bob"))).status_code == 200


async def test_a_forged_token_spends_nothing_of_the_subject_it_names() -> None:
    settings = Settings(jwt_secret=SECRET, rate_limit_per_token="3/minute", rate_limit_per_ip="")
    forger = Settings(jwt_secret="x" * 32)
    app = app_with(settings)
    async with client(app) as http:
        for _ in range(10):
            assert (await http.get("/mine", headers=bearer(forger, "ann"))).status_code == 401
        assert (await http.get("/mine", headers=bearer(settings, "ann"))).status_code == 200


async def test_an_address_is_limited_on_every_route_but_the_probes() -> None:
    settings = Settings(jwt_secret=SECRET, rate_limit_per_token="", rate_limit_per_ip="4/minute")
    app = app_with(settings)
    async with client(app, "10.0.0.7") as http, client(app, "10.0.0.8") as other:
        assert [(await http.get("/public")).status_code for _ in range(5)] == [200] * 4 + [429]
        assert (await http.get("/mine", headers=bearer(settings, "ann"))).status_code == 429
        assert [(await http.get("/readyz")).status_code for _ in range(10)] == [200] * 10
        assert (await other.get("/public")).status_code == 200  # another address: its own count


async def test_no_limit_configured_is_no_limit() -> None:
    settings = Settings(jwt_secret=SECRET, rate_limit_per_token="", rate_limit_per_ip="")
    app = app_with(settings)
    async with client(app) as http:
        mine = bearer(settings, "ann")
        assert [(await http.get("/mine", headers=mine)).status_code for _ in range(50)] == [200] * 50


async def test_an_unreachable_storage_lets_requests_through() -> None:
    settings = Settings(
        jwt_secret=SECRET, rate_limit_per_ip="1/minute", rate_limit_storage="redis://127.0.0.1:9"
    )
    limiter = RateLimiter.from_settings("test", settings)
    before = RATE_LIMIT_ERRORS.labels("test")._value.get()
    for _ in range(3):
        await limiter.hit("address", "10.0.0.1")  # no RateLimited: failing open, counted
    assert RATE_LIMIT_ERRORS.labels("test")._value.get() - before == 3


def test_a_limit_that_is_not_one_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        RateLimiter.from_settings("test", Settings(rate_limit_per_token="lots"))
    assert RateLimited("token", "5 per 1 minute", 7).retry_after_s == 7
