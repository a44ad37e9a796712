"""The scheduled C.A.R.E. checks (guide 13.4) on SQLite and PostgreSQL: every trigger at,
below and above its threshold, exclusions, no duplicate for an unchanged situation, batches,
the advisory lock, the worker loop and `aisha-server care scan --once`."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Lead
from aisha_server.db.models.care import CareScanCursor
from aisha_server.services.care_scan import advisory_key
from tests.factories import make_tenant
from tests.server.test_care import add_activity, add_lead, add_opportunity, audit_rows
from tests.server.test_cli import cli_env, run_cli

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"CARE_WORKER_ENABLED": False, **dict(getattr(request, "param", None) or {})}


async def escalated(app: Any, tenant_id: uuid.UUID, trigger: str | None = None) -> list[Any]:
    rows = await audit_rows(app, tenant_id, "ESCALATION_DETECTED")
    return [r for r in rows if trigger is None or r.metadata_["trigger_type"] == trigger]


async def make_row(app: Any, tenant_id: uuid.UUID, trigger: str, age: timedelta) -> uuid.UUID:
    """One record that the `trigger` check watches, `age` old in its time column."""
    stamp = NOW - age
    if trigger == "lead_stagnant":
        return await add_lead(app, tenant_id, updated_at=stamp)
    if trigger == "deal_decay":
        return await add_opportunity(app, tenant_id, updated_at=stamp, probability=None)
    if trigger == "activity_overdue":
        return await add_activity(app, tenant_id, due_date=stamp)
    assert trigger == "opportunity_hot"
    return await add_opportunity(
        app, tenant_id, updated_at=stamp, probability=80, amount=Decimal(100)
    )


THRESHOLDS = {
    "lead_stagnant": 7,  # CARE_LEAD_STAGNANT_DAYS
    "deal_decay": 3,  # CARE_DEAL_DECAY_DAYS
    "activity_overdue": 1,  # CARE_ACTIVITY_OVERDUE_THRESHOLD
    "opportunity_hot": 2,  # CARE_OPPORTUNITY_HOT_DAYS
}


@pytest.mark.parametrize("trigger", list(THRESHOLDS))
@pytest.mark.parametrize(
    ("offset", "raised"),
    [(-MINUTE, False), (timedelta(0), False), (MINUTE, True), (timedelta(days=30), True)],
    ids=["below", "at", "above", "far-above"],
)
async def test_each_trigger_at_below_and_above_its_threshold(
    client: Any, trigger: str, offset: timedelta, raised: bool
) -> None:
    app = client.app
    tenant = await make_tenant(app)
    row = await make_row(app, tenant.id, trigger, timedelta(days=THRESHOLDS[trigger]) + offset)
    report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
    found = await escalated(app, tenant.id)
    assert [r.metadata_["trigger_type"] for r in found] == ([trigger] if raised else [])
    assert report.tenants[0].escalations[trigger] == int(raised)
    if raised:
        entry = found[0]
        assert entry.entity_id == row and entry.action_origin == "care_autonomous"
        assert entry.metadata_["disposition"] == "action_skipped"  # CARE_ENABLED=false
        meta = entry.metadata_["meta"]
        key = {"lead_stagnant": "days_stagnant", "activity_overdue": "days_overdue"}.get(
            trigger, "days_inactive"
        )
        assert meta[key] == (THRESHOLDS[trigger] + offset.days)


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "CARE_LEAD_STAGNANT_DAYS": 14,
            "CARE_DEAL_DECAY_MIN_AMOUNT": 100_000,
            "CARE_HOT_PROBABILITY": 90,
        }
    ],
    indirect=True,
)
async def test_thresholds_come_from_the_settings(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    await add_lead(app, tenant.id, updated_at=NOW - timedelta(days=10))  # < 14 days
    await add_opportunity(app, tenant.id, updated_at=NOW - timedelta(days=5), probability=80)
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
    assert await escalated(app, tenant.id) == []  # 50,000 < 100,000 and 80 < 90


async def test_closed_done_deleted_and_anonymous_records_are_not_raised(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    old = NOW - timedelta(days=60)
    await add_lead(app, tenant.id, updated_at=old, status="converted")
    await add_lead(app, tenant.id, updated_at=old, status="Disqualified")
    await add_lead(app, tenant.id, updated_at=old, converted_at=old)
    await add_lead(app, tenant.id, updated_at=old, deleted_at=old)
    await add_lead(app, tenant.id, updated_at=old, first_name=None, last_name=None)
    await add_opportunity(app, tenant.id, updated_at=old, stage="closed", probability=90)
    await add_opportunity(app, tenant.id, updated_at=old, amount=Decimal(9_999))
    await add_activity(app, tenant.id, due_date=old, status="completed")
    await add_activity(app, tenant.id, due_date=old, completed_at=old)
    await add_activity(app, tenant.id, due_date=None)
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
    assert await escalated(app, tenant.id) == []
    # one with an email only is reachable, so it counts; written with a timestamp behind
    # the cursors (only direct database writes do that), a rescan reads it
    await add_lead(app, tenant.id, updated_at=old, first_name=None, last_name=None, email="x@y.z")
    await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
    assert await escalated(app, tenant.id) == []
    report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW, rescan=True)
    assert len(await escalated(app, tenant.id, "lead_stagnant")) == 1
    assert report.tenants[0].duplicates == 0


async def test_an_unchanged_situation_is_raised_once_a_changed_one_again(client: Any) -> None:
    app = client.app
    service = app[keys.CARE_SERVICE]
    tenant = await make_tenant(app)
    lead = await add_lead(app, tenant.id, updated_at=NOW - timedelta(days=8))
    await service.scan(tenant_id=tenant.id, now=NOW)
    await service.scan(tenant_id=tenant.id, now=NOW + timedelta(hours=1))
    await service.scan(tenant_id=tenant.id, now=NOW + timedelta(days=3))
    assert len(await escalated(app, tenant.id)) == 1

    # even with the cursors gone, the dedupe key holds
    def reset(session: Session) -> None:
        session.execute(delete(CareScanCursor))

    await app[keys.DB].run(reset, system=True)
    report = await service.scan(tenant_id=tenant.id, now=NOW + timedelta(days=4))
    assert report.tenants[0].duplicates == 1
    assert len(await escalated(app, tenant.id)) == 1

    # the lead is touched: quiet again for 7 days, it is raised again
    def touch(session: Session) -> None:
        session.execute(update(Lead).where(Lead.id == lead).values(updated_at=NOW))

    await app[keys.DB].run(touch, system=True)
    await service.scan(tenant_id=tenant.id, now=NOW + timedelta(days=6))
    assert len(await escalated(app, tenant.id)) == 1
    await service.scan(tenant_id=tenant.id, now=NOW + timedelta(days=7, minutes=1))
    assert len(await escalated(app, tenant.id)) == 2


@pytest.mark.parametrize("settings_overrides", [{"CARE_SCAN_BATCH_SIZE": 2}], indirect=True)
async def test_large_backlogs_are_worked_off_in_batches_oldest_first(client: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    leads = [
        await add_lead(app, tenant.id, updated_at=NOW - timedelta(days=20 - i)) for i in range(5)
    ]
    raised = []
    for _ in range(4):
        report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
        raised.append(report.tenants[0].escalations["lead_stagnant"])
    assert raised == [2, 2, 1, 0]
    assert [r.entity_id for r in await escalated(app, tenant.id)] == leads


async def test_a_scan_covers_every_active_tenant_separately(client: Any) -> None:
    app = client.app
    first, second = await make_tenant(app), await make_tenant(app)
    suspended = await make_tenant(app, status="suspended")
    for tenant in (first, second, suspended):
        await add_lead(app, tenant.id, updated_at=NOW - timedelta(days=9))
    await app[keys.CARE_SERVICE].scan(tenant_id=first.id, now=NOW)
    assert (len(await escalated(app, first.id)), len(await escalated(app, second.id))) == (1, 0)
    report = await app[keys.CARE_SERVICE].scan(now=NOW)
    ids = {t.tenant_id for t in report.tenants}
    assert {first.id, second.id} <= ids and suspended.id not in ids
    assert len(await escalated(app, second.id)) == 1
    assert len(await escalated(app, first.id)) == 1
    assert await escalated(app, suspended.id) == []


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_tenant_locked_by_another_instance_is_skipped(client: Any, settings: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    await add_lead(app, tenant.id, updated_at=NOW - timedelta(days=9))
    other_instance = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await other_instance.execute("SELECT pg_advisory_lock($1)", advisory_key(tenant.id))
        report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
        assert report.tenants[0].locked_out is True
        assert await escalated(app, tenant.id) == []
        await other_instance.execute("SELECT pg_advisory_unlock($1)", advisory_key(tenant.id))
    finally:
        await other_instance.close()
    report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant.id, now=NOW)
    assert report.tenants[0].locked_out is False
    assert len(await escalated(app, tenant.id)) == 1


@pytest.mark.parametrize(
    "settings_overrides",
    [{"CARE_WORKER_ENABLED": True, "CARE_SCAN_INTERVAL_SECONDS": 1}],
    indirect=True,
)
async def test_the_worker_scans_on_its_interval(started_app: Any) -> None:
    app = started_app
    tenant = await make_tenant(app)
    await add_lead(app, tenant.id, updated_at=datetime.now(UTC) - timedelta(days=9))
    for _ in range(100):
        if await escalated(app, tenant.id):
            break
        await asyncio.sleep(0.1)
    assert len(await escalated(app, tenant.id)) == 1
    assert app[keys.CARE_SERVICE].last_scan is not None


async def test_cli_scan_once(client: Any, settings: Any, tmp_path: Any) -> None:
    app = client.app
    tenant = await make_tenant(app)
    other = await make_tenant(app)
    await add_lead(app, tenant.id, updated_at=datetime.now(UTC) - timedelta(days=9))
    await add_lead(app, other.id, updated_at=datetime.now(UTC) - timedelta(days=9))
    env = cli_env(**({"DATABASE_URL": settings.DATABASE_URL} if settings.DATABASE_URL else {}))
    args = ("--data-dir", str(settings.AISHA_DATA_DIR))
    result = await asyncio.to_thread(
        run_cli, "care", "scan", "--once", "--tenant", tenant.slug, *args, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [t["tenant_id"] for t in report["tenants"]] == [str(tenant.id)]
    assert report["escalations"] == 1 and report["errors"] == []
    assert len(await escalated(app, tenant.id)) == 1
    assert await escalated(app, other.id) == []

    result = await asyncio.to_thread(
        run_cli, "care", "scan", "--once", "--tenant", "no-such-tenant", *args, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "aisha-server: Tenant not found: no-such-tenant"
    result = await asyncio.to_thread(run_cli, "care", "scan", *args, env=env, cwd=tmp_path)
    assert result.returncode == 2 and "--once" in result.stderr
