"""Where a login's tokens live between requests and between runs.

The client keeps the current `Tokens` in memory and hands every change (login, each rotated
refresh token, logout) to a `TokenStore`.  `MemoryTokenStore` forgets on exit;
`KeyringTokenStore` keeps them in the operating system's keyring ("remember me").  When no
usable keyring exists the store says so (`available`, `reason`) and stores nothing: tokens
are never written to a plain file.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import keyring
import keyring.backends.fail
import keyring.errors
import orjson
from keyring.backend import KeyringBackend

log = logging.getLogger("aisha.desktop.client")

KEYRING_SERVICE = "AiSHA"


@dataclass(frozen=True, slots=True)
class Tokens:
    """An access token and the refresh token that renews it (rotated on every use)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    session_id: str | None = None

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "access_expires_at": _iso(self.access_expires_at),
                "refresh_expires_at": _iso(self.refresh_expires_at),
                "session_id": self.session_id,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> Tokens | None:
        """The tokens in `text`, or None when it is not what `to_json` wrote."""
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(raw, dict):
            return None
        access, refresh = raw.get("access_token"), raw.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str) or not refresh:
            return None
        session_id = raw.get("session_id")
        return cls(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=_parse_time(raw.get("access_expires_at")),
            refresh_expires_at=_parse_time(raw.get("refresh_expires_at")),
            session_id=session_id if isinstance(session_id, str) else None,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class TokenStore(Protocol):
    """Keeps one login's tokens.  Methods never raise for storage problems: a store that
    cannot keep tokens behaves as if it had none."""

    async def get(self) -> Tokens | None: ...

    async def set(self, tokens: Tokens) -> None: ...

    async def clear(self) -> None: ...


class MemoryTokenStore:
    """Tokens for the life of the process only."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens

    async def get(self) -> Tokens | None:
        return self._tokens

    async def set(self, tokens: Tokens) -> None:
        self._tokens = tokens

    async def clear(self) -> None:
        self._tokens = None


def keyring_problem(backend: KeyringBackend) -> str | None:
    """Why `backend` must not hold tokens, or None when it is a real system keyring."""
    module = type(backend).__module__
    if isinstance(backend, keyring.backends.fail.Keyring):
        return (
            "No system keyring is available (Secret Service, KWallet, macOS Keychain or "
            "Windows Credential Manager), so sign-ins are not remembered"
        )
    if module == "keyring.backends.null":
        return "The keyring is disabled (null backend), so sign-ins are not remembered"
    if module.startswith("keyrings.alt"):
        return (
            "The only keyring backend keeps secrets in plain files (keyrings.alt), so "
            "sign-ins are not remembered"
        )
    children = getattr(backend, "backends", None)  # keyring's ChainerBackend
    if isinstance(children, list | tuple):
        usable = [b for b in children if keyring_problem(b) is None]
        if not usable:
            return "No usable system keyring backend, so sign-ins are not remembered"
    return None


class KeyringTokenStore:
    """Tokens in the OS keyring under (`service`, `account`), e.g. account = the server URL.

    Keyring calls block (D-Bus, Keychain), so they run in a worker thread, one at a time.
    If the keyring is missing or fails, `available` turns False with a `reason` the UI can
    show, and the store keeps nothing from then on.
    """

    def __init__(
        self,
        account: str,
        *,
        service: str = KEYRING_SERVICE,
        backend: KeyringBackend | None = None,
    ) -> None:
        if not account:
            raise ValueError("account must not be empty")
        self.account = account
        self.service = service
        self._reason: str | None = None
        self._lock = asyncio.Lock()
        self._backend: KeyringBackend | None = None
        try:
            chosen = backend if backend is not None else keyring.get_keyring()
        except Exception as exc:  # a broken keyring configuration must not stop the app
            self._reason = f"The system keyring could not be opened: {exc}"
        else:
            self._reason = keyring_problem(chosen)
            if self._reason is None:
                self._backend = chosen

    @property
    def available(self) -> bool:
        return self._backend is not None

    @property
    def reason(self) -> str | None:
        """Why the store is unavailable (None while it is available)."""
        return self._reason

    def _failed(self, action: str, exc: Exception) -> None:
        log.warning("keyring %s failed, tokens will not be remembered: %s", action, exc)
        self._reason = f"The system keyring failed ({action}): {exc}"
        self._backend = None

    async def get(self) -> Tokens | None:
        async with self._lock:
            backend = self._backend
            if backend is None:
                return None
            try:
                text = await asyncio.to_thread(backend.get_password, self.service, self.account)
            except Exception as exc:
                self._failed("read", exc)
                return None
        return Tokens.from_json(text) if text else None

    async def set(self, tokens: Tokens) -> None:
        async with self._lock:
            backend = self._backend
            if backend is None:
                return
            try:
                await asyncio.to_thread(
                    backend.set_password, self.service, self.account, tokens.to_json()
                )
            except Exception as exc:
                self._failed("write", exc)

    async def clear(self) -> None:
        async with self._lock:
            backend = self._backend
            if backend is None:
                return
            try:
                await asyncio.to_thread(backend.delete_password, self.service, self.account)
            except keyring.errors.PasswordDeleteError:
                pass  # nothing stored: already clear
            except Exception as exc:
                self._failed("delete", exc)
