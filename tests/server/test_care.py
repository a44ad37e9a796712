"""/api/care (guide chapter 13) end to end on SQLite and PostgreSQL: status and pause, the
kill switch matrix, transitions, detection, rules, approvals, audit, retention, isolation."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Activity, Lead, Opportunity
from aisha_server.db.models.care import CareApproval, CareAuditLog, CareState
from aisha_server.db.models.deliveries import CareTriggerDelivery
from tests.factories import make_tenant, user_with_headers

SECRET = "s3cret-webhook-key-0123456789"
ON = {
    "CARE_ENABLED": True,
    "CARE_WORKFLOW_TRIGGERS_ENABLED": True,
    "CARE_WORKFLOW_ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    "CARE_WORKFLOW_WEBHOOK_SECRET": SECRET,
    "CARE_WORKER_ENABLED": False,
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Per test (indirect parametrisation): the overrides; the scan worker stays off."""
    return {"CARE_WORKER_ENABLED": False, **dict(getattr(request, "param", None) or {})}


# -- helpers (also used by test_care_scan.py) -----------------------------------------------
async def _add(app: Any, model: Any, tenant_id: uuid.UUID, values: dict[str, Any]) -> uuid.UUID:
    def write(session: Session) -> uuid.UUID:
        row = model(tenant_id=tenant_id, **values)
        session.add(row)
        session.flush()
        return uuid.UUID(str(row.id))

    return await app[keys.DB].run(write, system=True)


async def add_lead(app: Any, tenant_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"first_name": "Ada", "last_name": "Lovelace", "status": "new", **fields}
    return await _add(app, Lead, tenant_id, values)


async def add_opportunity(app: Any, tenant_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"name": "Deal", "stage": "proposal", "amount": Decimal(50_000), **fields}
    return await _add(app, Opportunity, tenant_id, values)


async def add_activity(app: Any, tenant_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    values = {"subject": "Call back", "type": "task", "status": "open", **fields}
    return await _add(app, Activity, tenant_id, values)


async def audit_rows(app: Any, tenant_id: uuid.UUID, event_type: str | None = None) -> list[Any]:
    def read(session: Session) -> list[Any]:
        query = select(CareAuditLog).where(CareAuditLog.tenant_id == tenant_id)
        if event_type:
            query = query.where(CareAuditLog.event_type == event_type)
        return list(session.scalars(query.order_by(CareAuditLog.created_at, CareAuditLog.id)))

    return await app[keys.DB].run(read, system=True)


async def count(app: Any, model: Any, tenant_id: uuid.UUID) -> int:
    def read(session: Session) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
            )
            or 0
        )

    return await app[keys.DB].run(read, system=True)


async def set_state(
    app: Any, tenant_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID, state: str
) -> None:
    def write(session: Session) -> None:
        session.add(
            CareState(
                tenant_id=tenant_id, entity_type=entity_type, entity_id=entity_id,
                current_state=state,
            )
        )  # fmt: skip

    await app[keys.DB].run(write, system=True)


async def stored_state(app: Any, entity_id: uuid.UUID) -> str | None:
    def read(session: Session) -> str | None:
        return session.scalar(
            select(CareState.current_state).where(CareState.entity_id == entity_id)
        )

    return await app[keys.DB].run(read, system=True)


