"""/api/auth: login, refresh rotation, logout, password reset, invitations, /me (guide 3.4, App. B)."""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.auth.roles import Role
from aisha_server.auth.tokens import ALGORITHM, ISSUER, digest, new_secret
from aisha_server.db.models import (
    ApiKey,
    AuthRefreshToken,
    AuthSession,
    PasswordResetToken,
    SystemLog,
    User,
    UserInvitation,
)
from tests.factories import (
    DEFAULT_PASSWORD,
    SeededUser,
    bearer,
    login,
    make_tenant,
    make_user,
)

NEW_PASSWORD = "N3w-Passw0rd!x"


async def run(app: web.Application, fn: Any) -> Any:
    return await app[keys.DB].run(fn, system=True)


async def get_user(app: web.Application, user_id: uuid.UUID) -> User:
    user = await run(app, lambda s: s.get(User, user_id))
    assert user is not None
    return user


async def set_user(app: web.Application, user_id: uuid.UUID, **values: Any) -> None:
    await run(app, lambda s: s.execute(update(User).where(User.id == user_id).values(**values)))


async def tenant_user(app: web.Application, role: str = "admin", **kw: Any) -> SeededUser:
    tenant = await make_tenant(app)
    return await make_user(app, role=role, tenant_id=tenant.id, **kw)


