"""Bearer JWT verification and minting.

Locally tokens are HS256 signed with ``LEMMA_JWT_SECRET``; in production RS256
tokens are verified against the keys at ``LEMMA_JWT_JWKS_URL``. The ``sub`` claim is
the learner id; ``role: ops`` marks operators.
"""

from __future__ import annotations

import re
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


#: What a learner id (a token's ``sub``) may look like: ids are used in document keys and URLs.
LEARNER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


class KeysUnavailable(Exception):
    """The JWKS endpoint could not be reached: the service cannot check any token now."""


def verify_token(settings: Settings, token: str) -> Principal:
    """Decode and check a token; raises ``jwt.InvalidTokenError`` when it is not good and
    ``KeysUnavailable`` when the signing keys cannot be fetched."""
    if settings.jwt_algorithm == "RS256":
        try:
            key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(str(exc)) from exc
        except jwt.PyJWKClientError as exc:  # no key with the token's kid
            raise jwt.InvalidTokenError(str(exc)) from exc
        claims = jwt.decode(token, key, algorithms=["RS256"], issuer=settings.jwt_issuer, options=_REQUIRED)
    else:
        claims = jwt.decode(
            token, settings.jwt_secret, algorithms=["HS256"], issuer=settings.jwt_issuer, options=_REQUIRED
        )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not LEARNER_ID_PATTERN.fullmatch(sub):
        raise jwt.InvalidTokenError("the token's subject is not a valid learner id")
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
    except KeysUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the token signing keys cannot be fetched now"
        ) from exc


PrincipalDep = Annotated[Principal, Depends(require_principal)]


def require_ops(principal: PrincipalDep) -> Principal:
    """The caller must hold an operator's token (``role: ops``): 403 otherwise."""
    if not principal.is_ops:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route is for operators (an ops token)")
    return principal


OpsDep = Annotated[Principal, Depends(require_ops)]
