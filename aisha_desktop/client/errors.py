"""What can go wrong talking to a server, as a small typed hierarchy.

Every failure a caller of the client sees is a `ClientError`: an `OfflineError` when the server
could not be reached (the sync engine goes offline on it), or an `ApiError` built from the
server's error envelope `{"status":"error","message":...,"code":...,"details":...}`.  No httpx
exception crosses the client's boundary.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"


class ClientError(Exception):
    """Base of every error the API client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OfflineError(ClientError, ConnectionError):
    """The server could not be reached or did not answer in time (connect error, reset
    connection, timeout).  For a write the outcome is unknown: retry it idempotently."""


class ApiError(ClientError):
    """The server answered with an error status.  `code` is the server's machine-readable
    code (`invalid_credentials`, `version_conflict`, ...), `details` its structured extra."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details
        self.request_id = request_id
        self.body: Mapping[str, Any] = body or {}

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.status}{code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class ValidationError(ApiError):
    """400 or 422: the request was malformed or a field failed validation."""

    @property
    def field_errors(self) -> dict[str, str]:
        """`{field: message}` from a 422's details (`[{"field", "message", "type"}]`)."""
        found: dict[str, str] = {}
        if isinstance(self.details, list):
            for item in self.details:
                if isinstance(item, Mapping) and isinstance(item.get("field"), str):
                    found.setdefault(item["field"], str(item.get("message", "")))
        return found


class AuthError(ApiError):
    """401: not authenticated (wrong credentials, missing or unusable token)."""


class SessionExpired(AuthError):
    """The login session is over (refresh token expired, revoked or reused): log in again."""


class Forbidden(ApiError):
    """403: authenticated but not allowed (role, data scope, read-only server, tenant)."""


class NotFound(ApiError):
    """404: unknown route, or a record that does not exist or is outside the caller's reach."""


class Conflict(ApiError):
    """409: the change clashes with the server's state."""


class PossibleDuplicates(Conflict):
    """409 `possible_duplicates`: records with the same email or phone exist; repeat with
    `confirm_duplicate=True` to create anyway."""

    @property
    def duplicates(self) -> list[dict[str, Any]]:
        if isinstance(self.details, list):
            return [dict(d) for d in self.details if isinstance(d, Mapping)]
        return []


class VersionConflict(Conflict):
    """409 `version_conflict`: the record changed since the version the edit was based on."""

    @property
    def current_version(self) -> int | None:
        if isinstance(self.details, Mapping):
            value = self.details.get("current_version")
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None


class RateLimited(ApiError):
    """429: too many requests; `retry_after` is how many seconds to wait (None if unsaid)."""

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed; `request_id` finds the traceback in its log."""


class ResyncRequired(ApiError):
    """410 `resync_required`: the sync cursor is older than the server's change log keeps;
    the replica rebuilds from a snapshot (keeping its outbox)."""


class UnexpectedResponse(ApiError):
    """The answer was not the API's JSON envelope (a proxy's HTML page, a truncated body)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
}
_CONFLICTS: dict[str, type[Conflict]] = {
    "possible_duplicates": PossibleDuplicates,
    "version_conflict": VersionConflict,
}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def error_from_response(
    status: int, headers: Mapping[str, str], body: Any, *, reason: str = ""
) -> ApiError:
    """The typed error for an error answer; `body` is the decoded JSON or None."""
    envelope: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    message = envelope.get("message")
    if not isinstance(message, str) or not message:
        message = reason or f"HTTP {status}"
    code = envelope.get("code")
    code = code if isinstance(code, str) else None
    request_id = headers.get(REQUEST_ID_HEADER) or envelope.get("request_id")
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "details": envelope.get("details"),
        "request_id": request_id if isinstance(request_id, str) else None,
        "body": envelope,
    }
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is None:
            fallback = envelope.get("retryAfter")
            if isinstance(fallback, int | float) and not isinstance(fallback, bool):
                retry_after = max(0.0, float(fallback))
        return RateLimited(message, retry_after=retry_after, **common)
    if status >= 500:
        return ServerError(message, **common)
    if status == 410 and code == "resync_required":
        return ResyncRequired(message, **common)
    if status == 409 and code in _CONFLICTS:
        return _CONFLICTS[code](message, **common)
    return _BY_STATUS.get(status, ApiError)(message, **common)
