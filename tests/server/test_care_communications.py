"""Activities and notes operators log are communications: their text goes through C.A.R.E.'s
escalation detection in the same transaction (REST and sync pushes alike), raising an
escalation about the record they belong to once, and never failing the operator's write."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from aisha_server.db.models.deliveries import CareTriggerDelivery
from tests.factories import make_tenant, user_with_headers
from tests.server.test_care import ON, add_lead, audit_rows, count, stored_state
from tests.server.test_sync import mutation, push


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Per test (indirect parametrisation); the scan worker stays off."""
    return {"CARE_WORKER_ENABLED": False, **dict(getattr(request, "param", None) or {})}


async def created(client: Any, entity: str, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post(f"/api/{entity}", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return (await response.json())["data"]


@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_a_logged_call_with_an_objection_escalates_its_lead(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)
    call = await created(client, "activities", headers, subject="Call", type="call",
                         description="She asked us to stop calling her.",
                         related_type="lead", related_id=str(lead))  # fmt: skip
    [found] = await audit_rows(app, tenant.id, "ESCALATION_DETECTED")
    assert found.entity_type == "activity" and str(found.entity_id) == call["id"]
    assert (found.metadata_ or {})["anchor_entity_id"] == str(lead)
    assert found.action_origin == "care_autonomous"
    assert (found.metadata_ or {}).get("trigger_type") == "objection"
    assert await count(app, CareTriggerDelivery, tenant.id) == 1  # C.A.R.E. acts: triggered
    # the same text again (an unrelated edit) is not a new escalation; new text is
    patch = await client.patch(f"/api/activities/{call['id']}", json={"status": "done"},
                               headers=headers)  # fmt: skip
    assert patch.status == 200
    assert len(await audit_rows(app, tenant.id, "ESCALATION_DETECTED")) == 1
    await created(client, "notes", headers, title="Legal", content="Their lawyer will write.",
                  related_type="lead", related_id=str(lead))  # fmt: skip
    assert len(await audit_rows(app, tenant.id, "ESCALATION_DETECTED")) == 2
    # calm text, text about nothing C.A.R.E. follows, another tenant's lead: nothing
    await created(client, "notes", headers, title="Plan", content="We have an issue to pursue",
                  related_type="lead", related_id=str(lead))  # fmt: skip
    await created(client, "notes", headers, title="Free", content="Stop calling, said the cat")
    other = await make_tenant(app)
    foreign = await add_lead(app, other.id)
    refused = await client.post("/api/notes", json={"title": "X", "content": "stop calling",
                                "related_type": "lead", "related_id": str(foreign)},
                                headers=headers)  # fmt: skip
    assert refused.status == 422
    assert len(await audit_rows(app, tenant.id, "ESCALATION_DETECTED")) == 2
    assert await audit_rows(app, other.id) == []


async def test_with_care_off_detection_is_audited_and_nothing_acts(client: Any) -> None:
    app = client.app  # CARE_ENABLED is false by default (the kill switch)
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)
    await created(client, "activities", headers, subject="Email", type="email",
                  description="Please unsubscribe me", related_type="lead",
                  related_id=str(lead))  # fmt: skip
    assert len(await audit_rows(app, tenant.id, "ESCALATION_DETECTED")) == 1
    assert await count(app, CareTriggerDelivery, tenant.id) == 0  # the kill switch holds
    assert await stored_state(app, lead) is None


async def test_a_failing_detection_never_undoes_the_write(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("policy store unreachable")

    monkeypatch.setattr("aisha_server.services.care.handle_escalation", broken)
    note = await created(client, "notes", headers, title="Angry", content="stop calling me",
                         related_type="lead", related_id=str(lead))  # fmt: skip
    stored = await client.get(f"/api/notes/{note['id']}", headers=headers)
    assert stored.status == 200
    assert await audit_rows(app, tenant.id) == []


async def test_synced_notes_are_read_too(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)
    fields = {"title": "Call", "content": "He wants a refund and to cancel",
              "related_type": "lead", "related_id": str(lead)}  # fmt: skip
    [result] = await push(client, headers, mutation("create", "notes", str(uuid.uuid4()), fields))
    assert result["status"] == "applied", result
    [found] = await audit_rows(app, tenant.id, "ESCALATION_DETECTED")
    assert found.entity_type == "note"
    assert (found.metadata_ or {})["anchor_entity_id"] == str(lead)
