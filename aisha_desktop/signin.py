"""What a sign-in prompt is given and gives back (Qt-free): `LoginRequest` describes the
prompt and carries `attempt`, which the prompt calls with the user's `LoginForm`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aisha_desktop.client import Session


@dataclass(frozen=True, slots=True)
class LoginForm:
    url: str
    email: str
    password: str
    remember: bool


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """What the sign-in prompt shows, and `attempt` to call with what the user typed
    (raises `ValueError({field: message})` for bad input, or the server's `ClientError`)."""

    url: str
    url_editable: bool
    email: str
    remember: bool
    keyring_available: bool
    keyring_reason: str | None
    message: str
    attempt: Callable[[LoginForm], Awaitable[Session]]
