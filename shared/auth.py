"""Bearer JWT verification and minting.

In development (and tests) tokens are HS256, minted here and signed with ``LEMMA_JWT_SECRET``;
in production they are the identity provider's RS256 tokens, verified against the keys at
``LEMMA_JWT_JWKS_URL`` (HS256 is refused there). Every token must carry the configured issuer
(``iss``) and audience (``aud``) and an expiry. The ``sub`` claim is the learner id; the role is
read from ``LEMMA_JWT_ROLE_CLAIM`` (``role`` in minted tokens): holding ``LEMMA_JWT_OPS_ROLE``
there makes the caller an operator.

Each verified token counts against its subject's request limit (``shared.rate_limits``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status

from shared.rate_limits import RateLimited, hit_token
from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Principal:
    learner_id: str
    role: str = "learner"

    @property
    def is_ops(self) -> bool:
        return self.role == "ops"


class MintingRefused(RuntimeError):
    """Tokens are minted here only in development and tests; production's come from the
    identity provider."""


def mint_token(
    settings: Settings, learner_id: str, *, role: str = "learner", ttl_s: int | None = None
) -> str:
    """An HS256 token for ``learner_id`` signed with the development secret."""
    if settings.environment == "production" or settings.jwt_algorithm != "HS256":
        raise MintingRefused("tokens are minted only in development (HS256); use the identity provider's")
    now = int(time.time())
    claims = {
        "sub": learner_id,
        "role": role,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (ttl_s or settings.jwt_ttl_s),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


_REQUIRED: Any = {"require": ["sub", "exp", "iss", "aud"]}


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
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options=_REQUIRED,
        )
        roles = _claim(claims, settings.jwt_role_claim)
    else:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options=_REQUIRED,
        )
        roles = claims.get("role")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not LEARNER_ID_PATTERN.fullmatch(sub):
        raise jwt.InvalidTokenError("the token's subject is not a valid learner id")
    held = [roles] if isinstance(roles, str) else roles if isinstance(roles, list) else []
    return Principal(learner_id=sub, role="ops" if settings.jwt_ops_role in held else "learner")


def _claim(claims: dict[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``realm_access.roles``), or ``None``."""
    found: Any = claims
    for part in path.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    return found


def _settings_of(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


async def require_principal(request: Request) -> Principal:
    """The caller of a route that needs a token: 401 without a good one, 429 over its limit."""
    principal = await optional_principal(request)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


async def optional_principal(request: Request) -> Principal | None:
    """The caller of a route anyone may read (``None``: anonymous); a token that is sent must
    be good (401 otherwise), and counts against its subject's limit."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the Authorization header must be a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = verify_token(_settings_of(request), token.strip())
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
    try:
        await hit_token(request, principal.learner_id)
    except RateLimited as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from exc
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]
MaybePrincipalDep = Annotated[Principal | None, Depends(optional_principal)]


def require_ops(principal: PrincipalDep) -> Principal:
    """The caller must hold an operator's token (``role: ops``): 403 otherwise."""
    if not principal.is_ops:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route is for operators (an ops token)")
    return principal


OpsDep = Annotated[Principal, Depends(require_ops)]
