"""Access JWTs (short-lived, HS256) and opaque secrets (refresh, invitation, reset, API key).

Opaque secrets are random, shown once, and stored as their SHA-256 hex digest: a database
leak does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from aisha_server.auth.roles import Role
from aisha_server.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "aisha"


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID | None
    role: Role
    session_id: uuid.UUID
    expires_at: float


class TokenService:
    """Signs and verifies access tokens.  Verified tokens are memoised until they expire, so
    an authenticated request costs a dictionary lookup, not an HMAC and a JSON parse."""

    def __init__(self, secret: str, *, access_ttl: timedelta, cache_size: int = 10_000) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID | None,
        role: Role,
        session_id: uuid.UUID,
        now: datetime | None = None,
    ) -> tuple[str, datetime]:
        now = now or datetime.now(UTC)
        expires = now + self.access_ttl
        payload = {
            "iss": ISSUER,
            "sub": str(user_id),
            "tid": str(tenant_id) if tenant_id else None,
            "role": role.value,
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "typ": "access",
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), expires

    def verify_access(self, token: str, *, now: float) -> AccessClaims:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at <= now:
                self._cache.pop(token, None)
                raise Unauthorized("Token expired", code="token_expired")
            return cached
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid token", code="invalid_token") from None
        try:
            if payload.get("typ") != "access":
                raise ValueError("not an access token")
            claims = AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                tenant_id=uuid.UUID(payload["tid"]) if payload.get("tid") else None,
                role=Role(payload["role"]),
                session_id=uuid.UUID(payload["sid"]),
                expires_at=float(payload["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("Invalid token", code="invalid_token") from None
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)
