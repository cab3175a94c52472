"""RS256 tokens from an identity provider: verified against its JWKS (served over real HTTP),
issuer and audience checked, the role read from the configured (nested) claim."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.auth import verify_token
from shared.settings import Settings

KID = "idp-key-1"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(key: rsa.RSAPrivateKey) -> Iterator[str]:
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _settings(jwks_url: str) -> Settings:
    return Settings(
        jwt_algorithm="RS256",
        jwt_jwks_url=jwks_url,
        jwt_issuer="https://idp.example/realms/lemma",
        jwt_audience="lemma-api",
        jwt_role_claim="realm_access.roles",
        jwt_ops_role="lemma-ops",
    )


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    base = {
        "sub": "ann",
        "iss": "https://idp.example/realms/lemma",
        "aud": "lemma-api",
        "exp": int(time.time()) + 300,
    }
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": KID})


def test_the_role_comes_from_the_configured_claim(key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    s = _settings(jwks_url)
    ops = verify_token(s, _token(key, realm_access={"roles": ["offline_access", "lemma-ops"]}))
    assert ops.learner_id == "ann" and ops.is_ops
    learner = verify_token(s, _token(key, realm_access={"roles": ["offline_access"]}))
    assert not learner.is_ops
    # a top-level "role" claim is not where this provider puts roles: it grants nothing
    assert not verify_token(s, _token(key, role="lemma-ops")).is_ops


def test_issuer_audience_and_key_are_checked(key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    s = _settings(jwks_url)
    with pytest.raises(jwt.InvalidAudienceError):
        verify_token(s, _token(key, aud="another-client"))
    with pytest.raises(jwt.InvalidIssuerError):
        verify_token(s, _token(key, iss="https://evil.example"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError):
        verify_token(s, _token(other))


def test_an_hs256_token_is_refused_where_rs256_is_expected(jwks_url: str) -> None:
    s = _settings(jwks_url)
    forged = jwt.encode(
        {"sub": "ann", "iss": s.jwt_issuer, "aud": s.jwt_audience, "exp": 2**40},
        "a-guessed-secret-of-32-bytes-or-more",
        algorithm="HS256",
        headers={"kid": KID},
    )
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(s, forged)
