"""The guide's C.A.R.E. monitoring SQL (13.3, 13.4, 13.5, 13.6, 13.7, 13.9), verbatim but for
the tenant placeholder, returns the expected rows on PostgreSQL after real C.A.R.E. activity
(scans, detection, a custom rule, trigger attempts) plus entries of other days and tenants.
Expected rows are computed in Python from the audit entries themselves."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models.care import CareAuditLog, CareState
from tests.factories import make_tenant, user_with_headers
from tests.server.test_care import ON, add_activity, add_lead, body_of, set_state

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(ON)


Q_STATES = """SELECT
    entity_type,
    entity_id,
    previous_state,
    current_state,
    transition_reason,
    transitioned_at
FROM care_states
WHERE tenant_id = 'YOUR_TENANT_UUID'
ORDER BY transitioned_at DESC
LIMIT 20;"""
Q_ESCALATIONS = """SELECT
    event_type,
    entity_type,
    entity_id,
    reason,
    metadata->>'trigger_type' as trigger,
    created_at
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = 'YOUR_TENANT_UUID'
ORDER BY created_at DESC
LIMIT 50;"""
Q_BLOCKED = """SELECT
    metadata->>'action_origin' as origin,
    metadata->>'policy_gate_result' as decision,
    reason,
    COUNT(*) as count
FROM care_audit_log
WHERE event_type IN ('ACTION_ALLOWED', 'ACTION_BLOCKED')
AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY origin, decision, reason
ORDER BY count DESC;"""
Q_TRIGGERS = """SELECT
    metadata->>'event_id' as event_id,
    metadata->>'trigger_type' as trigger,
    metadata->>'http_status' as status,
    metadata->>'attempt' as attempt,
    created_at
FROM care_audit_log
WHERE metadata->>'action_type' = 'workflow_trigger'
ORDER BY created_at DESC
LIMIT 100;"""
Q_RATE_30 = """SELECT
    DATE(created_at) as date,
    COUNT(*) as escalations
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = 'YOUR_TENANT_UUID'
AND created_at > NOW() - INTERVAL '30 days'
GROUP BY DATE(created_at)
ORDER BY date DESC;"""
Q_APPROVAL_RATE = """SELECT
    event_type,
    COUNT(*) as count,
    ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) as percentage
FROM care_audit_log
WHERE event_type IN ('ACTION_ALLOWED', 'ACTION_BLOCKED')
AND tenant_id = 'YOUR_TENANT_UUID'
AND created_at > NOW() - INTERVAL '7 days'
GROUP BY event_type;"""
Q_REASONS = """SELECT
    reason,
    metadata->>'trigger_type' as trigger,
    COUNT(*) as count
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
AND tenant_id = 'YOUR_TENANT_UUID'
AND created_at > NOW() - INTERVAL '7 days'
GROUP BY reason, trigger
ORDER BY count DESC
LIMIT 10;"""
Q_LAST_HOUR = """SELECT event_type, reason, COUNT(*)
   FROM care_audit_log
   WHERE created_at > NOW() - INTERVAL '1 hour'
   GROUP BY event_type, reason;"""
Q_RATE_ALL = """SELECT
    DATE(created_at) as date,
    COUNT(*) as escalations
FROM care_audit_log
WHERE event_type = 'ESCALATION_DETECTED'
GROUP BY DATE(created_at)
ORDER BY date DESC
LIMIT 7;"""
Q_STATES_24H = """SELECT entity_type, current_state, COUNT(*)
FROM care_states
WHERE updated_at > NOW() - INTERVAL '24 hours'
GROUP BY entity_type, current_state;"""
Q_LAST_100 = """SELECT
    TO_CHAR(created_at, 'YYYY-MM-DD HH24:MI:SS') as time,
    event_type,
    entity_type,
    reason,
    metadata->>'action_origin' as origin,
    metadata->>'policy_gate_result' as decision
