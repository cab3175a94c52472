"""The Kafka security settings: what they refuse, and the client options they turn into (the same
for aiokafka's clients and FastStream's broker); and no client of ours is built another way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from faststream.specification import AsyncAPI

from shared.bus import make_broker
from shared.kafka_connection import KafkaConnection
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "jwt_algorithm": "RS256",
    "jwt_jwks_url": "https://idp.example/jwks.json",
    "rate_limit_storage": "redis://cache:6379",
}
SASL: dict[str, Any] = {"kafka_sasl_username": "sessions", "kafka_sasl_password": "s3cret-from-a-Secret"}


def test_sasl_needs_a_user_and_a_password() -> None:
    for protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        with pytest.raises(ValueError, match="LEMMA_KAFKA_SASL_USERNAME"):
            Settings(kafka_security_protocol=protocol)
        with pytest.raises(ValueError, match="LEMMA_KAFKA_SASL_PASSWORD"):
            Settings(kafka_security_protocol=protocol, kafka_sasl_username="sessions")
        assert Settings(kafka_security_protocol=protocol, **SASL).kafka_sasl_username == "sessions"


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile="/tls/tls.crt")
    with pytest.raises(ValueError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_keyfile="/tls/tls.key")


def test_production_refuses_kafka_in_the_clear_or_anonymous() -> None:
    with pytest.raises(ValueError, match="in the clear"):
        Settings(**PRODUCTION)  # PLAINTEXT by default
    with pytest.raises(ValueError, match="in the clear"):
        Settings(**PRODUCTION, kafka_security_protocol="SASL_PLAINTEXT", **SASL)
    with pytest.raises(ValueError, match="anonymous"):
        Settings(**PRODUCTION, kafka_security_protocol="SSL")
    # allowed: SASL over TLS, mTLS, and the clear where a mesh encrypts (said explicitly)
    assert Settings(**PRODUCTION, kafka_security_protocol="SASL_SSL", **SASL)
    mtls: dict[str, Any] = {"kafka_ssl_certfile": "/tls/tls.crt", "kafka_ssl_keyfile": "/tls/tls.key"}
    assert Settings(**PRODUCTION, kafka_security_protocol="SSL", **mtls)
    assert Settings(**PRODUCTION, kafka_allow_plaintext=True)
    # development and tests keep the local broker's plaintext
    assert Settings().kafka_security_protocol == "PLAINTEXT"


def test_the_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMMA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LEMMA_KAFKA_SASL_USERNAME", "sessions")
    monkeypatch.setenv("LEMMA_KAFKA_SASL_PASSWORD", "s3cret-from-a-Secret")
    settings = Settings()
    kafka = KafkaConnection.of(settings)
    # the AsyncAPI document every service serves names the mechanism, never the password
    spec = AsyncAPI(make_broker(settings, client_id="test"), title="t", version="1")
    published = json.dumps(spec.to_specification().to_jsonable())
    assert "scram512" in published
    for shown in (
        repr(settings),
        str(settings),
        repr(kafka),
        str(kafka),
        settings.model_dump_json(),
        published,
    ):
        assert "s3cret" not in shown
    assert kafka.client_options()["sasl_plain_password"] == "s3cret-from-a-Secret"


def test_plaintext_is_only_the_servers() -> None:
    kafka = KafkaConnection("a:9092, b:9092,")
    assert kafka.client_options() == {
        "bootstrap_servers": ["a:9092", "b:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.broker_security() is None


@pytest.mark.parametrize(
    ("protocol", "mechanism", "kind"),
    [
        ("SASL_SSL", "SCRAM-SHA-512", SASLScram512),
        ("SASL_SSL", "SCRAM-SHA-256", SASLScram256),
        ("SASL_SSL", "PLAIN", SASLPlaintext),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", SASLScram512),
        ("SSL", "SCRAM-SHA-512", BaseSecurity),
    ],
)
def test_faststream_gets_what_aiokafka_gets(protocol: str, mechanism: str, kind: type[BaseSecurity]) -> None:
    settings = Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, **SASL)
    kafka = KafkaConnection.of(settings)
    security = kafka.broker_security()
    assert type(security) is kind
    options = kafka.client_options()
    del options["bootstrap_servers"]
    parsed = parse_security(security)
    if not kafka.uses_tls:
        assert options.get("ssl_context") is None and parsed.pop("ssl_context") is None
    else:
        assert options["ssl_context"] is parsed["ssl_context"] is not None  # one context, verifying
        assert parsed["ssl_context"].check_hostname
    assert parsed == options
    assert type(make_broker(settings, client_id="test").specification.security) is kind


#: where a Kafka client may be constructed: the connection, and FastStream's broker in make_broker
BUILDERS = {"shared/kafka_connection.py": 3, "shared/bus.py": 1}
CLIENT = re.compile(r"\b(AIOKafkaConsumer|AIOKafkaProducer|AIOKafkaAdminClient|KafkaBroker)\(")


def test_every_client_of_the_system_is_built_through_the_connection() -> None:
    """No consumer, producer, admin client or broker in the services, the CLI or the deploy code
    connects without the security settings."""
    found: dict[str, int] = {}
    for package in ("shared", "services", "cli", "deploy"):
        for path in sorted((ROOT / package).rglob("*.py")):
            count = len(CLIENT.findall(path.read_text()))
            if count:
                found[str(path.relative_to(ROOT))] = count
    assert found == BUILDERS
