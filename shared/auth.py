"""Bearer JWT verification and minting.

Locally tokens are HS256 signed with ``LEMMA_JWT_SECRET``; in production RS256
tokens are verified against the keys at ``LEMMA_JWT_JWKS_URL``. The ``sub`` claim is
the learner id; ``role: ops`` marks operators.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status

from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Principal:
    learner_id: str
    role: str = "learner"

    @property
    def is_ops(self) -> bool:
        return self.role == "ops"


def mint_token(
    settings: Settings, learner_id: str, *, role: str = "learner", ttl_s: int | None = None
) -> str:
    now = int(time.time())
    claims = {
        "sub": learner_id,
        "role": role,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + (ttl_s or settings.jwt_ttl_s),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


_REQUIRED: Any = {"require": ["sub", "exp", "iss"]}


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url)


def verify_token(settings: Settings, token: str) -> Principal:
    """Decode and check a token; raises ``jwt.InvalidTokenError`` when it is not good."""
    if settings.jwt_algorithm == "RS256":
        key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
        claims = jwt.decode(token, key, algorithms=["RS256"], issuer=settings.jwt_issuer, options=_REQUIRED)
    else:
        claims = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], issuer=settings.jwt_issuer, options=_REQUIRED
        )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise jwt.InvalidTokenError("token has no subject")
    return Principal(learner_id=sub, role=str(claims.get("role", "learner")))


def _settings_of(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def require_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return verify_token(_settings_of(request), token.strip())
    except jwt.InvalidTokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"invalid token: {exc}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc


PrincipalDep = Annotated[Principal, Depends(require_principal)]
