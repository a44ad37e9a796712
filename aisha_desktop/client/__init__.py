"""Typed async API client of an AiSHA server (Qt-free): login, token refresh and rotation,
the error envelope as exceptions, tokens in the OS keyring."""

from aisha_desktop.client.api import ApiClient
from aisha_desktop.client.errors import (
    ApiError,
    AuthError,
    ClientError,
    Conflict,
    Forbidden,
    NotFound,
    OfflineError,
    PossibleDuplicates,
    RateLimited,
    ServerError,
    SessionExpired,
    UnexpectedResponse,
    ValidationError,
    VersionConflict,
)
from aisha_desktop.client.models import CurrentUser, Page, Session, Tenant, User
from aisha_desktop.client.tokens import KeyringTokenStore, MemoryTokenStore, Tokens, TokenStore

__all__ = [
    "ApiClient",
    "ApiError",
    "AuthError",
    "ClientError",
    "Conflict",
    "CurrentUser",
    "Forbidden",
    "KeyringTokenStore",
    "MemoryTokenStore",
    "NotFound",
    "OfflineError",
    "Page",
    "PossibleDuplicates",
    "RateLimited",
    "ServerError",
    "Session",
    "SessionExpired",
    "Tenant",
    "TokenStore",
    "Tokens",
    "UnexpectedResponse",
    "User",
    "ValidationError",
    "VersionConflict",
]