async def body_of(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


# -- status and pause -------------------------------------------------------------------------
@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_status_reports_the_effective_configuration_without_secrets(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "employee", tenant.id)
    resp = await client.get("/api/care/status", headers=headers)
    raw = await resp.text()
    data = (await body_of(resp))["data"]
    assert SECRET not in raw and "9/hook" not in raw
    assert data["enabled"] is True and data["policy_mode"] == "strict"
    assert data["tenant_paused"] is False and data["acting"] is True
    assert data["disposition"] == "action_candidate"
    assert data["thresholds"]["lead_stagnant_days"] == 7
    assert data["thresholds"]["sentiment"] == 0.5
    assert data["workflow_triggers"] == {
        "enabled": True, "webhook_url_configured": True, "webhook_host": "127.0.0.1",
        "secret_configured": True, "timeout_ms": 3000, "max_retries": 2,
    }  # fmt: skip
    assert data["worker"]["enabled"] is False and data["worker"]["last_run_at"] is None


async def test_default_is_disabled(client: Any) -> None:
    tenant = await make_tenant(client.app)
    _, headers = await user_with_headers(client.app, "admin", tenant.id)
    data = (await body_of(await client.get("/api/care/status", headers=headers)))["data"]
    assert (data["enabled"], data["acting"], data["disposition"]) == (
        False, False, "action_skipped"
    )  # fmt: skip


async def test_admin_pauses_a_tenant_at_once_audited_and_isolated(client: Any) -> None:
    app = client.app
    tenant, other = await make_tenant(app), await make_tenant(app)
    admin, headers = await user_with_headers(app, "admin", tenant.id)
    _, other_headers = await user_with_headers(app, "admin", other.id)
    _, employee = await user_with_headers(app, "employee", tenant.id)

    resp = await client.put("/api/care/pause", json={"paused": True}, headers=employee)
    await body_of(resp, 403)
    resp = await client.put("/api/care/pause", json={"paused": "maybe"}, headers=headers)
    await body_of(resp, 422)
    resp = await client.put(
        "/api/care/pause", json={"paused": True, "tenant_id": str(other.id)}, headers=headers
    )
    await body_of(resp, 403)  # another tenant's pause is not reachable

    resp = await client.put(
        "/api/care/pause", json={"paused": True, "reason": "incident 42"}, headers=headers
    )
    data = (await body_of(resp))["data"]
    assert data["tenant_paused"] is True and data["pause_reason"] == "incident 42"
    assert data["paused_by"] == str(admin.id)
    other_status = await body_of(await client.get("/api/care/status", headers=other_headers))
    assert other_status["data"]["tenant_paused"] is False

    rows = await audit_rows(app, tenant.id, "ACTION_ALLOWED")
    assert [r.metadata_["action_type"] for r in rows] == ["tenant_pause"]
    assert rows[0].action_origin == "human" and rows[0].entity_id == tenant.id
    assert rows[0].metadata_["policy_gate_result"] == "allowed"
    assert await audit_rows(app, other.id) == []

    resp = await client.put("/api/care/pause", json={"paused": False}, headers=headers)
    assert (await body_of(resp))["data"]["tenant_paused"] is False
    rows = await audit_rows(app, tenant.id, "ACTION_ALLOWED")
    assert [r.metadata_["action_type"] for r in rows] == ["tenant_pause", "tenant_resume"]


# -- the kill switch matrix (13.2) --------------------------------------------------------
KILL_SWITCH = [
    pytest.param({**ON, "CARE_ENABLED": True}, False, True, id="enabled"),
    pytest.param({**ON, "CARE_ENABLED": True}, True, False, id="enabled-paused"),
    pytest.param({**ON, "CARE_ENABLED": False}, False, False, id="disabled"),
    pytest.param({**ON, "CARE_ENABLED": False}, True, False, id="disabled-paused"),
]


@pytest.mark.parametrize(
    ("settings_overrides", "paused", "acts"), KILL_SWITCH, indirect=["settings_overrides"]
)
async def test_kill_switch_matrix(
    client: Any, paused: bool, acts: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Detection and audit always; transitions and triggers only when enabled and unpaused."""
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    if paused:
        await body_of(await client.put("/api/care/pause", json={"paused": True}, headers=headers))
    now = datetime.now(UTC)
    lead = await add_lead(app, tenant.id, updated_at=now - timedelta(days=10))
    await set_state(app, tenant.id, "lead", lead, "warm")

    with caplog.at_level(logging.INFO, logger="aisha.care"):
        report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=now)
    assert report.tenants[0].escalations["lead_stagnant"] == 1
    detected = await audit_rows(app, tenant.id, "ESCALATION_DETECTED")
    assert len(detected) == 1
    disposition = "action_candidate" if acts else "action_skipped"
    assert detected[0].metadata_["disposition"] == disposition
    assert detected[0].metadata_["trigger_type"] == "lead_stagnant"
    lines = [r.getMessage() for r in caplog.records if "[CARE_AUDIT]" in r.getMessage()]
    assert any(line.startswith(f"[CARE_AUDIT] {disposition}") for line in lines)
    assert await stored_state(app, lead) == ("stale" if acts else "warm")
    assert len(await audit_rows(app, tenant.id, "STATE_TRANSITION")) == int(acts)
    assert await count(app, CareTriggerDelivery, tenant.id) == int(acts)
    assert len(await audit_rows(app, tenant.id, "ACTION_ALLOWED")) == (2 if acts else int(paused))


# -- state engine through the API ------------------------------------------------------------
@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_transitions_follow_the_diagram_and_refusals_are_audited(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    _, manager = await user_with_headers(app, "manager", tenant.id)
    lead = await add_lead(app, tenant.id)
    url = f"/api/care/states/lead/{lead}/transition"

    state = await body_of(await client.get(f"/api/care/states/lead/{lead}", headers=headers))
    assert state["data"]["current_state"] == "cold"
    await body_of(await client.post(url, json={"to_state": "warm"}, headers=manager), 403)

    steps = [
        ("hot", 409),  # cold -> hot skips warm
        ("warm", 200),
        ("stale", 200),
        ("warm", 409),  # stale only goes to lost
        ("lost", 200),
        ("warm", 409),  # lost is final
    ]
    for target, status in steps:
        resp = await client.post(url, json={"to_state": target}, headers=headers)
        body = await body_of(resp, status)
        if status == 409:
            assert body["code"] == "care_transition_refused"
    assert await stored_state(app, lead) == "lost"
    transitions = await audit_rows(app, tenant.id, "STATE_TRANSITION")
    assert [(r.metadata_["from_state"], r.metadata_["to_state"]) for r in transitions] == [
        ("cold", "warm"), ("warm", "stale"), ("stale", "lost")
    ]  # fmt: skip
    assert [r.metadata_["signal"] for r in transitions] == [
        "first_contact", "no_response", "failed_recovery"
    ]  # fmt: skip
    refused = [r for r in await audit_rows(app, tenant.id, "ACTION_BLOCKED")]
    assert len(refused) == 3 and all(r.metadata_["refused_transition"] for r in refused)
    assert all(r.metadata_["policy_gate_result"] == "blocked" for r in refused)

    # a named signal must be the edge's own
    lead2 = await add_lead(app, tenant.id)
    resp = await client.post(
        f"/api/care/states/lead/{lead2}/transition",
        json={"to_state": "warm", "signal": "engagement"}, headers=headers,
    )  # fmt: skip
    await body_of(resp, 409)
    await body_of(
        await client.post(f"/api/care/states/lead/{lead2}/transition",
                          json={"to_state": "frozen"}, headers=headers), 422,
    )  # fmt: skip
    await body_of(
        await client.post(f"/api/care/states/lead/{uuid.uuid4()}/transition",
                          json={"to_state": "warm"}, headers=headers), 404,
    )  # fmt: skip
    listed = await body_of(await client.get("/api/care/states?state=lost", headers=headers))
    assert [s["entity_id"] for s in listed["data"]] == [str(lead)]


async def test_transitions_are_refused_while_disabled(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)
    resp = await client.post(
        f"/api/care/states/lead/{lead}/transition", json={"to_state": "warm"}, headers=headers
    )
    await body_of(resp, 409)
    assert await stored_state(app, lead) is None
    blocked = await audit_rows(app, tenant.id, "ACTION_BLOCKED")
    assert blocked[0].metadata_["disposition"] == "action_skipped"


# -- detection -----------------------------------------------------------------------------
@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_detect_runs_the_pipeline_once_per_situation_and_origin_is_not_input(
    client: Any,
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    lead = await add_lead(app, tenant.id)
    payload = {"entity_type": "lead", "entity_id": str(lead), "text": "Please STOP calling me"}
    _, employee = await user_with_headers(app, "employee", tenant.id)
    await body_of(await client.post("/api/care/detect", json=payload, headers=employee), 403)
    spoofed = {**payload, "action_origin": "care_autonomous"}
    await body_of(await client.post("/api/care/detect", json=spoofed, headers=headers), 422)

    data = (await body_of(await client.post("/api/care/detect", json=payload, headers=headers)))[
        "data"
    ]
    assert data["is_escalation"] and data["trigger_type"] == "objection"
    assert data["escalated"] and data["workflow_event_ids"]
    again = await body_of(await client.post("/api/care/detect", json=payload, headers=headers))
    assert again["data"]["duplicate"] is True and not again["data"]["workflow_event_ids"]
    rows = await audit_rows(app, tenant.id)
    assert {r.action_origin for r in rows} == {"human"}
    assert len([r for r in rows if r.event_type == "ESCALATION_DETECTED"]) == 1

    calm = {**payload, "text": "We have an issue to pursue"}
    data = (await body_of(await client.post("/api/care/detect", json=calm, headers=headers)))[
        "data"
    ]
    assert data["is_escalation"] is False
    wrong = {**payload, "entity_id": str(uuid.uuid4())}
    await body_of(await client.post("/api/care/detect", json=wrong, headers=headers), 404)


# -- rules and approvals ------------------------------------------------------------------
@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_custom_defer_rule_queues_the_trigger_for_approval(client: Any) -> None:
    app = client.app
    tenant, other = await make_tenant(app), await make_tenant(app)
    admin, headers = await user_with_headers(app, "admin", tenant.id)
    _, other_headers = await user_with_headers(app, "admin", other.id)
    _, employee = await user_with_headers(app, "employee", tenant.id)
    rule = {"action_type": "trigger_workflow", "result": "defer", "reason": "ask first",
            "action_origin": "care_autonomous"}  # fmt: skip
    await body_of(await client.post("/api/care/rules", json=rule, headers=employee), 403)
    bad = {**rule, "action_type": "launch_rocket"}
    await body_of(await client.post("/api/care/rules", json=bad, headers=headers), 422)
    bad = {**rule, "states": ["frozen"]}
    await body_of(await client.post("/api/care/rules", json=bad, headers=headers), 422)
    created = await body_of(await client.post("/api/care/rules", json=rule, headers=headers), 201)
    rule_id = created["data"]["id"]
    assert (await body_of(await client.get("/api/care/rules", headers=other_headers)))["data"] == []

    now = datetime.now(UTC)
    for _ in range(2):
        await add_lead(app, tenant.id, updated_at=now - timedelta(days=9))
    other_lead = await add_lead(app, other.id, updated_at=now - timedelta(days=9))
    await app[keys.CARE_SERVICE].scan(now=now)
    assert await count(app, CareTriggerDelivery, tenant.id) == 0  # deferred, not sent
    assert await count(app, CareTriggerDelivery, other.id) == 1  # the rule is this tenant's
    assert other_lead is not None
    pending = (await body_of(await client.get("/api/care/approvals", headers=headers)))["data"]
    assert len(pending) == 2 and {p["status"] for p in pending} == {"pending"}
    assert all(p["action_type"] == "trigger_workflow" for p in pending)
    blocked = await audit_rows(app, tenant.id, "ACTION_BLOCKED")
    assert {r.metadata_["policy_gate_result"] for r in blocked} == {"defer"}
    assert {r.metadata_["action_origin"] for r in blocked} == {"care_autonomous"}

    first, second = pending
    url = f"/api/care/approvals/{first['id']}/approve"
    await body_of(await client.post(url, json={}, headers=employee), 403)
    await body_of(await client.post(url, json={}, headers=other_headers), 404)
    decided = (await body_of(await client.post(url, json={"note": "go"}, headers=headers)))["data"]
    assert decided["status"] == "approved" and decided["decided_by"] == str(admin.id)
    assert decided["result"]["event_id"]
    assert await count(app, CareTriggerDelivery, tenant.id) == 1
    await body_of(await client.post(url, json={}, headers=headers), 409)  # decided once
    rejected = await client.post(
        f"/api/care/approvals/{second['id']}/reject", json={}, headers=headers
    )
    assert (await body_of(rejected))["data"]["status"] == "rejected"
    assert await count(app, CareTriggerDelivery, tenant.id) == 1
    allowed = [
        r
        for r in await audit_rows(app, tenant.id, "ACTION_ALLOWED")
        if r.metadata_.get("approval_id")
    ]
    assert [r.metadata_["approval_id"] for r in allowed] == [first["id"]]
    await body_of(await client.get("/api/care/approvals?status=odd", headers=headers), 422)

    await body_of(await client.delete(f"/api/care/rules/{rule_id}", headers=other_headers), 404)
    await body_of(await client.delete(f"/api/care/rules/{rule_id}", headers=headers))
    assert (await body_of(await client.get("/api/care/rules", headers=headers)))["data"] == []


# -- audit API ---------------------------------------------------------------------------
@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_audit_api_filters_pages_and_isolates(client: Any) -> None:
    app = client.app
    tenant, other = await make_tenant(app), await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    _, other_headers = await user_with_headers(app, "admin", other.id)
    _, employee = await user_with_headers(app, "employee", tenant.id)
    now = datetime.now(UTC)
    for days in (8, 9, 10):
        await add_lead(app, tenant.id, updated_at=now - timedelta(days=days))
    await add_activity(app, tenant.id, due_date=now - timedelta(days=3))
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=now)

    await body_of(await client.get("/api/care/audit", headers=employee), 403)
    everything = await body_of(await client.get("/api/care/audit?limit=500", headers=headers))
    total = len(everything["data"])
    assert total >= 8 and everything["pagination"]["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/care/audit?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await body_of(await client.get(url, headers=headers))
        seen += [e["id"] for e in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything["data"]] and len(set(seen)) == total

    escalations = await body_of(
        await client.get("/api/care/audit?event_type=ESCALATION_DETECTED", headers=headers)
    )
    assert len(escalations["data"]) == 4
    stagnant = await body_of(
        await client.get("/api/care/audit?trigger_type=lead_stagnant&event_type=ESCALATION_DETECTED",
                         headers=headers)
    )  # fmt: skip
    assert len(stagnant["data"]) == 3
    assert all(e["metadata"]["trigger_type"] == "lead_stagnant" for e in stagnant["data"])
    future = (now + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    later = await body_of(await client.get(f"/api/care/audit?since={future}", headers=headers))
    assert later["data"] == []
    await body_of(await client.get("/api/care/audit?event_type=NOPE", headers=headers), 422)
    await body_of(await client.get("/api/care/audit?cursor=%%%", headers=headers), 400)
    await body_of(await client.get("/api/care/audit?limit=0", headers=headers), 422)

    # another tenant sees nothing of it and cannot name this tenant
    assert (await body_of(await client.get("/api/care/audit", headers=other_headers)))["data"] == []
    assert (await body_of(await client.get("/api/care/states", headers=other_headers)))[
        "data"
    ] == []
    resp = await client.get(f"/api/care/audit?tenant_id={tenant.id}", headers=other_headers)
    await body_of(resp, 403)
    resp = await client.get(f"/api/care/states?tenant_id={tenant.id}", headers=other_headers)
    await body_of(resp, 403)
    resp = await client.get(f"/api/care/status?tenant_id={tenant.id}", headers=other_headers)
    await body_of(resp, 403)

    # nor reach its records through C.A.R.E.
    lead = await add_lead(app, tenant.id)
    resp = await client.post(
        f"/api/care/states/lead/{lead}/transition", json={"to_state": "warm"}, headers=other_headers
    )
    await body_of(resp, 404)
    resp = await client.get(f"/api/care/states/lead/{lead}", headers=other_headers)
    await body_of(resp, 404)
    detect = {"entity_type": "lead", "entity_id": str(lead), "text": "stop calling"}
    await body_of(await client.post("/api/care/detect", json=detect, headers=other_headers), 404)
    assert await stored_state(app, lead) is None
    assert await audit_rows(app, other.id) == []


async def test_retention_removes_only_old_entries(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    now = datetime.now(UTC)

    def write(session: Session) -> None:
        for days in (100, 91, 89, 1):
            session.add(
                CareAuditLog(
                    tenant_id=tenant.id, event_type="ESCALATION_DETECTED", entity_type="lead",
                    entity_id=uuid.uuid4(), reason=f"{days}", created_at=now - timedelta(days=days),
                )
            )  # fmt: skip

    await app[keys.DB].run(write, system=True)
    assert await app[keys.CARE_SERVICE].prune(now=now) == 2
    assert sorted(r.reason for r in await audit_rows(app, tenant.id)) == ["1", "89"]
    assert await count(app, CareApproval, tenant.id) == 0


@pytest.mark.parametrize(
    ("settings_overrides", "mode"),
    [({**ON, "CARE_POLICY_MODE": m}, m) for m in ("strict", "permissive", "readonly")],
    indirect=["settings_overrides"],
)
async def test_policy_mode_end_to_end(client: Any, mode: str) -> None:
    """readonly blocks the autonomous transition and trigger; the others let them through."""
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    now = datetime.now(UTC)
    lead = await add_lead(app, tenant.id, updated_at=now - timedelta(days=10))
    await set_state(app, tenant.id, "lead", lead, "warm")
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=now)
    blocked = mode == "readonly"
    assert await stored_state(app, lead) == ("warm" if blocked else "stale")
    assert await count(app, CareTriggerDelivery, tenant.id) == (0 if blocked else 1)
    decisions = await audit_rows(app, tenant.id, "ACTION_BLOCKED" if blocked else "ACTION_ALLOWED")
    assert [d.metadata_["action_type"] for d in decisions] == ["update_state", "trigger_workflow"]
    assert {d.metadata_["policy_mode"] for d in decisions} == {mode}
    assert {d.metadata_["policy_gate_result"] for d in decisions} == {
        "blocked" if blocked else "allowed"
    }
    status = (await body_of(await client.get("/api/care/status", headers=headers)))["data"]
    assert status["policy_mode"] == mode and status["worker"]["last_run_at"] is not None


@pytest.mark.parametrize("settings_overrides", [ON], indirect=True)
async def test_a_deferred_transition_runs_when_approved_and_not_while_paused(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    rule = {"action_type": "update_state", "result": "defer", "reason": "ask before moving",
            "states": ["warm"]}  # fmt: skip
    await body_of(await client.post("/api/care/rules", json=rule, headers=headers), 201)
    now = datetime.now(UTC)
    lead = await add_lead(app, tenant.id, updated_at=now - timedelta(days=10))
    await set_state(app, tenant.id, "lead", lead, "warm")
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=now)
    assert await stored_state(app, lead) == "warm"
    (pending,) = (await body_of(await client.get("/api/care/approvals", headers=headers)))["data"]
    assert pending["action_type"] == "update_state" and pending["payload"]["to_state"] == "stale"

    url = f"/api/care/approvals/{pending['id']}/approve"
    await body_of(await client.put("/api/care/pause", json={"paused": True}, headers=headers))
    body = await body_of(await client.post(url, json={}, headers=headers), 409)
    assert body["code"] == "care_not_acting"
    await body_of(await client.put("/api/care/pause", json={"paused": False}, headers=headers))
    decided = (await body_of(await client.post(url, json={}, headers=headers)))["data"]
    assert decided["result"]["transition"]["current_state"] == "stale"
    assert await stored_state(app, lead) == "stale"
    transitions = await audit_rows(app, tenant.id, "STATE_TRANSITION")
    assert [t.metadata_["approval_id"] for t in transitions] == [pending["id"]]
