"""Settings refuse the development secret in production; tokens verify and fail as they should."""

from __future__ import annotations

import jwt
import pytest

from shared.auth import mint_token, verify_token
from shared.settings import DEV_SECRET, Settings


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="LEMMA_JWT_SECRET"):
        Settings(environment="production")
    assert Settings(environment="production", jwt_secret="a-real-secret-from-the-environment")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("LEMMA_KAFKA_IDEMPOTENCE", "true")
    s = Settings()
    assert s.kafka_bootstrap == "broker:9093" and s.kafka_idempotence is True
    assert s.jwt_secret == DEV_SECRET and s.environment == "development"


def test_store_url_defaults_to_one_sqlite_file_per_service(tmp_path: object) -> None:
    s = Settings(state_dir="/tmp/lemma-state")
    assert s.store_url_for("sci") == "sqlite:////tmp/lemma-state/data/sci.db"
    assert Settings(store_url="mongodb://db/lemma").store_url_for("sci") == "mongodb://db/lemma"


def test_token_round_trip_and_role() -> None:
    s = Settings(jwt_secret="k" * 32)
    p = verify_token(s, mint_token(s, "learner-1", role="ops"))
    assert p.learner_id == "learner-1" and p.is_ops


def test_wrong_secret_expired_and_foreign_tokens_fail() -> None:
    s = Settings(jwt_secret="k" * 32)
    other = Settings(jwt_secret="x" * 32)
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, mint_token(other, "a"))
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, mint_token(s, "a", ttl_s=-10))
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(
            s, jwt.encode({"sub": "a", "iss": "elsewhere", "exp": 2**40}, "k" * 32, algorithm="HS256")
        )
    with pytest.raises(jwt.InvalidTokenError, match="exp"):
        verify_token(s, jwt.encode({"sub": "a", "iss": "lemma"}, "k" * 32, algorithm="HS256"))
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, jwt.encode({"sub": "a", "iss": "lemma", "exp": 2**40}, "k" * 64, algorithm="HS512"))
