"""Token stores: the keyring store without a usable backend, with a working one, and one
that breaks; the client keeps the rotated tokens in whatever store it is given."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import keyring
import keyring.backends.fail
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties

from aisha_desktop.client import ApiClient, KeyringTokenStore, Tokens
from tests.desktop.client.conftest import LiveServer
from tests.factories import SeededUser


class DictKeyring(KeyringBackend):
    """A working keyring backend held in memory (CI machines have no Secret Service).
    Its priority raises, so keyring's own detection never picks it for anything else."""

    @properties.classproperty
    def priority(cls) -> float:  # noqa: N805 (a class property)
        raise RuntimeError("test backend, only used when passed explicitly")

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.secrets:
            raise keyring.errors.PasswordDeleteError("not found")
        del self.secrets[(service, username)]


class LockedKeyring(DictKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


TOKENS = Tokens(
    access_token="access.jwt.value",
    refresh_token="refresh-secret",
    access_expires_at=datetime(2026, 11, 25, 18, 15, tzinfo=UTC),
    refresh_expires_at=datetime(2026, 12, 25, 18, 0, tzinfo=UTC),
    session_id="3f0c8a52-0000-4000-8000-000000000001",
)


@pytest.mark.usefixtures("no_keyring")
async def test_no_keyring_backend_is_reported_not_raised() -> None:
    store = KeyringTokenStore("http://127.0.0.1:8000")
    assert store.available is False
    assert store.reason is not None and "No system keyring" in store.reason
    await store.set(TOKENS)  # keeps nothing, raises nothing
    assert await store.get() is None
    await store.clear()


@pytest.mark.usefixtures("no_keyring")
async def test_client_works_without_a_keyring(live: LiveServer, admin: SeededUser) -> None:
    store = KeyringTokenStore(live.url)
    async with ApiClient(live.url, token_store=store) as api:
        await api.login(admin.email, admin.password)
        assert (await api.me()).user is not None  # tokens held in memory only
    assert await store.get() is None


async def test_keyring_round_trip() -> None:
    backend = DictKeyring()
    store = KeyringTokenStore("http://server", backend=backend)
    assert store.available and store.reason is None
    assert await store.get() is None
    await store.set(TOKENS)
    assert await store.get() == TOKENS
    assert "refresh-secret" in backend.secrets[("AiSHA", "http://server")]
    await store.clear()
    assert await store.get() is None
    await store.clear()  # nothing stored: still fine
    assert store.available


async def test_a_failing_keyring_turns_the_store_off() -> None:
    store = KeyringTokenStore("http://server", backend=LockedKeyring())
    assert store.available
    await store.set(TOKENS)
    assert not store.available
    assert store.reason is not None and "locked" in store.reason
    assert await store.get() is None


async def test_unreadable_keyring_entry_is_no_tokens() -> None:
    backend = DictKeyring()
    backend.secrets[("AiSHA", "http://server")] = "{not json"
    assert await KeyringTokenStore("http://server", backend=backend).get() is None
    backend.secrets[("AiSHA", "http://server")] = '{"access_token": "a"}'
    assert await KeyringTokenStore("http://server", backend=backend).get() is None


def test_tokens_do_not_show_secrets_in_repr() -> None:
    text = repr(TOKENS)
    assert "refresh-secret" not in text and "access.jwt.value" not in text
    assert Tokens.from_json(TOKENS.to_json()) == TOKENS


async def test_rotated_tokens_survive_a_restart(live: LiveServer, admin: SeededUser) -> None:
    backend = DictKeyring()
    store = KeyringTokenStore(live.url, backend=backend)
    async with ApiClient(live.url, token_store=store) as api:
        await api.login(admin.email, admin.password)
        first = await store.get()
        await api.refresh()
        rotated = await store.get()
    assert first is not None and rotated is not None
    assert rotated.refresh_token != first.refresh_token
    # a new process: same keyring, new client
    async with ApiClient(
        live.url, token_store=KeyringTokenStore(live.url, backend=backend)
    ) as again:
        assert await again.restore_session()
        me = await again.me()
        assert me.user is not None and me.user.email == admin.email
        assert await again.logout() == 1
    assert await store.get() is None