FROM care_audit_log
ORDER BY created_at DESC
LIMIT 100;"""
Q_RETENTION = """DELETE FROM care_audit_log
WHERE created_at < NOW() - INTERVAL '90 days';"""


async def _seed(client: Any) -> tuple[Any, Any]:
    app = client.app
    tenant, other = await make_tenant(app), await make_tenant(app)
    _, headers = await user_with_headers(app, "admin", tenant.id)
    _, other_headers = await user_with_headers(app, "admin", other.id)
    now = datetime.now(UTC)
    # triggers for stale leads are blocked by a tenant rule: ACTION_BLOCKED entries
    rule = {"action_type": "trigger_workflow", "result": "blocked", "reason": "no calls to stale",
            "states": ["stale"], "action_origin": "care_autonomous"}  # fmt: skip
    await body_of(await client.post("/api/care/rules", json=rule, headers=headers), 201)
    for days in (9, 10, 11):
        lead = await add_lead(app, tenant.id, updated_at=now - timedelta(days=days))
        await set_state(app, tenant.id, "lead", lead, "warm")
    await add_lead(app, tenant.id, updated_at=now - timedelta(days=12), value=Decimal(5))
    await add_activity(app, tenant.id, due_date=now - timedelta(days=2))
    await add_lead(app, other.id, updated_at=now - timedelta(days=20))
    await app[keys.CARE_SERVICE].scan(now=now)
    lead = await add_lead(app, tenant.id)
    detect = {"entity_type": "lead", "entity_id": str(lead), "text": "stop calling me"}
    await body_of(await client.post("/api/care/detect", json=detect, headers=headers))
    await body_of(
        await client.put("/api/care/pause", json={"paused": False}, headers=other_headers)
    )

    def older(session: Session) -> None:
        def entry(tenant_id: Any, event: str, days: float, **meta: Any) -> CareAuditLog:
            return CareAuditLog(
                tenant_id=tenant_id, event_type=event, entity_type="lead", entity_id=lead,
                action_origin="care_autonomous", reason=f"old {event} {days}",
                metadata_={"trigger_type": "lead_stagnant", **meta},
                created_at=now - timedelta(days=days),
            )  # fmt: skip

        session.add_all(
            [
                entry(tenant.id, "ESCALATION_DETECTED", 3),  # 7-day window
                entry(tenant.id, "ESCALATION_DETECTED", 10),  # 30-day window only
                entry(tenant.id, "ESCALATION_DETECTED", 40),  # outside both
                entry(tenant.id, "ESCALATION_DETECTED", 100),  # past retention
                entry(tenant.id, "ACTION_ALLOWED", 2, action_origin="care_autonomous",
                      policy_gate_result="allowed"),  # 7 days, not 24 hours
                entry(other.id, "ESCALATION_DETECTED", 95),
                entry(tenant.id, "WORKFLOW_TRIGGERED", 0.01, action_type="workflow_trigger",
                      event_id="e1", http_status=503, attempt=1),
                entry(tenant.id, "WORKFLOW_TRIGGERED", 0.005, action_type="workflow_trigger",
                      event_id="e1", http_status=200, attempt=2),
            ]
        )  # fmt: skip

    await app[keys.DB].run(older, system=True)
    return tenant, other


async def _rows(app: Any) -> tuple[list[CareAuditLog], list[CareState]]:
    def read(session: Session) -> tuple[list[CareAuditLog], list[CareState]]:
        return list(session.scalars(select(CareAuditLog))), list(session.scalars(select(CareState)))

    return await app[keys.DB].run(read, system=True)


def _utc_day(value: datetime) -> date:
    return value.astimezone(UTC).date()


async def test_monitoring_queries_return_the_expected_rows(client: Any, settings: Any) -> None:
    app = client.app
    tenant, other = await _seed(client)
    entries, states = await _rows(app)
    now = datetime.now(UTC)
    mine = [e for e in entries if e.tenant_id == tenant.id]

    def since(rows: list[CareAuditLog], delta: timedelta) -> list[CareAuditLog]:
        return [e for e in rows if e.created_at is not None and e.created_at > now - delta]

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await conn.execute("SET TIME ZONE 'UTC'")  # DATE() of a timestamptz follows the session

        async def run(sql: str) -> list[asyncpg.Record]:
            return list(await conn.fetch(sql.replace("YOUR_TENANT_UUID", str(tenant.id))))

        # 13.3 recent state transitions
        got = await run(Q_STATES)
        expected = [s for s in states if s.tenant_id == tenant.id]
        assert len(got) == len(expected) == 3
        assert {(r["entity_id"], r["previous_state"], r["current_state"]) for r in got} == {
            (s.entity_id, "warm", "stale") for s in expected
        }
        assert all(r["transition_reason"] == "Lead stagnant for 7+ days" for r in got)

        # 13.4 escalations of the tenant, newest first
        got = await run(Q_ESCALATIONS)
        escalations = [e for e in mine if e.event_type == "ESCALATION_DETECTED"]
        assert len(got) == len(escalations) == 10  # 4 leads + activity + detect + 4 older
        assert [r["created_at"] for r in got] == sorted(
            (r["created_at"] for r in got), reverse=True
        )
        assert Counter(r["trigger"] for r in got) == Counter(
            {"lead_stagnant": 8, "activity_overdue": 1, "objection": 1}
        )

        # 13.5 decisions of the last 24 hours, every tenant
        got = await run(Q_BLOCKED)
        decisions = [
            e for e in since(entries, timedelta(hours=24))
            if e.event_type in ("ACTION_ALLOWED", "ACTION_BLOCKED")
        ]  # fmt: skip
        expected_groups = Counter(
            (e.metadata_["action_origin"], e.metadata_["policy_gate_result"], e.reason)
            for e in decisions
        )
        assert {(r["origin"], r["decision"], r["reason"]): r["count"] for r in got} == dict(
            expected_groups
        )
        assert ("care_autonomous", "blocked", "no calls to stale") in expected_groups
        assert expected_groups[("care_autonomous", "blocked", "no calls to stale")] == 3
        assert [r["count"] for r in got] == sorted((r["count"] for r in got), reverse=True)

        # 13.6 workflow trigger attempts
        got = await run(Q_TRIGGERS)
        assert [(r["event_id"], r["status"], r["attempt"]) for r in got] == [
            ("e1", "200", "2"), ("e1", "503", "1")
        ]  # fmt: skip

        # 13.7 escalation rate over 30 days, by day
        got = await run(Q_RATE_30)
        per_day = Counter(
            _utc_day(e.created_at)
            for e in since(escalations, timedelta(days=30))
            if e.created_at is not None
        )
        assert [(r["date"], r["escalations"]) for r in got] == sorted(per_day.items(), reverse=True)
        assert sum(per_day.values()) == 8

        # 13.7 approval rate over 7 days
        got = await run(Q_APPROVAL_RATE)
        counts = Counter(
            e.event_type for e in since(mine, timedelta(days=7))
            if e.event_type in ("ACTION_ALLOWED", "ACTION_BLOCKED")
        )  # fmt: skip
        total = sum(counts.values())
        assert {r["event_type"]: (r["count"], r["percentage"]) for r in got} == {
            event: (n, round(Decimal(100 * n) / total, 2)) for event, n in counts.items()
        }
        assert counts["ACTION_BLOCKED"] == 3

        # 13.7 most common escalation reasons over 7 days
        got = await run(Q_REASONS)
        reasons = Counter(
            (e.reason, e.metadata_.get("trigger_type"))
            for e in since(escalations, timedelta(days=7))
        )
        assert {(r["reason"], r["trigger"]): r["count"] for r in got} == dict(reasons)
        assert got[0]["reason"] == "Lead stagnant for 7+ days" and got[0]["count"] == 4

        # 13.9 blocked actions of the last hour (what happened, why)
        got = await run(Q_LAST_HOUR)
        hour = Counter((e.event_type, e.reason) for e in since(entries, timedelta(hours=1)))
        assert {(r["event_type"], r["reason"]): r["count"] for r in got} == dict(hour)

        # 13.9 escalation rate, every tenant, last 7 days with entries
        got = await run(Q_RATE_ALL)
        all_days = Counter(
            _utc_day(e.created_at)
            for e in entries
            if e.event_type == "ESCALATION_DETECTED" and e.created_at is not None
        )
        assert [(r["date"], r["escalations"]) for r in got] == sorted(
            all_days.items(), reverse=True
        )[:7]

        # 13.9 states changed in the last 24 hours
        got = await run(Q_STATES_24H)
        assert {(r["entity_type"], r["current_state"]): r["count"] for r in got} == {
            ("lead", "stale"): 3
        }

        # 13.9 last 100 events
        got = await run(Q_LAST_100)
        assert len(got) == min(100, len(entries))
        newest = sorted(entries, key=lambda e: e.created_at or now, reverse=True)[:100]
        assert Counter(r["event_type"] for r in got) == Counter(e.event_type for e in newest)
        assert got[0]["time"] == max(e.created_at for e in entries if e.created_at).strftime(
            "%Y-%m-%d %H:%M:%S"
        )

        # 13.7 retention: exactly the two entries older than 90 days go
        result = await conn.execute(Q_RETENTION)
        assert result == "DELETE 2"
    finally:
        await conn.close()
    remaining, _ = await _rows(app)
    assert len(remaining) == len(entries) - 2
    assert other.id in {e.tenant_id for e in remaining}
