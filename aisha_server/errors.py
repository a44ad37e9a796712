"""Domain errors.  Services raise these; one middleware maps them to the API envelope."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client may see.  `status` is the HTTP status it maps to."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class Invalid(DomainError):
    status = 422
    code = "validation_error"


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class PermissionDenied(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Gone(DomainError):
    status = 410
    code = "gone"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(DomainError):
    status = 503
    code = "unavailable"


# The guide's exact wording (4.3) for a tenant user naming another tenant.
TENANT_ACCESS_DENIED = "Access denied: Invalid tenant"
READONLY_MESSAGE = (
    "This server is in read-only mode (PRODUCTION_READONLY=true); changes are refused."
)
