"""C.A.R.E. states and audit entries in the sync feed (SQLite and PostgreSQL): administrators,
superadmins and managers receive them (snapshot and log), employees, support and other
tenants never do; they cannot be pushed; audit change rows carry no fields."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from aisha_server import keys
from aisha_server.db.models.sync import SyncChange
from tests.factories import make_tenant, user_with_headers
from tests.server.test_care import ON, add_lead, body_of
from tests.server.test_sync import pull_all, records

CARE = ("care_states", "care_audit_log")


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"CARE_WORKER_ENABLED": False, **dict(getattr(request, "param", None) or {})}


@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_care_rows_reach_admins_and_managers_only(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app, "Care Sync Co")
    other = await make_tenant(app, "Elsewhere")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    _, manager = await user_with_headers(app, "manager", tenant.id, department="A")
    _, employee = await user_with_headers(app, "employee", tenant.id, department="A")
    _, support = await user_with_headers(app, "support", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)
    lead = await add_lead(app, tenant.id)
    url = f"/api/care/states/lead/{lead}/transition"
    await body_of(await client.post(url, json={"to_state": "warm"}, headers=admin))

    # snapshot: the state and its audit entry (and the pause below) for admins and managers
    cursors: dict[str, str] = {}
    for name, headers in (("admin", admin), ("manager", manager)):
        state, cursors[name] = await pull_all(client, headers)
        states = records(state, "care_states")
        assert [s["entity_id"] for s in states.values()] == [str(lead)]
        assert next(iter(states.values()))["current_state"] == "warm"
        audit = records(state, "care_audit_log")
        events = sorted(a["event_type"] for a in audit.values())
        assert events == ["ACTION_ALLOWED", "STATE_TRANSITION"]  # the gate, then the move
        entry = next(a for a in audit.values() if a["event_type"] == "STATE_TRANSITION")
        assert entry["metadata"]["to_state"] == "warm" and entry["entity_id"] == str(lead)
    for headers in (employee, support, outsider):
        state, cursors[str(id(headers))] = await pull_all(client, headers)
        assert not [key for key in state if key[0] in CARE]

    # the log: a transition updates the state row, writes one audit entry more
    await body_of(await client.post(url, json={"to_state": "hot"}, headers=admin))
    await body_of(
        await client.put("/api/care/pause", json={"paused": True, "reason": "audit"}, headers=admin)
    )
    for name, headers in (("admin", admin), ("manager", manager)):
        state, _ = await pull_all(client, headers, cursors[name])
        assert [s["current_state"] for s in records(state, "care_states").values()] == ["hot"]
        events = sorted(a["event_type"] for a in records(state, "care_audit_log").values())
        assert events == ["ACTION_ALLOWED", "ACTION_ALLOWED", "STATE_TRANSITION"]
    for headers in (employee, support, outsider):
        state, _ = await pull_all(client, headers, cursors[str(id(headers))])
        assert not [key for key in state if key[0] in CARE]

    # audit change rows carry no fields (replicas pull the row); state rows their changes
    def read(session: Any) -> list[SyncChange]:
        return list(
            session.scalars(
                select(SyncChange).where(SyncChange.tenant_id == tenant.id).order_by(SyncChange.seq)
            )
        )

    logged = await app[keys.DB].run(read, system=True, write=False)
    audit_rows = [c for c in logged if c.entity == "care_audit_log"]
    assert len(audit_rows) == 5 and all(c.changes == {} for c in audit_rows)
    state_rows = [c for c in logged if c.entity == "care_states"]
    assert state_rows[-1].changes["current_state"] == ["warm", "hot"]


async def test_care_rows_cannot_be_pushed(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, admin = await user_with_headers(app, "admin", tenant.id)
    body = {
        "client_id": "desk-care",
        "mutations": [
            {
                "mutation_id": "m1",
                "entity_type": entity,
                "id": str(uuid.uuid4()),
                "op": "create",
                "fields": {"event_type": "ACTION_ALLOWED"},
            }
            for entity in CARE
        ],
    }
    resp = await client.post("/api/sync/push", json=body, headers=admin)
    data = await resp.json()
    if resp.status == 200:
        assert all(r["status"] == "rejected" for r in data["data"]["results"]), data
    else:
        assert resp.status in (400, 422), data
    state, _ = await pull_all(client, admin)
    assert not [key for key in state if key[0] in CARE]
