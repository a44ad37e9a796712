"""The test factories and the SMTP sink work on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from aisha_server import keys
from aisha_server.mail import OutgoingMail
from tests.factories import make_tenant, make_user


async def test_factories_write_rows(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app, "Acme")
    user = await make_user(app, role="admin", tenant_id=tenant.id)
    assert user.tenant_id == tenant.id


@pytest.fixture
def settings_overrides(smtp_settings: dict[str, Any]) -> dict[str, Any]:
    return smtp_settings


async def test_mailer_delivers_to_sink(client: Any, smtp_sink: Any) -> None:
    mailer = client.app[keys.MAILER]
    mailer.send(OutgoingMail("someone@example.com", "Hello", "Body text"))
    await mailer.drain()
    messages = await smtp_sink.wait_for(1)
    assert messages[0]["To"] == "someone@example.com"
    assert messages[0]["Subject"] == "Hello"
    assert "Body text" in messages[0].get_content()