async def post(client: Any, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    resp = await client.post(path, json=body, **kw)
    return resp.status, await resp.json()


# -- login ---------------------------------------------------------------------------------


async def test_login_returns_tokens_user_and_top_level_token(client: Any, app: Any) -> None:
    user = await tenant_user(app, first_name="Ada", last_name="Lovelace")
    status, body = await post(
        client, "/api/auth/login", {"email": user.email.upper(), "password": user.password}
    )
    assert status == 200, body
    assert body["status"] == "success"
    data = body["data"]
    assert body["token"] == data["token"]  # the guide's `$response.token`
    assert data["user"] == {
        "id": str(user.id),
        "email": user.email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "role": "admin",
        "tenant_id": str(user.tenant_id),
        "status": "active",
    }
    assert "password_hash" not in str(body)
    expires = datetime.fromisoformat(data["expires_at"])
    assert timedelta(seconds=800) < expires - datetime.now(UTC) <= timedelta(seconds=900)

    # the access token works; the refresh token is stored only as its digest
    resp = await client.get("/api/auth/me", headers=bearer(data["token"]))
    assert resp.status == 200
    me = (await resp.json())["data"]
    assert me["user"]["id"] == str(user.id)
    assert me["role"] == "admin"
    assert me["tenant_id"] == str(user.tenant_id)
    assert me["tenant"]["id"] == str(user.tenant_id)
    assert "user_management" in me["permissions"]
    assert "system_config" not in me["permissions"]
    assert me["auth_type"] == "session"

    def stored(s: Session) -> tuple[Any, ...]:
        session = s.get(AuthSession, uuid.UUID(data["session_id"]))
        tokens = s.scalars(
            select(AuthRefreshToken.token_hash).where(AuthRefreshToken.session_id == session.id)
        ).all()
        return session, list(tokens), s.get(User, user.id)

    session, hashes, row = await run(app, stored)
    assert session.user_id == user.id and session.tenant_id == user.tenant_id
    assert session.revoked_at is None
    assert session.expires_at - datetime.now(UTC) > timedelta(days=29)
    assert hashes == [digest(data["refresh_token"])]
    assert row.last_login_at is not None


@pytest.mark.parametrize("case", ["wrong_password", "unknown_email", "no_password"])
async def test_bad_credentials_are_401_with_one_message_and_logged(
    client: Any, app: Any, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = await tenant_user(app, role="employee")
    email, password = user.email, user.password
    if case == "wrong_password":
        password = "Wrong-Passw0rd!"
    elif case == "unknown_email":
        email = "nobody-here@example.com"
    else:
        await set_user(app, user.id, password_hash=None)
    with caplog.at_level(logging.ERROR, logger="aisha.auth"):
        status, body = await post(client, "/api/auth/login", {"email": email, "password": password})
    assert status == 401
    assert body["message"] == "Invalid email or password"
    assert body["code"] == "invalid_credentials"
    expected = f"Authentication failed for {email} - Invalid credentials"
    assert expected in caplog.text

    await app[keys.SYSTEM_LOG].flush()
    rows = await run(
        app,
        lambda s: s.scalars(select(SystemLog).where(SystemLog.message == expected)).all(),
    )
    assert len(rows) == 1
    assert rows[0].level == "error" and rows[0].source == "auth"
    assert rows[0].ip_address == "127.0.0.1"

    # and no session was opened
    count = await run(app, lambda s: s.scalar(select(func.count()).select_from(AuthSession)))
    assert count == 0


async def test_disabled_user_is_refused_only_after_a_correct_password(
    client: Any, app: Any
) -> None:
    user = await tenant_user(app, role="employee", status="disabled")
    status, body = await post(
        client, "/api/auth/login", {"email": user.email, "password": "Wrong-Passw0rd!"}
    )
    assert (status, body["message"]) == (401, "Invalid email or password")
    status, body = await post(
        client, "/api/auth/login", {"email": user.email, "password": user.password}
    )
    assert (status, body["message"], body["code"]) == (
        403,
        "Account is disabled",
        "account_disabled",
    )
    # invited (not yet accepted) users are not active either
    invited = await tenant_user(app, role="employee", status="invited")
    status, body = await post(
        client, "/api/auth/login", {"email": invited.email, "password": invited.password}
    )
    assert status == 403


async def test_login_upgrades_an_outdated_password_hash(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(user.password)
    await set_user(app, user.id, password_hash=weak)
    await login(client, user.email, user.password)
    upgraded = (await get_user(app, user.id)).password_hash
    assert upgraded is not None and upgraded != weak
    matches, needs_rehash = await app[keys.PASSWORDS].verify(upgraded, user.password)
    assert matches and not needs_rehash
    await login(client, user.email, user.password)  # and it still logs in


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": DEFAULT_PASSWORD}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": 123, "password": DEFAULT_PASSWORD}, "email"),
        ({"email": "a@example.com", "password": 12345678}, "password"),
        ({"email": "not-an-email", "password": DEFAULT_PASSWORD}, "email"),
        ({"email": "a@example.com", "password": ""}, "password"),
        ({"email": "a@example.com", "password": "x" * 2000}, "password"),
    ],
)
async def test_login_validation_errors_are_422(
    client: Any, payload: dict[str, Any], field: str
) -> None:
    status, body = await post(client, "/api/auth/login", payload)
    assert status == 422, body
    assert body["status"] == "error" and body["code"] == "validation_error"
    assert field in {d["field"] for d in body["details"]}


