"""The C.A.R.E. dashboard: charts from the replica's rollups (items created once, updated
live as pulled entries arrive), the audit log's filters and keyset pages, the thin models,
and - against a real server (SQLite and PostgreSQL) - status, pause, the approval queue
(approve, reject, 409 when decided twice), trigger deliveries with replay, managers
read-only (a forged admin view gets the server's 403), employees without the dashboard,
offline actions disabled with the reason.  Renders docs/screenshots/care_dashboard.png."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from types import SimpleNamespace
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication

from aisha_desktop.dialogs.common import show_banner
from aisha_desktop.models.care import (
    Approval,
    ApprovalsModel,
    AuditModel,
    DeliveriesModel,
    Delivery,
)
from aisha_desktop.replica import Replica
from aisha_desktop.replica.care import AuditFilters
from aisha_desktop.sync.engine import SyncEngine, SyncState
from aisha_desktop.views.care import CareView, day_ticks
from aisha_desktop.views.main_window import MainWindow
from aisha_server import keys
from tests.desktop import care_data
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team
from tests.desktop.views.conftest import Desk
from tests.desktop.views.test_health import until
from tests.factories import make_user
from tests.server.test_care import ON, add_lead

live = sync_fixtures.live
team = sync_fixtures.team
SHOTS = screenshot_dir()
TODAY = datetime.now(UTC).date()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**ON, "CARE_WORKER_ENABLED": False}


def open_view(qtbot: Any, replica: Replica, engine: SyncEngine, **options: Any) -> CareView:
    view = CareView(replica, engine, **{"role": "admin", "tenant_id": None, "refresh_ms": 10,
                                        **options})  # fmt: skip
    qtbot.addWidget(view)
    view.resize(1280, 860)
    view.show()
    return view


async def charts_read(view: CareView) -> None:
    await until(lambda: view.summary is not None and not view.charts_busy, what="charts")


def select(view: CareView, table: Any, row: int) -> None:
    table.selectionModel().select(
        table.model().index(row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )


# -- the replica side (no server) ------------------------------------------------------------
async def test_charts_show_the_rollups_and_follow_new_entries(desk: Desk, qtbot: Any) -> None:
    rows = list(care_data.audit_entries(TODAY, 40, 30))
    care_data.apply(desk.replica, rows)
    care_data.apply(desk.replica, care_data.states(300), "care_states")
    view = open_view(qtbot, desk.replica, desk.engine, today=lambda: TODAY)
    bars, allowed, trigger_bars = view.escalation_bars, view.allowed_curve, view.trigger_bars
    view.schedule_charts()
    view.reload_audit()
    await charts_read(view)

    def per_day(event: str) -> list[int]:
        counts = [0] * 30
        for r in rows:
            day = datetime.fromisoformat(r["created_at"]).date()
            back = (TODAY - day).days
            if r["event_type"] == event and 0 <= back < 30:
                counts[29 - back] += 1
        return counts

    xs, ys = view.escalation_bars.getData()
    assert len(xs) == 31 and list(ys) == per_day("ESCALATION_DETECTED")
    assert list(view.allowed_curve.getData()[1]) == per_day("ACTION_ALLOWED")
    assert list(view.blocked_curve.getData()[1]) == per_day("ACTION_BLOCKED")
    assert list(view.transition_curve.getData()[1]) == per_day("STATE_TRANSITION")
    widths = list(view.trigger_bars.opts["width"])
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    assert sum(view.state_bars.opts["height"]) == 300
    assert f"{len(rows):,} audit entries in this replica" in view.totals_label.text()
    await until(lambda: len(view.audit_model.rows) == 200, what="first audit page")
    assert view.audit_more_button.isEnabled()

    # new entries arrive by sync: the same items show them
    today_before = view.escalation_bars.getData()[1][-1]
    fresh = [
        {
            **r,
            "id": f"00000000-0000-4000-8000-{n:012d}",
            # later than every generated entry of TODAY (they end by 23:53), whatever the
            # time of day the test runs
            "created_at": (
                datetime.combine(TODAY, dtime(23, 59, 50), UTC) + timedelta(milliseconds=n)
            ).isoformat(),
        }
        for n, r in enumerate(rows[:40])
        if r["event_type"] == "ESCALATION_DETECTED"
    ]
    care_data.apply(desk.replica, fresh)
    for _ in range(5):  # a burst of pages: one redraw
        view.entities_changed(frozenset({"care_audit_log"}))
    await until(lambda: view.escalation_bars.getData()[1][-1] == today_before + len(fresh))
    await charts_read(view)
    assert view.escalation_bars is bars and view.allowed_curve is allowed
    assert view.trigger_bars is trigger_bars
    assert view.audit_model.rows[0].id in {f["id"] for f in fresh}  # the table shows them
    view.entities_changed(frozenset({"contacts"}))  # not C.A.R.E.: nothing to redraw
    assert not view.refresh_timer.isActive()
    view.close_view()


async def test_audit_filters_and_paging(desk: Desk, qtbot: Any) -> None:
    rows = list(care_data.audit_entries(TODAY, 10, 60))
    care_data.apply(desk.replica, rows)
    view = open_view(qtbot, desk.replica, desk.engine, today=lambda: TODAY)
    view.reload_audit()
    await until(lambda: len(view.audit_model.rows) == 200)
    view.load_more_audit()
    await until(lambda: len(view.audit_model.rows) == 400, what="second page")
    ids = [e.id for e in view.audit_model.rows]
    assert len(set(ids)) == 400
    stamps = [(e.created_at, e.id) for e in view.audit_model.rows]
    assert stamps == sorted(stamps, reverse=True)

    view.event_filter.setCurrentIndex(view.event_filter.findData("ACTION_BLOCKED"))
    await until(lambda: all(e.event_type == "ACTION_BLOCKED" for e in view.audit_model.rows))
    blocked = sum(1 for r in rows if r["event_type"] == "ACTION_BLOCKED")
    await until(lambda: len(view.audit_model.rows) == min(200, blocked))
    view.origin_filter.setCurrentIndex(view.origin_filter.findData("human"))
    view.entity_filter.setCurrentIndex(view.entity_filter.findData("contact"))
    expected = {
        r["id"] for r in rows if r["event_type"] == "ACTION_BLOCKED"
        and r["action_origin"] == "human" and r["entity_type"] == "contact"
    }  # fmt: skip
    await until(lambda: {e.id for e in view.audit_model.rows} == expected, what="3 filters")
    view.event_filter.setCurrentIndex(0)
    view.origin_filter.setCurrentIndex(0)
    view.entity_filter.setCurrentIndex(0)
    day = TODAY - timedelta(days=3)
    view.since_edit.setDate(day)
    view.until_edit.setDate(day)
    view.range_filter.setChecked(True)
    one_day = {r["id"] for r in rows if datetime.fromisoformat(r["created_at"]).date() == day}
    await until(lambda: {e.id for e in view.audit_model.rows} == one_day, what="one day")
    view.range_filter.setChecked(False)
    view.text_filter.setText("OBJECTION")  # the trigger type, case-insensitive
    await until(
        lambda: (
            bool(view.audit_model.rows)
            and all(e.trigger_type == "objection" for e in view.audit_model.rows)
        ),
        what="text filter",
    )
    view.text_filter.setText("no such % thing")
    await until(lambda: view.audit_model.rows == [], what="nothing found")
    assert view.audit_label.text() == "0 entries shown"
    assert desk.replica.care_audit(AuditFilters(text="no such"), 5) == []
    view.close_view()


def test_models_pass_the_model_tester(qtmodeltester: Any, desk: Desk) -> None:
    rows = list(care_data.audit_entries(TODAY, 2, 5))
    care_data.apply(desk.replica, rows)
    audit = AuditModel()
    audit.replace(desk.replica.care_audit(AuditFilters(), 3))
    audit.extend(desk.replica.care_audit(AuditFilters(), 50)[3:])
    qtmodeltester.check(audit)
    assert audit.rowCount() == len(rows)
    assert audit.data(audit.index(0, 1)) in {
        "Escalation detected", "Action allowed", "Action blocked", "State transition",
        "Workflow triggered",
    }  # fmt: skip
    assert audit.data(audit.index(0, 2), Qt.ItemDataRole.ToolTipRole) == audit.rows[0].entity_id
    approvals = ApprovalsModel()
    approvals.replace(
        [Approval.from_json({"id": "a", "action_type": "trigger_workflow", "created_at":
                             "2026-11-20T10:00:00+00:00", "reason": "ask"}), Approval.from_json({})]
    )  # fmt: skip
    qtmodeltester.check(approvals)
    assert approvals.data(approvals.index(0, 0)) == "2026-11-20 10:00:00"
    deliveries = DeliveriesModel()
    deliveries.replace(
        [Delivery.from_json({"id": "d", "status": "failed", "attempts": 3, "replays": 1,
                             "last_http_status": 503}), Delivery.from_json({"in_flight": True})]
    )  # fmt: skip
    qtmodeltester.check(deliveries)
    assert deliveries.data(deliveries.index(0, 5)) == "HTTP 503"
    assert deliveries.data(deliveries.index(0, 4)) == "3 · 1 replay"
    assert deliveries.data(deliveries.index(1, 3)) == " (sending)"
    assert (
        audit.data(audit.index(99, 0)) is None
        and audit.headerData(9, Qt.Orientation.Horizontal) is None
    )


async def test_offline_and_read_only_actions_say_why(desk: Desk, qtbot: Any) -> None:
    view = open_view(qtbot, desk.replica, desk.engine)
    view.refresh_all()  # the desk's server does not answer: shown, not raised
    await until(lambda: "C.A.R.E. status:" in view.error.text(), what="status failure shown")
    assert view.status_labels["enabled"].text() == "unknown"
    assert view.pause_button.isEnabled()
    view.connection_changed(SyncState(status="offline"))
    assert not view.pause_button.isEnabled()
    assert view.pause_button.toolTip().startswith("Offline")
    assert not view.pause_reason.isEnabled()
    view.connection_changed(SyncState(status="online"))
    assert view.pause_button.isEnabled()
    manager = open_view(qtbot, desk.replica, desk.engine, role="manager")
    assert not manager.pause_button.isEnabled() and not manager.approve_button.isEnabled()
    assert "Only administrators" in manager.pause_button.toolTip()
    await manager.load_deliveries()  # managers are not shown deliveries (the API refuses)
    assert "administrators" in manager.worker_label.text()
    view.close_view()
    manager.close_view()


# -- against a real server ---------------------------------------------------------------------
async def deferred_approvals(live: Live, team: Team, count: int) -> None:
    """A tenant rule defers autonomous workflow triggers; a scan queues `count` of them."""
    admin = await live.api(team.admin, direct=True)
    rule = {"action_type": "trigger_workflow", "result": "defer", "reason": "ask first",
            "action_origin": "care_autonomous"}  # fmt: skip
    await admin.request("POST", "/api/care/rules", json=rule)
    now = datetime.now(UTC)
    for _ in range(count):
        await add_lead(live.app, team.tenant_id, updated_at=now - timedelta(days=9))
    await live.app[keys.CARE_SERVICE].scan(now=now)


async def main_window(live: Live, user: Any, qtbot: Any) -> tuple[MainWindow, SyncEngine]:
    engine = await live.engine(user)
    me = await engine.api.me()
    desk = Desk(engine.replica, engine, engine.api, server_url=live.proxy.url, me=me)
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.resize(1320, 900)
    win.show()
    return win, engine


async def test_admin_dashboard_against_the_server(live: Live, team: Team, qtbot: Any) -> None:
    await deferred_approvals(live, team, 3)
    win, engine = await main_window(live, team.admin, qtbot)
    await engine.sync_now()  # the scan's audit entries arrive by the normal pull
    palette = win.open_palette()
    palette.query.setText("care")
    assert palette.visible_names() == ["C.A.R.E. dashboard"]
    palette.run_current()
    view = win.care_view
    assert view is not None and win.stack.currentWidget() is view
    await until(lambda: view.status_labels["enabled"].text().startswith("ON"), what="status")
    assert not view.audit_loaded  # read when its tab is first shown
    await charts_read(view)
    assert view.summary is not None and view.summary.entries == 6  # 3 x detected, deferred
    view.tabs.setCurrentWidget(view.audit_page)
    await until(lambda: len(view.audit_model.rows) == 6, what="audit log")
    view.tabs.setCurrentIndex(0)
    assert view.status_labels["policy_mode"].text() == "strict"
    assert view.status_labels["pending"].text() == "3"
    await until(lambda: len(view.approvals_model.rows) == 3, what="approvals")
    await charts_read(view)
    assert view.summary is not None and view.summary.total("ESCALATION_DETECTED") == 3
    assert view.summary.total("ACTION_BLOCKED") == 3  # deferred = blocked for now
    assert list(view.trigger_bars.opts["width"]) == [3]

    # approve one with a reason; approving it again (a stale list) is the server's 409
    stale = list(view.approvals_model.rows)
    select(view, view.approvals_table, 0)
    assert view.approve_button.isEnabled()
    first = stale[0]
    view.decision_note.setText("checked with the account owner")
    view.approve_button.click()
    await until(lambda: len(view.approvals_model.rows) == 2, what="approved")
    assert "approved" in view.notice.text() and not view.error.isVisible()
    assert view.decision_note.text() == ""
    view.approvals_model.replace(stale)
    select(view, view.approvals_table, 0)
    view.approve_button.click()
    await until(lambda: view.error.isVisible(), what="409 shown")
    assert "already approved" in view.error.text()
    await until(lambda: len(view.approvals_model.rows) == 2, what="queue reloaded")
    assert first.id not in {a.id for a in view.approvals_model.rows}
    select(view, view.approvals_table, 0)
    view.reject_button.click()
    await until(lambda: len(view.approvals_model.rows) == 1, what="rejected")

    # the approved trigger is a delivery (the receiver is down): replay it
    await view.load_deliveries()
    assert len(view.deliveries_model.rows) == 1
    assert view.deliveries_model.rows[0].trigger_type == "lead_stagnant"
    for _ in range(20):  # the server's worker tries it too: not while an attempt runs (409)
        show_banner(view.error, "")
        select(view, view.deliveries_table, 0)
        view.replay_button.click()
        await until(lambda: "queued" in view.notice.text() or view.error.isVisible())
        if not view.error.isVisible():
            break
        assert "being delivered right now" in view.error.text()
        await asyncio.sleep(0.1)
        await view.load_deliveries()
    await until(lambda: "queued to be sent again" in view.notice.text(), what="replayed")
    await until(lambda: view.deliveries_model.rows and view.deliveries_model.rows[0].replays == 1)

    # pause with a reason; the audit entry syncs and the charts follow
    allowed_before = view.summary.total("ACTION_ALLOWED")
    view.pause_reason.setText("quarterly review")
    view.pause_button.click()
    await until(lambda: view.status_labels["tenant"].text() == "PAUSED: quarterly review")
    assert view.pause_button.text() == "Resume C.A.R.E."
    await engine.sync_now()
    await until(lambda: view.summary is not None
                and view.summary.total("ACTION_ALLOWED") > allowed_before + 1, what="live")  # fmt: skip
    await until(lambda: any(e.entity_type == "tenant" for e in view.audit_model.rows))
    view.pause_button.click()
    await until(lambda: view.status_labels["tenant"].text() == "acting", what="resumed")
    win.close()


async def test_managers_read_and_employees_do_not_see_it(
    live: Live, team: Team, qtbot: Any
) -> None:
    manager = await make_user(live.app, role="manager", tenant_id=team.tenant_id, department="A")
    await deferred_approvals(live, team, 1)
    win, engine = await main_window(live, manager, qtbot)
    await engine.sync_now()
    view = win.open_care()
    await until(lambda: len(view.approvals_model.rows) == 1, what="approvals read")
    await charts_read(view)
    assert view.summary is not None and view.summary.total("ESCALATION_DETECTED") == 1
    select(view, view.approvals_table, 0)
    assert not view.approve_button.isEnabled() and not view.pause_button.isEnabled()
    # a view that believes the manager is an admin: the server still says no
    forged = open_view(qtbot, engine.replica, engine, role="admin")
    forged.status = {"tenant_paused": False}
    await forged.toggle_pause()
    assert "Only administrators" in forged.error.text()
    forged.approvals_model.replace(list(view.approvals_model.rows))
    select(forged, forged.approvals_table, 0)
    await forged.decide(approve=True)
    assert "Only administrators" in forged.error.text()
    forged.close_view()
    win.close()

    employee_win, employee_engine = await main_window(live, team.employee, qtbot)
    await employee_engine.sync_now()
    names = [c.name for c in employee_win.commands]
    assert "C.A.R.E. dashboard" not in names
    items = [employee_win.navigation.item(i).text() for i in range(employee_win.navigation.count())]
    assert "C.A.R.E." not in items
    assert employee_engine.replica.care_summary(TODAY).entries == 0  # never received
    employee_win.close()


async def test_render_dashboard(live: Live, team: Team, qtbot: Any) -> None:
    await deferred_approvals(live, team, 4)
    win, engine = await main_window(live, team.admin, qtbot)
    await engine.sync_now()
    # two months of a busy tenant's history besides what the server wrote
    care_data.apply(engine.replica, list(care_data.audit_entries(TODAY, 60, 160)))
    care_data.apply(engine.replica, care_data.states(2400), "care_states")
    view = win.open_care()
    await until(lambda: len(view.approvals_model.rows) == 4, what="approvals")
    await until(lambda: view.status_labels["enabled"].text().startswith("ON"))
    await charts_read(view)
    QApplication.processEvents()
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "care_dashboard.png"
    assert win.grab().save(str(path))
    assert path.stat().st_size > 30_000
    view.tabs.setCurrentIndex(1)
    await until(lambda: len(view.audit_model.rows) == 200)
    view.event_filter.setCurrentIndex(view.event_filter.findData("ACTION_BLOCKED"))
    await until(lambda: all(e.event_type == "ACTION_BLOCKED" for e in view.audit_model.rows))
    QApplication.processEvents()
    assert win.grab().save(str(SHOTS / "care_audit.png"))
    view.tabs.setCurrentIndex(2)
    QApplication.processEvents()
    assert win.grab().save(str(SHOTS / "care_approvals.png"))
    win.close()


def test_day_ticks_label_the_last_day() -> None:
    days = tuple(date(2026, 11, 1) + timedelta(days=i) for i in range(30))
    ticks = day_ticks(days)
    assert ticks[-1] == (29.0, "Nov 30") and ticks[0] == (1.0, "Nov 02")


async def test_record_commands_on_the_dashboard_go_to_the_last_entity_view(
    desk: Desk, qtbot: Any
) -> None:
    desk.me = SimpleNamespace(role="manager", user=None, tenant=None, tenant_id="t1")
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    leads = win.open_entity("leads")
    view = win.open_care()
    assert win.stack.currentWidget() is view and not view.can_act
    assert win.navigation.currentItem().text() == "C.A.R.E."
    assert win.current_view is leads and win.stack.currentWidget() is leads
    win.close()
