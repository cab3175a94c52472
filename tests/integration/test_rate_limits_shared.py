"""Request limits counted in one Redis: replicas of a service count a token and an address
together, so N replicas do not allow N times the limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.rate_limits import RATE_LIMITED, RateLimited, RateLimiter
from shared.settings import Settings
from tests.support.redis_server import redis_server
from tests.unit.test_rate_limits import SECRET, app_with, bearer, client


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def test_two_replicas_count_one_token_together(redis_url: str) -> None:
    settings = Settings(
        jwt_secret=SECRET,
        rate_limit_per_token="6/minute",
        rate_limit_per_ip="",
        rate_limit_storage=redis_url,
    )
    one, two = app_with(settings), app_with(settings)
    token = bearer(settings, "hammer")
    before = RATE_LIMITED.labels("test", "token")._value.get()
    async with client(one) as a, client(two) as b:
        statuses = [(await (a if n % 2 else b).get("/mine", headers=token)).status_code for n in range(8)]
    assert statuses == [200] * 6 + [429] * 2, statuses
    assert RATE_LIMITED.labels("test", "token")._value.get() - before == 2


async def test_two_replicas_count_one_address_together(redis_url: str) -> None:
    settings = Settings(rate_limit_per_token="", rate_limit_per_ip="4/minute", rate_limit_storage=redis_url)
    limiters = [RateLimiter.from_settings("test", settings) for _ in range(2)]
    outcomes = []
    for n in range(6):
        try:
            await limiters[n % 2].hit("address", "203.0.113.9")
            outcomes.append("passed")
        except RateLimited:
            outcomes.append("limited")
    assert outcomes == ["passed"] * 4 + ["limited"] * 2