async def test_login_malformed_missing_and_oversized_bodies(client: Any, settings: Any) -> None:
    resp = await client.post(
        "/api/auth/login", data=b'{"email": "a@b.c", ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "malformed_json"

    resp = await client.post("/api/auth/login")
    assert resp.status == 400
    assert (await resp.json())["code"] == "body_required"

    resp = await client.post(
        "/api/auth/login", data=b"email=a", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 400

    big = b'{"email": "a@example.com", "password": "' + b"x" * settings.AISHA_MAX_BODY_BYTES + b'"}'
    resp = await client.post(
        "/api/auth/login", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    body = await resp.json()
    assert body["status"] == "error" and body["code"] == "payload_too_large"


# -- access tokens ---------------------------------------------------------------------------


async def test_expired_forged_and_revoked_tokens_are_401(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    data = await login(client, user.email, user.password)
    session_id = uuid.UUID(data["session_id"])
    tokens = app[keys.TOKENS]

    expired, _ = tokens.issue_access(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=Role.ADMIN,
        session_id=session_id,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    resp = await client.get("/api/auth/me", headers=bearer(expired))
    assert resp.status == 401
    assert (await resp.json())["code"] == "token_expired"

    now = int(datetime.now(UTC).timestamp())
    forged = jwt.encode(
        {
            "iss": ISSUER,
            "sub": str(user.id),
            "tid": str(user.tenant_id),
            "role": "superadmin",
            "sid": str(session_id),
            "iat": now,
            "exp": now + 600,
            "typ": "access",
        },
        "some-other-secret-" + "y" * 40,
        algorithm=ALGORITHM,
    )
    resp = await client.get("/api/auth/me", headers=bearer(forged))
    assert resp.status == 401
    assert (await resp.json())["code"] == "invalid_token"

    # a token of a session revoked behind the server's back stops working once the gate
    # forgets its cached copy (logout does that itself; see the logout tests)
    await run(
        app,
        lambda s: s.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id)
            .values(revoked_at=datetime.now(UTC), revoked_reason="admin")
        ),
    )
    app[keys.AUTH_GATE].forget_session(session_id)
    resp = await client.get("/api/auth/me", headers=bearer(data["token"]))
    assert resp.status == 401
    assert (await resp.json())["code"] == "session_revoked"


async def test_disabling_a_user_stops_existing_tokens_and_refresh(client: Any, app: Any) -> None:
    user = await tenant_user(app, role="manager")
    data = await login(client, user.email, user.password)
    headers = bearer(data["token"])
    assert (await client.get("/api/auth/me", headers=headers)).status == 200

    await set_user(app, user.id, status="disabled")
    app[keys.AUTH_GATE].forget_user(user.id)
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["message"] == "Account is disabled"

    status, body = await post(client, "/api/auth/refresh", {"refresh_token": data["refresh_token"]})
    assert (status, body["code"]) == (401, "account_disabled")


# -- refresh -------------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_session(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    first = await login(client, user.email, user.password)

    status, body = await post(
        client, "/api/auth/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200, body
    second = body["data"]
    assert body["token"] == second["token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token"] != first["token"]
    assert second["session_id"] == first["session_id"]
    assert second["user"]["id"] == str(user.id)
    assert (await client.get("/api/auth/me", headers=bearer(second["token"]))).status == 200

    # the spent token is marked, the new one is stored as a digest in the same session
    def tokens(s: Session) -> dict[str, datetime | None]:
        rows = s.execute(
            select(AuthRefreshToken.token_hash, AuthRefreshToken.spent_at).where(
                AuthRefreshToken.session_id == uuid.UUID(first["session_id"])
            )
        ).all()
        return {r.token_hash: r.spent_at for r in rows}

    stored = await run(app, tokens)
    assert stored[digest(first["refresh_token"])] is not None
    assert stored[digest(second["refresh_token"])] is None

    # presenting the spent token again: the whole session dies
    status, body = await post(
        client, "/api/auth/refresh", {"refresh_token": first["refresh_token"]}
    )
    assert (status, body["code"]) == (401, "refresh_token_reused")
    session = await run(app, lambda s: s.get(AuthSession, uuid.UUID(first["session_id"])))
    assert session.revoked_at is not None
    assert session.revoked_reason == "refresh_token_reuse"
    resp = await client.get("/api/auth/me", headers=bearer(second["token"]))
    assert resp.status == 401
    status, body = await post(
        client, "/api/auth/refresh", {"refresh_token": second["refresh_token"]}
    )
    assert status == 401


async def test_refresh_refuses_unknown_expired_and_bad_input(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    data = await login(client, user.email, user.password)

    status, body = await post(client, "/api/auth/refresh", {"refresh_token": new_secret()})
    assert (status, body["code"]) == (401, "invalid_refresh_token")
    status, body = await post(client, "/api/auth/refresh", {})
    assert status == 422
    status, body = await post(client, "/api/auth/refresh", {"refresh_token": 42})
    assert status == 422

    await run(
        app,
        lambda s: s.execute(
            update(AuthSession)
            .where(AuthSession.id == uuid.UUID(data["session_id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        ),
    )
    status, body = await post(client, "/api/auth/refresh", {"refresh_token": data["refresh_token"]})
    assert (status, body["code"]) == (401, "session_expired")


# -- logout --------------------------------------------------------------------------------


async def test_logout_revokes_this_session_only(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    one = await login(client, user.email, user.password)
    two = await login(client, user.email, user.password)

    resp = await client.post("/api/auth/logout", headers=bearer(one["token"]))
    assert resp.status == 200
    assert (await resp.json())["data"] == {"revoked_sessions": 1}
    resp = await client.get("/api/auth/me", headers=bearer(one["token"]))
    assert resp.status == 401
    assert (await resp.json())["code"] == "session_revoked"
    status, _ = await post(client, "/api/auth/refresh", {"refresh_token": one["refresh_token"]})
    assert status == 401
    # the other login is untouched
    assert (await client.get("/api/auth/me", headers=bearer(two["token"]))).status == 200
    session = await run(app, lambda s: s.get(AuthSession, uuid.UUID(one["session_id"])))
    assert session.revoked_reason == "logout"


async def test_logout_all_sessions(client: Any, app: Any) -> None:
    user = await tenant_user(app)
    other = await tenant_user(app)
    one = await login(client, user.email, user.password)
    two = await login(client, user.email, user.password)
    bystander = await login(client, other.email, other.password)
    assert (await client.get("/api/auth/me", headers=bearer(two["token"]))).status == 200

    resp = await client.post(
        "/api/auth/logout", json={"all_sessions": True}, headers=bearer(one["token"])
    )
    assert resp.status == 200
    assert (await resp.json())["data"] == {"revoked_sessions": 2}
    for token in (one["token"], two["token"]):
        assert (await client.get("/api/auth/me", headers=bearer(token))).status == 401
    assert (await client.get("/api/auth/me", headers=bearer(bystander["token"]))).status == 200


async def test_logout_needs_auth_rejects_bad_body_and_api_keys(client: Any, app: Any) -> None:
    status, body = await post(client, "/api/auth/logout")
    assert (status, body["code"]) == (401, "auth_required")

    user = await tenant_user(app)
    data = await login(client, user.email, user.password)
    resp = await client.post(
        "/api/auth/logout", json={"all_sessions": "maybe"}, headers=bearer(data["token"])
    )
    assert resp.status == 422
    assert (await client.get("/api/auth/me", headers=bearer(data["token"]))).status == 200

    secret = new_secret("ak_")
    assert user.tenant_id is not None
    tenant_id = user.tenant_id

    def add_key(s: Session) -> None:
        s.add(
            ApiKey(
                key=digest(secret),
                tenant_id=tenant_id,
                user_id=user.id,
                name="Integration Key",
                permissions=["*"],
            )
        )

    await run(app, add_key)
    resp = await client.post("/api/auth/logout", headers={"X-API-Key": secret})
    assert resp.status == 400
    assert (await resp.json())["code"] == "not_a_session"
    resp = await client.get("/api/auth/me", headers={"X-API-Key": secret})
    assert resp.status == 200
    me = (await resp.json())["data"]
    assert me["auth_type"] == "api_key" and me["api_key_permissions"] == ["*"]


async def test_me_for_superadmin_has_no_tenant(client: Any, app: Any) -> None:
    admin = await make_user(app, role="superadmin")
    data = await login(client, admin.email, admin.password)
    resp = await client.get("/api/auth/me", headers=bearer(data["token"]))
    me = (await resp.json())["data"]
    assert me["tenant_id"] is None and me["tenant"] is None
    assert me["role"] == "superadmin" and me["data_scope"] == "all_tenants"
    assert "system_config" in me["permissions"]
    assert (await client.get("/api/auth/me")).status == 401


# -- password reset ------------------------------------------------------------------------


def reset_token_from(mail: Any) -> str:
    match = re.search(r"http://crm\.test/reset-password\?token=(\S+)", mail.get_content())
    assert match is not None, mail.get_content()
    return match.group(1)


class TestPasswordReset:
    @pytest.fixture
    def settings_overrides(self, smtp_settings: dict[str, Any]) -> dict[str, Any]:
        return smtp_settings

    async def test_forgot_password_answers_the_same_for_unknown_emails(
        self, client: Any, app: Any, smtp_sink: Any
    ) -> None:
        user = await tenant_user(app)
        status_known, known = await post(
            client, "/api/auth/forgot-password", {"email": user.email.upper()}
        )
        status_unknown, unknown = await post(
            client, "/api/auth/forgot-password", {"email": "ghost@example.com"}
        )
        assert status_known == status_unknown == 200
        assert known == unknown
        await app[keys.MAILER].drain()
        assert [m["To"] for m in smtp_sink.messages] == [user.email]
        token = reset_token_from(smtp_sink.messages[0])

        row = await run(
            app,
            lambda s: s.scalar(
                select(PasswordResetToken).where(PasswordResetToken.user_id == user.id)
            ),
        )
        assert row.token_hash == digest(token)  # only the digest is stored
        ttl = row.expires_at - datetime.now(UTC)
        assert timedelta(minutes=58) < ttl <= timedelta(minutes=60)

    async def test_disabled_accounts_get_no_mail(
        self, client: Any, app: Any, smtp_sink: Any
    ) -> None:
        user = await tenant_user(app, status="disabled")
        status, _ = await post(client, "/api/auth/forgot-password", {"email": user.email})
        assert status == 200
        await app[keys.MAILER].drain()
        assert smtp_sink.messages == []

    async def test_forgot_password_validation(self, client: Any) -> None:
        for payload in ({}, {"email": 123}, {"email": "nope"}):
            status, body = await post(client, "/api/auth/forgot-password", payload)
            assert status == 422, (payload, body)

    async def test_reset_sets_password_once_and_revokes_sessions(
        self, client: Any, app: Any, smtp_sink: Any
    ) -> None:
        user = await tenant_user(app)
        before = await login(client, user.email, user.password)
        await post(client, "/api/auth/forgot-password", {"email": user.email})
        await app[keys.MAILER].drain()
        token = reset_token_from(smtp_sink.messages[0])

        # a weak password is refused without spending the token
        status, body = await post(
            client, "/api/auth/reset-password", {"token": token, "password": "short"}
        )
        assert status == 422, body
        status, body = await post(
            client, "/api/auth/reset-password", {"token": token, "password": NEW_PASSWORD}
        )
        assert status == 200, body

        assert (await client.get("/api/auth/me", headers=bearer(before["token"]))).status == 401
        status, _ = await post(
            client, "/api/auth/refresh", {"refresh_token": before["refresh_token"]}
        )
        assert status == 401
        status, body = await post(
            client, "/api/auth/login", {"email": user.email, "password": user.password}
        )
        assert status == 401
        await login(client, user.email, NEW_PASSWORD)
        assert (await get_user(app, user.id)).password_changed_at is not None

        # single use
        status, body = await post(
            client, "/api/auth/reset-password", {"token": token, "password": "An0ther-Pass!"}
        )
        assert (status, body["message"]) == (400, "Invalid or expired reset token")
        await login(client, user.email, NEW_PASSWORD)

    async def test_only_the_newest_link_works_and_links_expire(
        self, client: Any, app: Any, smtp_sink: Any
    ) -> None:
        user = await tenant_user(app)
        await post(client, "/api/auth/forgot-password", {"email": user.email})
        await post(client, "/api/auth/forgot-password", {"email": user.email})
        await app[keys.MAILER].drain()
        await smtp_sink.wait_for(2)
        old, new = (reset_token_from(m) for m in smtp_sink.messages)
        status, body = await post(
            client, "/api/auth/reset-password", {"token": old, "password": NEW_PASSWORD}
        )
        assert (status, body["message"]) == (400, "Invalid or expired reset token")

        await run(
            app,
            lambda s: s.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.token_hash == digest(new))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            ),
        )
        status, body = await post(
            client, "/api/auth/reset-password", {"token": new, "password": NEW_PASSWORD}
        )
        assert status == 400
        for payload in ({"token": "made-up", "password": NEW_PASSWORD}, {"token": new}, {}):
            status, _ = await post(client, "/api/auth/reset-password", payload)
            assert status in (400, 422)
        await login(client, user.email, user.password)  # nothing changed


# -- invitations ---------------------------------------------------------------------------


async def invite(
    app: web.Application,
    *,
    expires_in: timedelta = timedelta(days=7),
    status: str = "invited",
    revoked: bool = False,
) -> tuple[SeededUser, str]:
    user = await tenant_user(app, role="employee", status=status)
    await set_user(app, user.id, password_hash=None)
    secret = new_secret()

    def write(s: Session) -> None:
        s.add(
            UserInvitation(
                user_id=user.id,
                tenant_id=user.tenant_id,
                token_hash=digest(secret),
                expires_at=datetime.now(UTC) + expires_in,
                revoked_at=datetime.now(UTC) if revoked else None,
            )
        )

    await run(app, write)
    return user, secret


async def test_accept_invitation_activates_and_logs_in(client: Any, app: Any) -> None:
    user, token = await invite(app)
    status, body = await post(
        client,
        "/api/auth/accept-invitation",
        {"token": token, "password": NEW_PASSWORD, "first_name": " Grace ", "last_name": "Hopper"},
    )
    assert status == 200, body
    data = body["data"]
    assert body["token"] == data["token"]
    assert data["user"]["status"] == "active"
    assert (data["user"]["first_name"], data["user"]["last_name"]) == ("Grace", "Hopper")
    assert (await client.get("/api/auth/me", headers=bearer(data["token"]))).status == 200
    row = await get_user(app, user.id)
    assert row.status == "active" and row.password_changed_at is not None
    invitation = await run(
        app, lambda s: s.scalar(select(UserInvitation).where(UserInvitation.user_id == user.id))
    )
    assert invitation.accepted_at is not None
    await login(client, user.email, NEW_PASSWORD)

    # used once
    status, body = await post(
        client, "/api/auth/accept-invitation", {"token": token, "password": "Oth3r-Passw0rd!"}
    )
    assert (status, body["message"]) == (400, "Invitation is invalid or has expired")
    await login(client, user.email, NEW_PASSWORD)


@pytest.mark.parametrize("case", ["expired", "revoked", "unknown"])
async def test_unusable_invitations_are_400_and_change_nothing(
    client: Any, app: Any, case: str
) -> None:
    user, token = await invite(
        app,
        expires_in=timedelta(seconds=-1) if case == "expired" else timedelta(days=7),
        revoked=case == "revoked",
    )
    if case == "unknown":
        token = new_secret()
    status, body = await post(
        client, "/api/auth/accept-invitation", {"token": token, "password": NEW_PASSWORD}
    )
    assert (status, body["message"]) == (400, "Invitation is invalid or has expired")
    row = await get_user(app, user.id)
    assert row.status == "invited" and row.password_hash is None


async def test_accept_invitation_validation_and_disabled_accounts(client: Any, app: Any) -> None:
    user, token = await invite(app)
    status, body = await post(
        client, "/api/auth/accept-invitation", {"token": token, "password": "password"}
    )
    assert status == 422, body  # too weak; the invitation stays usable
    status, _ = await post(client, "/api/auth/accept-invitation", {"password": NEW_PASSWORD})
    assert status == 422
    status, _ = await post(
        client,
        "/api/auth/accept-invitation",
        {"token": token, "password": NEW_PASSWORD, "first_name": "x" * 101},
    )
    assert status == 422

    await set_user(app, user.id, status="disabled")
    status, body = await post(
        client, "/api/auth/accept-invitation", {"token": token, "password": NEW_PASSWORD}
    )
    assert (status, body["code"]) == (403, "account_disabled")
    assert (await get_user(app, user.id)).status == "disabled"
