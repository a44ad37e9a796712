"""Invitations (guide 3.1 "User Invitation Flow"): row, mail, link, expiry, resend."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from aisha_server import keys
from aisha_server.auth.tokens import digest
from aisha_server.db.base import utcnow
from aisha_server.db.models import UserInvitation
from tests.factories import auth_headers as auth
from tests.factories import make_tenant, make_user
from tests.server.user_helpers import rows, user_row

LINK = re.compile(r"http://crm\.test/accept-invitation\?token=([A-Za-z0-9_\-]+)")


@pytest.fixture
def settings_overrides(smtp_settings: dict[str, Any]) -> dict[str, Any]:
    return smtp_settings


async def _invitations(app: Any, user_id: uuid.UUID) -> list[UserInvitation]:
    return await rows(
        app,
        select(UserInvitation)
        .where(UserInvitation.user_id == user_id)
        .order_by(UserInvitation.created_at),
    )


async def _invite_new(client: Any, headers: dict[str, str], email: str) -> dict[str, Any]:
    resp = await client.post(
        "/api/users",
        json={
            "email": email,
            "first_name": "John",
            "last_name": "Doe",
            "role": "employee",
            "send_invitation": True,
        },
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 201, body
    return dict(body["data"])


async def test_invitation_row_and_mail(client: Any, smtp_sink: Any) -> None:
    app = client.app
    tenant = await make_tenant(app, "Acme Corp")
    admin = await make_user(app, role="admin", tenant_id=tenant.id)
    user = await _invite_new(client, await auth(app, admin), "john.doe@example.com")
    assert user["status"] == "invited"

    await app[keys.MAILER].drain()
    mails = await smtp_sink.wait_for(1)
    mail = mails[0]
    assert mail["To"] == "john.doe@example.com"
    assert mail["Subject"] == "You're invited to AiSHA"
    text = mail.get_content()
    assert "Acme Corp" in text and "7 days" in text
    match = LINK.search(text)
    assert match, text
    token = match.group(1)

    invitations = await _invitations(app, uuid.UUID(user["id"]))
    assert len(invitations) == 1
    invitation = invitations[0]
    assert invitation.token_hash == digest(token)
    assert token not in invitation.token_hash
    assert invitation.invited_by == admin.id
    assert invitation.tenant_id == tenant.id
    assert invitation.accepted_at is None and invitation.revoked_at is None
    lifetime = invitation.expires_at - utcnow()
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)
    row = await user_row(app, uuid.UUID(user["id"]))
    assert row is not None and row.password_hash is None


async def test_resend_revokes_earlier_invitations(client: Any, smtp_sink: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin = await make_user(app, role="admin", tenant_id=tenant.id)
    headers = await auth(app, admin)
    user = await _invite_new(client, headers, "late@example.com")

    resp = await client.post(f"/api/users/{user['id']}/invite", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["email"] == "late@example.com"

    await app[keys.MAILER].drain()
    mails = await smtp_sink.wait_for(2)
    tokens = [LINK.search(m.get_content()).group(1) for m in mails]  # type: ignore[union-attr]
    assert tokens[0] != tokens[1]
    first, second = await _invitations(app, uuid.UUID(user["id"]))
    assert first.token_hash == digest(tokens[0]) and first.revoked_at is not None
    assert second.token_hash == digest(tokens[1]) and second.revoked_at is None
    assert str(second.id) == body["data"]["id"]


async def test_resend_rules(client: Any, smtp_sink: Any) -> None:
    app = client.app
    a = await make_tenant(app)
    b = await make_tenant(app)
    admin_a = await make_user(app, role="admin", tenant_id=a.id)
    admin_b = await make_user(app, role="admin", tenant_id=b.id)
    active_a = await make_user(app, role="employee", tenant_id=a.id)
    invited_b = await _invite_new(client, await auth(app, admin_b), "b-user@example.com")

    headers = await auth(app, admin_a)
    # an active user has a password: no invitation (password reset is the way)
    resp = await client.post(f"/api/users/{active_a.id}/invite", headers=headers)
    assert resp.status == 409
    # another tenant's user is not found, and nothing happens to their invitation
    resp = await client.post(f"/api/users/{invited_b['id']}/invite", headers=headers)
    assert resp.status == 404
    resp = await client.post(f"/api/users/{uuid.uuid4()}/invite", headers=headers)
    assert resp.status == 404
    # employees cannot invite
    resp = await client.post(
        f"/api/users/{invited_b['id']}/invite", headers=await auth(app, active_a)
    )
    assert resp.status == 403
    invitations = await _invitations(app, uuid.UUID(invited_b["id"]))
    assert len(invitations) == 1 and invitations[0].revoked_at is None
    await app[keys.MAILER].drain()
    assert len(smtp_sink.messages) == 1


async def test_admin_setting_password_ends_invitation(client: Any, smtp_sink: Any) -> None:
    """Guide 3.1: after expiry, "resend invitation or manually set password"."""
    app = client.app
    tenant = await make_tenant(app)
    admin = await make_user(app, role="admin", tenant_id=tenant.id)
    headers = await auth(app, admin)
    user = await _invite_new(client, headers, "manual@example.com")

    # an invited user cannot be made active without a password
    resp = await client.put(f"/api/users/{user['id']}", json={"status": "active"}, headers=headers)
    assert resp.status == 422

    resp = await client.put(
        f"/api/users/{user['id']}", json={"password": "Set8yAdmin!"}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["status"] == "active" and body["data"]["has_password"] is True
    invitations = await _invitations(app, uuid.UUID(user["id"]))
    assert all(i.revoked_at is not None for i in invitations)
    resp = await client.post(f"/api/users/{user['id']}/invite", headers=headers)
    assert resp.status == 409


async def test_deleting_user_revokes_invitation(client: Any, smtp_sink: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    admin = await make_user(app, role="admin", tenant_id=tenant.id)
    headers = await auth(app, admin)
    user = await _invite_new(client, headers, "gone@example.com")
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status == 200
    invitations = await _invitations(app, uuid.UUID(user["id"]))
    assert invitations and all(i.revoked_at is not None for i in invitations)


async def test_full_flow_through_accept_invitation(client: Any, smtp_sink: Any) -> None:
    """Invite -> resend -> the first link is dead, the second sets the password and logs in."""
    app = client.app
    tenant = await make_tenant(app)
    admin = await make_user(app, role="admin", tenant_id=tenant.id)
    headers = await auth(app, admin)
    user = await _invite_new(client, headers, "flow@example.com")
    assert (await client.post(f"/api/users/{user['id']}/invite", headers=headers)).status == 200
    await app[keys.MAILER].drain()
    mails = await smtp_sink.wait_for(2)
    first, second = (LINK.search(m.get_content()).group(1) for m in mails)  # type: ignore[union-attr]

    resp = await client.post(
        "/api/auth/accept-invitation", json={"token": first, "password": "Fl0w!Password"}
    )
    assert resp.status == 400
    resp = await client.post(
        "/api/auth/accept-invitation", json={"token": second, "password": "Fl0w!Password"}
    )
    body = await resp.json()
    assert resp.status == 200, body
    token = body["data"]["token"]

    me = await client.get(f"/api/users/{user['id']}", headers={"Authorization": f"Bearer {token}"})
    data = (await me.json())["data"]
    assert me.status == 200
    assert data["status"] == "active" and data["has_password"] is True
    # an accepted invitation cannot be resent
    assert (await client.post(f"/api/users/{user['id']}/invite", headers=headers)).status == 409
    login = await client.post(
        "/api/auth/login", json={"email": "flow@example.com", "password": "Fl0w!Password"}
    )
    assert login.status == 200
