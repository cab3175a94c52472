"""Settings refuse the development secret in production; tokens verify and fail as they should."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from shared.auth import mint_token, verify_token
from shared.settings import DEV_SECRET, Settings

#: a production service's Kafka security (SASL over TLS, its own user)
KAFKA_SASL_SSL: dict[str, Any] = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "sessions",
    "kafka_sasl_password": "from-the-secret",
}


def test_production_refuses_hs256_and_limits_counted_per_replica() -> None:
    with pytest.raises(ValueError, match="RS256"):
        Settings(environment="production", jwt_secret="a-real-secret-from-the-environment")
    jwks = "https://idp.example/jwks.json"
    with pytest.raises(ValueError, match="RATE_LIMIT_STORAGE"):
        Settings(environment="production", jwt_algorithm="RS256", jwt_jwks_url=jwks)
    assert Settings(
        environment="production",
        jwt_algorithm="RS256",
        jwt_jwks_url=jwks,
        rate_limit_storage="redis://cache:6379",
        **KAFKA_SASL_SSL,
    )


def test_tokens_are_minted_only_in_development() -> None:
    from shared.auth import MintingRefused

    production = Settings(
        environment="production",
        jwt_algorithm="RS256",
        jwt_jwks_url="https://idp.example/jwks.json",
        rate_limit_storage="redis://cache:6379",
        **KAFKA_SASL_SSL,
    )
    with pytest.raises(MintingRefused):
        mint_token(production, "ann")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMMA_KAFKA_BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("LEMMA_KAFKA_IDEMPOTENCE", "true")
    s = Settings()
    assert s.kafka_bootstrap == "broker:9093" and s.kafka_idempotence is True
    assert s.jwt_secret == DEV_SECRET and s.environment == "development"


def test_store_url_defaults_to_one_sqlite_file_per_service(tmp_path: object) -> None:
    s = Settings(state_dir="/tmp/lemma-state")
    assert s.store_url_for("sci") == "sqlite:////tmp/lemma-state/data/sci.db"
    url = "mongodb://db/lemma_{service}?replicaSet=rs0"
    assert Settings(store_url=url).store_url_for("sci") == "mongodb://db/lemma_sci?replicaSet=rs0"


def test_a_store_url_shared_by_every_service_is_refused() -> None:
    with pytest.raises(ValueError, match="service"):
        Settings(store_url="mongodb://db/lemma")


def test_rs256_needs_a_jwks_url() -> None:
    with pytest.raises(ValueError, match="JWKS"):
        Settings(jwt_algorithm="RS256")


def test_token_round_trip_and_role() -> None:
    s = Settings(jwt_secret="k" * 32)
    p = verify_token(s, mint_token(s, "learner-1", role="ops"))
    assert p.learner_id == "learner-1" and p.is_ops


@pytest.mark.parametrize("sub", ["", "a/b", "../x", "x" * 200, "a b"])
def test_a_subject_that_is_not_a_learner_id_is_refused(sub: str) -> None:
    s = Settings(jwt_secret="k" * 32)
    with pytest.raises(jwt.InvalidTokenError, match="subject"):
        verify_token(s, mint_token(s, sub))


def test_unreachable_signing_keys_are_not_an_invalid_token() -> None:
    from shared.auth import KeysUnavailable

    s = Settings(jwt_algorithm="RS256", jwt_jwks_url="http://127.0.0.1:9/jwks.json")
    with pytest.raises(KeysUnavailable):
        verify_token(s, jwt.encode({"sub": "a"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"}))


def test_wrong_secret_expired_and_foreign_tokens_fail() -> None:
    s = Settings(jwt_secret="k" * 32)
    other = Settings(jwt_secret="x" * 32)
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, mint_token(other, "a"))
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, mint_token(s, "a", ttl_s=-10))
    aud = s.jwt_audience
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(
            s,
            jwt.encode(
                {"sub": "a", "iss": "elsewhere", "aud": aud, "exp": 2**40}, "k" * 32, algorithm="HS256"
            ),
        )
    with pytest.raises(jwt.InvalidTokenError, match="exp"):
        verify_token(s, jwt.encode({"sub": "a", "iss": "lemma", "aud": aud}, "k" * 32, algorithm="HS256"))
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(
            s, jwt.encode({"sub": "a", "iss": "lemma", "aud": aud, "exp": 2**40}, "k" * 64, algorithm="HS512")
        )


def test_a_token_for_another_audience_or_none_is_refused() -> None:
    s = Settings(jwt_secret="k" * 32)
    claims = {"sub": "a", "iss": "lemma", "exp": 2**40, "role": "ops"}
    with pytest.raises(jwt.InvalidTokenError, match="aud"):
        verify_token(s, jwt.encode(claims, "k" * 32, algorithm="HS256"))
    with pytest.raises(jwt.InvalidAudienceError):
        verify_token(s, jwt.encode({**claims, "aud": "another-app"}, "k" * 32, algorithm="HS256"))
    assert verify_token(s, jwt.encode({**claims, "aud": s.jwt_audience}, "k" * 32, algorithm="HS256")).is_ops


def test_only_the_configured_ops_role_makes_an_operator() -> None:
    s = Settings(jwt_secret="k" * 32)
    assert not verify_token(s, mint_token(s, "a", role="admin")).is_ops
    assert not verify_token(s, mint_token(s, "a", role="OPS")).is_ops
    assert verify_token(s, mint_token(s, "a", role="ops")).is_ops
