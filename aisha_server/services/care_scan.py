"""The scheduled C.A.R.E. checks (guide 13.4 "AI Trigger Escalations").

| check            | rows                                                        | time column |
| ---------------- | ----------------------------------------------------------- | ----------- |
| lead_stagnant    | open leads with a name or a way to reach them               | updated_at  |
| deal_decay       | open opportunities with amount >= CARE_DEAL_DECAY_MIN_AMOUNT | updated_at  |
| activity_overdue | activities neither completed nor cancelled                  | due_date    |
| opportunity_hot  | open opportunities with probability >= CARE_HOT_PROBABILITY  | updated_at  |

A row escalates when its time column is older than the check's threshold.  Each check keeps
a cursor per tenant (`care_scan_cursors`: time column, then id) and reads only rows that
crossed the threshold since the last scan, through the (tenant_id, <time column>) indexes,
oldest first, at most `CARE_SCAN_BATCH_SIZE` per scan: a scan costs what changed, not the
size of the tables.  A record that changes moves forward in time and is raised again when it
goes quiet again; an unchanged one never is (and its dedupe key, `<trigger>:<id>:<time>`,
guards the same situation against a reset cursor or a second instance).

On PostgreSQL each tenant's scan holds `pg_try_advisory_xact_lock`, so two server instances
never scan one tenant at once (the second skips it).  SQLite has one writer anyway.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from aisha_server.care.audit import ORIGIN_AUTONOMOUS
from aisha_server.care.detector import (
    ACTIVITY_OVERDUE,
    CONFIDENCE,
    DEAL_DECAY,
    LEAD_STAGNANT,
    OPPORTUNITY_HOT,
    Escalation,
)
from aisha_server.care.states import Signal
from aisha_server.config import Settings
from aisha_server.db.base import utcnow
from aisha_server.db.models.care import CareScanCursor
from aisha_server.db.models.crm import Activity, Lead, Opportunity
from aisha_server.services.care_engine import (
    CareContext,
    Situation,
    handle_escalation,
    prefetch,
)

CLOSED_LEAD_STATUSES: Final = ("converted", "closed", "disqualified", "lost", "dead")
CLOSED_STAGES: Final = ("closed", "closed_won", "closed_lost", "won", "lost")
DONE_ACTIVITY_STATUSES: Final = ("completed", "complete", "done", "cancelled", "canceled")
ANCHOR_TYPES: Final = ("lead", "contact", "account", "opportunity")


def _open_lead() -> ColumnElement[bool]:
    return and_(
        Lead.converted_at.is_(None),
        or_(Lead.status.is_(None), func.lower(Lead.status).not_in(CLOSED_LEAD_STATUSES)),
        # skip leads with neither a name nor a way to reach them (nobody to re-engage)
        or_(
            Lead.first_name.is_not(None),
            Lead.last_name.is_not(None),
            Lead.email.is_not(None),
            Lead.phone.is_not(None),
        ),
    )


def _open_opportunity() -> ColumnElement[bool]:
    return or_(Opportunity.stage.is_(None), func.lower(Opportunity.stage).not_in(CLOSED_STAGES))


def _open_activity() -> ColumnElement[bool]:
    return and_(
        Activity.completed_at.is_(None),
        or_(Activity.status.is_(None), func.lower(Activity.status).not_in(DONE_ACTIVITY_STATUSES)),
    )


def _days(delta: timedelta) -> int:
    return max(0, delta.days)


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # the trigger type
    model: type[Any]
    entity_type: str
    time_column: InstrumentedAttribute[Any]
    threshold_days: Callable[[Settings], int]
    condition: Callable[[Settings], ColumnElement[bool]]
    describe: Callable[[Any, datetime, int], tuple[str, dict[str, Any]]]
    state_signal: Signal | None
    anchor: Callable[[Any], tuple[str, uuid.UUID]]


def _lead_stagnant(lead: Lead, now: datetime, days: int) -> tuple[str, dict[str, Any]]:
    idle = _days(now - lead.updated_at)
    return f"Lead stagnant for {days}+ days", {
        "days_stagnant": idle,
        "last_contact": _iso(lead.updated_at),
        "amount": _money(lead.value),
    }


def _deal_decay(opp: Opportunity, now: datetime, days: int) -> tuple[str, dict[str, Any]]:
    return f"High-value deal inactive for {days}+ days", {
        "days_inactive": _days(now - opp.updated_at),
        "amount": _money(opp.amount),
        "last_contact": _iso(opp.updated_at),
        "stage": opp.stage,
    }


def _activity_overdue(act: Activity, now: datetime, days: int) -> tuple[str, dict[str, Any]]:
    assert act.due_date is not None
    return f"Activity overdue by {days}+ days: {act.subject}", {
        "days_overdue": _days(now - act.due_date),
        "due_date": _iso(act.due_date),
        "activity_type": act.type,
    }


def _opportunity_hot(opp: Opportunity, now: datetime, days: int) -> tuple[str, dict[str, Any]]:
    to_close = (opp.close_date - now.date()).days if opp.close_date is not None else None
    return f"Hot opportunity ({opp.probability}%) without contact for {days}+ days", {
        "days_inactive": _days(now - opp.updated_at),
        "probability": opp.probability,
        "amount": _money(opp.amount),
        "days_to_close": to_close,
        "last_contact": _iso(opp.updated_at),
    }


def _opportunity_anchor(opp: Opportunity) -> tuple[str, uuid.UUID]:
    for kind, value in (
        ("contact", opp.contact_id),
        ("account", opp.account_id),
        ("lead", opp.lead_id),
    ):
        if value is not None:
            return kind, value
    return "opportunity", opp.id


def _activity_anchor(act: Activity) -> tuple[str, uuid.UUID]:
    if act.related_type in ANCHOR_TYPES and act.related_id is not None:
        return str(act.related_type), act.related_id
    return "activity", act.id


CHECKS: Final[tuple[Check, ...]] = (
    Check(
        LEAD_STAGNANT, Lead, "lead", Lead.updated_at,
        lambda s: s.CARE_LEAD_STAGNANT_DAYS, lambda s: _open_lead(),
        _lead_stagnant, Signal.NO_RESPONSE, lambda lead: ("lead", lead.id),
    ),
    Check(
        DEAL_DECAY, Opportunity, "opportunity", Opportunity.updated_at,
        lambda s: s.CARE_DEAL_DECAY_DAYS,
        lambda s: and_(
            _open_opportunity(), Opportunity.amount >= Decimal(str(s.CARE_DEAL_DECAY_MIN_AMOUNT))
        ),
        _deal_decay, Signal.NO_RESPONSE, _opportunity_anchor,
    ),
    Check(
        ACTIVITY_OVERDUE, Activity, "activity", Activity.due_date,
        lambda s: s.CARE_ACTIVITY_OVERDUE_THRESHOLD, lambda s: _open_activity(),
        _activity_overdue, None, _activity_anchor,
    ),
    Check(
        OPPORTUNITY_HOT, Opportunity, "opportunity", Opportunity.updated_at,
        lambda s: s.CARE_OPPORTUNITY_HOT_DAYS,
        lambda s: and_(_open_opportunity(), Opportunity.probability >= s.CARE_HOT_PROBABILITY),
        _opportunity_hot, Signal.ENGAGEMENT, _opportunity_anchor,
    ),
)  # fmt: skip
CHECK_NAMES: Final = tuple(c.name for c in CHECKS)


@dataclass(slots=True)
class TenantScan:
    tenant_id: uuid.UUID
    locked_out: bool = False
    examined: dict[str, int] = field(default_factory=dict)
    escalations: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    skipped: int = 0
    transitions: int = 0
    triggers: int = 0
    approvals: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.tenant_id),
            "locked_out": self.locked_out,
            "examined": dict(self.examined),
            "escalations": dict(self.escalations),
            "duplicates": self.duplicates,
            "action_skipped": self.skipped,
            "transitions": self.transitions,
            "workflow_triggers": self.triggers,
            "approvals": self.approvals,
        }


def advisory_key(tenant_id: uuid.UUID) -> int:
    """A signed 64-bit key for pg_try_advisory_xact_lock, one per tenant's scan."""
    digest = hashlib.blake2b(b"care-scan:" + tenant_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _after(check: Check, cursor: CareScanCursor | None) -> list[ColumnElement[bool]]:
    if cursor is None or cursor.position is None:
        return []
    column = check.time_column
    if cursor.last_id is None:  # everything before `position` is done
        return [column >= cursor.position]
    return [
        column >= cursor.position,
        or_(column > cursor.position, check.model.id > cursor.last_id),
    ]


def check_query(
    check: Check,
    settings: Settings,
    tenant_id: uuid.UUID,
    cutoff: datetime,
    cursor: CareScanCursor | None,
) -> Select[Any]:
    """The rows one check reads: past the cursor, before the cutoff, oldest first."""
    model = check.model
    return (
        select(model)
        .where(
            model.tenant_id == tenant_id,
            model.deleted_at.is_(None),
            check.time_column < cutoff,
            *_after(check, cursor),
            check.condition(settings),
        )
        .order_by(check.time_column, model.id)
        .limit(settings.CARE_SCAN_BATCH_SIZE)
    )


def _fingerprint(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")


def run_check(
    session: Session,
    settings: Settings,
    ctx: CareContext,
    check: Check,
    tenant_id: uuid.UUID,
    now: datetime,
    report: TenantScan,
) -> None:
    days = check.threshold_days(settings)
    cutoff = now - timedelta(days=days)
    cursor = session.get(CareScanCursor, (tenant_id, check.name))
    column = check.time_column
    query = check_query(check, settings, tenant_id, cutoff, cursor)
    rows: Sequence[Any] = session.scalars(query).all()
    report.examined[check.name] = len(rows)
    keyed = [
        (row, f"{check.name}:{row.id}:{_fingerprint(getattr(row, column.key))}") for row in rows
    ]
    # two queries for the whole batch (keys raised before, states), then no reads per row:
    # the batch's inserts go to the database in one flush at the end
    known = prefetch(
        session,
        tenant_id,
        keys=[key for _, key in keyed],
        entity_type=check.entity_type,
        entity_ids=[row.id for row in rows],
    )
    raised = 0
    with session.no_autoflush:
        for row, key in keyed:
            reason, meta = check.describe(row, now, days)
            anchor_type, anchor_id = check.anchor(row)
            situation = Situation(
                escalation=Escalation(True, check.name, reason, CONFIDENCE["high"], "high"),
                signal_entity_type=check.entity_type,
                signal_entity_id=row.id,
                entity_type=anchor_type,
                entity_id=anchor_id,
                origin=ORIGIN_AUTONOMOUS,
                dedupe_key=key,
                state_signal=check.state_signal,
                meta=meta,
            )
            outcome = handle_escalation(
                session, ctx, tenant_id=tenant_id, situation=situation, now=now, known=known
            )
            raised += int(outcome.escalated)
            report.duplicates += int(outcome.duplicate)
            report.skipped += int(outcome.skipped)
            report.transitions += int(outcome.transition is not None)
            report.triggers += len(outcome.event_ids)
            report.approvals += len(outcome.approval_ids)
    session.flush()  # before the next check reads states this one wrote
    report.escalations[check.name] = raised
    if cursor is None:
        cursor = CareScanCursor(tenant_id=tenant_id, check_name=check.name)
        session.add(cursor)
    if len(rows) == settings.CARE_SCAN_BATCH_SIZE:
        last = rows[-1]
        cursor.position, cursor.last_id = getattr(last, column.key), last.id
    else:  # everything older than the cutoff has been seen
        cursor.position, cursor.last_id = cutoff, None
    cursor.scanned_at = now


def scan_tenant(
    session: Session,
    settings: Settings,
    ctx: CareContext,
    tenant_id: uuid.UUID,
    *,
    now: datetime | None = None,
    dialect: str,
) -> TenantScan:
    """Runs every check for one tenant in the caller's transaction."""
    now = now or utcnow()
    report = TenantScan(tenant_id)
    if dialect == "postgresql":
        got = session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": advisory_key(tenant_id)}
        )
        if not got:
            report.locked_out = True
            return report
    for check in CHECKS:
        run_check(session, settings, ctx, check, tenant_id, now, report)
    return report
