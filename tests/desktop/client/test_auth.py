"""Login, me, logout and token renewal against a real server over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from aisha_desktop.client import (
    ApiClient,
    AuthError,
    MemoryTokenStore,
    SessionExpired,
    Tokens,
    ValidationError,
)
from tests.desktop.client.conftest import (
    LiveServer,
    expired_access_token,
    refresh_tokens_issued,
)
from tests.factories import SeededUser


async def test_health_and_status(api: ApiClient) -> None:
    health = await api.health()
    assert health["status"] == "ok"
    status = await api.status()
    assert isinstance(status, dict) and status


async def test_login_me_and_logout(live: LiveServer, api: ApiClient, admin: SeededUser) -> None:
    session = await api.login(admin.email.upper(), admin.password)
    assert session.user.email == admin.email
    assert session.user.role == "admin"
    assert session.user.tenant_id == str(admin.tenant_id)
    assert session.expires_at is not None and session.refresh_expires_at is not None
    assert session.expires_at < session.refresh_expires_at
    assert api.is_authenticated

    me = await api.me()
    assert me.user is not None and me.user.id == str(admin.id)
    assert me.tenant is not None and me.tenant.id == str(admin.tenant_id)
    assert me.role == "admin" and me.auth_type == "session"
    assert me.session_id == session.session_id
    assert me.permissions

    assert await api.logout() == 1
    assert not api.is_authenticated
    with pytest.raises(AuthError) as local:
        await api.me()
    assert local.value.code == "not_signed_in"
    assert live.refresh_requests == []


async def test_revoked_session_ends_without_a_refresh(live: LiveServer, admin: SeededUser) -> None:
    """A 401 that says the session is over (revoked here by a logout elsewhere) is not worth
    a refresh: the client ends the session at once."""
    shared = MemoryTokenStore()
    ended: list[SessionExpired] = []
    async with ApiClient(live.url, token_store=shared) as first:
        await first.login(admin.email, admin.password)
        tokens = await shared.get()
        assert tokens is not None
        # the same login in a second client, as after a restart
        store = MemoryTokenStore(tokens)
        async with ApiClient(live.url, token_store=store, on_session_expired=ended.append) as other:
            assert (await other.me()).user is not None
            assert await first.logout() == 1
            with pytest.raises(SessionExpired) as over:
                await other.me()
    assert over.value.code == "session_revoked"
    assert over.value.status == 401
    assert len(ended) == 1 and ended[0].code == "session_revoked"
    assert await store.get() is None
    assert await shared.get() is None  # logout forgot the tokens
    assert live.refresh_requests == []


async def _login(live: LiveServer, user: SeededUser) -> tuple[str, Tokens]:
    """Log in with a throwaway client; the session id and the tokens it was given."""
    store = MemoryTokenStore()
    async with ApiClient(live.url, token_store=store) as client:
        session = await client.login(user.email, user.password)
    tokens = await store.get()
    assert tokens is not None and tokens.session_id == session.session_id
    return session.session_id, tokens


async def test_wrong_password_is_a_typed_error(api: ApiClient, admin: SeededUser) -> None:
    with pytest.raises(AuthError) as failed:
        await api.login(admin.email, "not-the-password")
    error = failed.value
    assert not isinstance(error, SessionExpired)
    assert error.status == 401
    assert error.code == "invalid_credentials"
    assert error.message == "Invalid email or password"
    assert error.request_id
    assert not api.is_authenticated


async def test_unknown_email_and_malformed_email(api: ApiClient) -> None:
    with pytest.raises(AuthError) as unknown:
        await api.login("nobody@example.com", "whatever")
    assert unknown.value.code == "invalid_credentials"
    with pytest.raises(ValidationError) as malformed:
        await api.login("not an email", "whatever")
    assert malformed.value.status == 422
    assert "email" in malformed.value.field_errors


async def test_expired_access_token_is_refreshed_transparently(
    live: LiveServer, admin: SeededUser
) -> None:
    session_id, original = await _login(live, admin)
    store = MemoryTokenStore(
        Tokens(
            access_token=expired_access_token(live.app, admin, session_id),
            refresh_token=original.refresh_token,
        )
    )
    async with ApiClient(live.url, token_store=store) as api:
        assert await api.restore_session()
        me = await api.me()
        assert me.user is not None and me.user.email == admin.email
        rotated = await store.get()
        assert rotated is not None
        assert rotated.refresh_token != original.refresh_token  # rotation kept
        assert rotated.session_id == session_id
        assert api.session is not None and api.session.user.email == admin.email
        # the new tokens work without another refresh
        await api.me()
    assert len(live.refresh_requests) == 1
    assert await refresh_tokens_issued(live.app, session_id) == 2


async def test_concurrent_requests_share_one_refresh(live: LiveServer, admin: SeededUser) -> None:
    session_id, original = await _login(live, admin)
    expired = expired_access_token(live.app, admin, session_id)
    store = MemoryTokenStore(Tokens(access_token=expired, refresh_token=original.refresh_token))
    async with ApiClient(live.url, token_store=store) as api:
        results = await asyncio.gather(
            *(api.me() for _ in range(6)),
            *(api.list_records("contacts", limit=5) for _ in range(4)),
        )
    assert len(results) == 10
    assert len(live.refresh_requests) == 1
    assert await refresh_tokens_issued(live.app, session_id) == 2


async def test_refresh_failure_expires_the_session_once(
    live: LiveServer, admin: SeededUser
) -> None:
    """The refresh token was already spent (e.g. by a copy of this login elsewhere): the
    server revokes the session, every waiting request gets SessionExpired, the callback
    runs once, the stored tokens are gone, and nothing retries."""
    session_id, spent = await _login(live, admin)
    async with ApiClient(live.url, token_store=MemoryTokenStore(spent)) as first:
        await first.refresh()  # spends `spent.refresh_token`
    expired = expired_access_token(live.app, admin, session_id)
    store = MemoryTokenStore(Tokens(access_token=expired, refresh_token=spent.refresh_token))
    ended: list[SessionExpired] = []

    async def on_expired(error: SessionExpired) -> None:
        await asyncio.sleep(0)
        ended.append(error)

    async with ApiClient(live.url, token_store=store, on_session_expired=on_expired) as api:
        outcomes = await asyncio.gather(*(api.me() for _ in range(5)), return_exceptions=True)
        assert all(isinstance(o, SessionExpired) for o in outcomes), outcomes
        assert not api.is_authenticated
        with pytest.raises(AuthError) as after:
            await api.me()
        assert after.value.code == "not_signed_in"
    assert len(ended) == 1
    assert ended[0].code == "refresh_token_reused"
    assert await store.get() is None
    # one refresh by `first`, one refused refresh by `api`: no retry loop
    assert len(live.refresh_requests) == 2


async def test_refresh_without_login_and_with_an_unknown_token(
    live: LiveServer, admin: SeededUser
) -> None:
    async with ApiClient(live.url) as api:
        with pytest.raises(SessionExpired):
            await api.refresh()
    store = MemoryTokenStore(Tokens(access_token="not-a-jwt", refresh_token="never-issued"))
    ended: list[SessionExpired] = []
    async with ApiClient(live.url, token_store=store, on_session_expired=ended.append) as api:
        with pytest.raises(SessionExpired) as failed:
            await api.list_records("contacts")
    assert failed.value.code == "invalid_refresh_token"
    assert [e.code for e in ended] == ["invalid_refresh_token"]
    assert len(live.refresh_requests) == 1


async def test_failing_callback_does_not_hide_the_error(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(error: SessionExpired) -> None:
        raise RuntimeError("listener bug")

    store = MemoryTokenStore(Tokens(access_token="a", refresh_token="b"))
    async with ApiClient(live.url, token_store=store, on_session_expired=broken) as api:
        with pytest.raises(SessionExpired):
            await api.me()
    assert "on_session_expired callback failed" in caplog.text


async def test_logout_all_sessions(live: LiveServer, admin: SeededUser) -> None:
    async with ApiClient(live.url) as one, ApiClient(live.url) as two:
        await one.login(admin.email, admin.password)
        await two.login(admin.email, admin.password)
        assert await one.logout(all_sessions=True) == 2
        with pytest.raises(SessionExpired):
            await two.me()
        assert await one.logout() == 0  # already signed out: nothing to do
