"""A superadmin belongs to no tenant: the client names the tenant it works in
(`ApiClient.tenant_id` -> X-Tenant-ID) on HTTP calls and on the change stream."""

from __future__ import annotations

import asyncio

import pytest

from aisha_desktop.client import ApiError
from tests.desktop.sync.conftest import Live, Team
from tests.factories import make_user


async def test_a_superadmin_works_in_the_tenant_it_names(live: Live, team: Team) -> None:
    root = await make_user(live.app, role="superadmin", tenant_id=None)
    api = await live.api(root, direct=True)
    with pytest.raises(ApiError):  # no tenant named: the server cannot know which
        await api.list_records("accounts")
    api.tenant_id = str(team.tenant_id)
    created = await api.create_record("accounts", {"name": "Named tenant"})
    assert created["tenant_id"] == str(team.tenant_id)
    page = await api.pull_changes(None, 500)
    assert any(c.id == created["id"] for c in page.changes)
    me = await api.me()  # auth calls stay tenant-less
    assert me.role == "superadmin"

    admin = await live.api(team.admin, direct=True)
    async with api.change_stream() as stream:
        updates = stream.__aiter__()
        hello = await asyncio.wait_for(updates.__anext__(), timeout=5)
        await admin.create_record("accounts", {"name": "Seen by root"})
        moved = await asyncio.wait_for(updates.__anext__(), timeout=5)
        assert moved > hello
