"""`CareView`: the C.A.R.E. dashboard (guide chapter 13) for administrators and managers.

Charts and the audit log read the replica: audit entries and states arrive by the normal
pull (read-only, admins and managers only), rollup tables kept by triggers answer the charts
with a few hundred rows however many entries there are, and the audit log pages by keyset.
When a pull brings C.A.R.E. rows the charts update on a coalescing timer (items created
once, `setData`/`setOpts` only).  The status (kill switch, policy mode, tenant pause), the
approval queue and the trigger deliveries are online: read from and acted on through the
API.  Acting (pause, approve, reject, replay) is for administrators; managers see the same
dashboard read-only; offline the actions are disabled and say why.  Replica reads run in a
worker thread, API calls on the event loop: the GUI thread never waits."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtCore import QDate, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.client.errors import ApiError
from aisha_desktop.dialogs.common import BANNER_ERROR, BANNER_OK, banner, describe, show_banner
from aisha_desktop.models.care import (
    EVENT_LABELS,
    Approval,
    ApprovalsModel,
    AuditModel,
    DeliveriesModel,
    Delivery,
    RowsModel,
)
from aisha_desktop.models.wording import counted
from aisha_desktop.replica import Replica
from aisha_desktop.replica.care import (
    AUDIT,
    EVENT_TYPES,
    STATES,
    AuditFilters,
    CareSummary,
)
from aisha_desktop.sync.engine import SyncEngine, SyncState
from aisha_desktop.views.tasks import TaskKeeper

log = logging.getLogger("aisha.desktop.care")

ADMIN_ROLES = frozenset({"superadmin", "admin"})
READER_ROLES = frozenset({"superadmin", "admin", "manager"})  # the API's C.A.R.E. readers
CARE_ENTITIES = frozenset({AUDIT, STATES})
PAGE = 200
DELIVERIES = 200  # the API's largest page
DAYS = 30
OFFLINE = ("offline", "signed_out")
ALLOWED_COLOR, BLOCKED_COLOR = "#2e7d32", "#b3261e"
STATE_COLORS = {
    "cold": "#5b8def", "warm": "#f2a93b", "hot": "#e8590c", "nurture": "#37b24d",
    "stale": "#868e96", "won": "#2b8a3e", "lost": "#c92a2a",
}  # fmt: skip
OK_STYLE = "color: #2e7d32; font-weight: 600;"
WARN_STYLE = "color: #b26a00; font-weight: 600;"
BAD_STYLE = "color: #b3261e; font-weight: 600;"


def utc_today() -> date:
    return datetime.now(UTC).date()


def day_ticks(days: tuple[date, ...], every: int = 7) -> list[tuple[float, str]]:
    """Bottom axis labels: the last day and every `every`th before it."""
    last = len(days) - 1
    return [(float(i), days[i].strftime("%b %d")) for i in range(last, -1, -every)][::-1]


def _plot(charts: Any, title: str, row: int, column: int, columns: int = 1) -> Any:
    """A chart in the dashboard's one graphics view (one view paints all five: a view per
    chart cost a first render ~100 ms more)."""
    plot = charts.addPlot(row=row, col=column, colspan=columns, title=title)
    plot.showGrid(x=False, y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.getAxis("left").enableAutoSIPrefix(False)
    return plot


class CareView(QWidget):
    def __init__(
        self,
        replica: Replica,
        engine: SyncEngine,
        *,
        role: str,
        tenant_id: str | None,
        today: Callable[[], date] = utc_today,
        refresh_ms: int = 250,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.replica = replica
        self.engine = engine
        self.api: ApiClient = engine.api
        self.role = role
        self.tenant_id = tenant_id
        self.today = today
        self.can_act = role in ADMIN_ROLES
        self.tasks = TaskKeeper(self._task_failed)
        self.summary: CareSummary | None = None
        self.status: dict[str, Any] = {}
        self._offline_reason: str | None = None
        self._charts_running = False
        self._charts_dirty = False
        self._audit_generation = 0  # a newer audit query makes older answers stale
        self._audit_more = False
        self._audit_reads = 0  # audit queries running in worker threads
        self._closed = False

        self.error = banner()
        self.notice = banner()
        self.refresh_timer = QTimer(self)  # coalesces bursts of pulled pages into one redraw
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(refresh_ms)
        self.refresh_timer.timeout.connect(self._changed_now)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("C.A.R.E. — autonomous relationship management")
        title.setStyleSheet("font-size: 17px; font-weight: 600;")
        layout.addWidget(title)
        layout.addWidget(self._status_box())
        layout.addWidget(self.error)
        layout.addWidget(self.notice)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._overview_tab(), "Overview")
        self.tabs.addTab(self._audit_tab(), "Audit log")
        self.tabs.addTab(self._approvals_tab(), "Approvals")
        self.tabs.addTab(self._deliveries_tab(), "Trigger deliveries")
        self.tabs.currentChanged.connect(self._tab_shown)
        layout.addWidget(self.tabs, 1)
        self.connection_changed(engine.state)

    # -- building ------------------------------------------------------------------------
    def _status_box(self) -> QGroupBox:
        box = QGroupBox("Status")
        row = QHBoxLayout(box)
        self.status_labels: dict[str, QLabel] = {}
        for key, caption in (
            ("enabled", "Kill switch"),
            ("policy_mode", "Policy mode"),
            ("tenant", "This tenant"),
            ("pending", "Pending approvals"),
            ("last_scan", "Last scan"),
        ):
            cell = QVBoxLayout()
            head = QLabel(caption)
            head.setStyleSheet("color: #5f6b7a; font-size: 11px;")
            value = QLabel("…")
            value.setObjectName(f"care_{key}")
            self.status_labels[key] = value
            cell.addWidget(head)
            cell.addWidget(value)
            row.addLayout(cell)
        row.addStretch(1)
        self.pause_reason = QLineEdit()
        self.pause_reason.setPlaceholderText("Reason (optional)")
        self.pause_reason.setMaximumWidth(220)
        self.pause_button = QPushButton("Pause C.A.R.E.")
        self.pause_button.clicked.connect(lambda: self.tasks.spawn(self.toggle_pause()))
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_all)
        row.addWidget(self.pause_reason)
        row.addWidget(self.pause_button)
        row.addWidget(self.refresh_button)
        return box

    def _overview_tab(self) -> QWidget:
        page = QWidget()
        grid = QGridLayout(page)
        pg.setConfigOptions(antialias=True, background="w", foreground="#333333")
        days = self.today()
        xs = list(range(DAYS))
        zeros = [0] * DAYS

        self.charts = pg.GraphicsLayoutWidget()
        self.charts.setMinimumHeight(420)
        self.charts.ci.setSpacing(12)
        self.escalation_plot = _plot(
            self.charts, f"Escalations per day (last {DAYS} days, UTC)", 0, 0
        )
        self.escalation_bars = self.escalation_plot.plot(
            [x - 0.5 for x in range(DAYS + 1)], zeros, stepMode="center", fillLevel=0,
            brush=pg.mkBrush("#e8590c88"), pen=pg.mkPen("#e8590c", width=1.5),
        )  # fmt: skip
        self.decision_plot = _plot(self.charts, "Policy decisions per day", 0, 1)
        self.decision_plot.addLegend(offset=(8, 4))
        self.allowed_curve = self.decision_plot.plot(
            xs, zeros, pen=pg.mkPen(ALLOWED_COLOR, width=2), name="allowed"
        )
        self.blocked_curve = self.decision_plot.plot(
            xs, zeros, pen=pg.mkPen(BLOCKED_COLOR, width=2), name="blocked"
        )
        self.transition_plot = _plot(self.charts, "State transitions per day", 0, 2)
        self.transition_curve = self.transition_plot.plot(
            xs, zeros, pen=pg.mkPen("#1a5fb4", width=2), fillLevel=0,
            brush=pg.mkBrush("#1a5fb433"),
        )  # fmt: skip
        self.trigger_plot = _plot(self.charts, f"Top escalation triggers ({DAYS} days)", 1, 0, 2)
        self.trigger_bars = pg.BarGraphItem(
            x0=[], y=[], width=[], height=0.6, brush=pg.mkBrush("#7048e8")
        )
        self.trigger_plot.addItem(self.trigger_bars)
        self.trigger_plot.invertY(True)  # the most frequent on top
        self.state_plot = _plot(self.charts, "Records by C.A.R.E. state", 1, 2)
        self.state_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brushes=[])
        self.state_plot.addItem(self.state_bars)
        for plot in (self.escalation_plot, self.decision_plot, self.transition_plot):
            plot.setXRange(-0.5, DAYS - 0.5, padding=0.02)
            plot.setLimits(yMin=0)
            # the last day's label sits at the right edge: room for it, drawn not dropped
            plot.getAxis("bottom").setStyle(hideOverlappingLabels=False)
            plot.layout.setContentsMargins(2, 2, 22, 2)
        self.state_plot.setLimits(yMin=0)
        self.trigger_plot.setLimits(xMin=0)
        self._set_day_axes(tuple(days - timedelta(days=DAYS - 1 - i) for i in range(DAYS)))
        self.totals_label = QLabel("Reading the replica…")
        self.totals_label.setStyleSheet("color: #5f6b7a;")
        self.totals_label.setWordWrap(True)

        grid.addWidget(self.charts, 0, 0)
        grid.addWidget(self.totals_label, 1, 0)
        return page

    def _set_day_axes(self, days: tuple[date, ...]) -> None:
        ticks = [day_ticks(days)]
        for plot in (self.escalation_plot, self.decision_plot, self.transition_plot):
            plot.getAxis("bottom").setTicks(ticks)

    def _table(self, model: RowsModel[Any]) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setAlternatingRowColors(True)
        view.verticalHeader().hide()
        view.verticalHeader().setDefaultSectionSize(24)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        return view

    def _audit_tab(self) -> QWidget:
        page = self.audit_page = QWidget()
        layout = QVBoxLayout(page)
        filters = QHBoxLayout()
        self.event_filter = QComboBox()
        self.event_filter.addItem("All events", None)
        for event in EVENT_TYPES:
            self.event_filter.addItem(EVENT_LABELS[event], event)
        self.entity_filter = QComboBox()
        self.entity_filter.addItem("All entities", None)
        for entity in ("lead", "contact", "account", "opportunity", "tenant"):
            self.entity_filter.addItem(entity, entity)
        self.origin_filter = QComboBox()
        self.origin_filter.addItem("Any origin", None)
        self.origin_filter.addItem("human", "human")
        self.origin_filter.addItem("care_autonomous", "care_autonomous")
        self.range_filter = QCheckBox("From")
        self.since_edit = QDateEdit()
        self.until_edit = QDateEdit()
        today = self.today()
        self.since_edit.setDate(QDate(today.year, today.month, today.day).addDays(-7))
        self.until_edit.setDate(QDate(today.year, today.month, today.day))
        for edit in (self.since_edit, self.until_edit):
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setCalendarPopup(True)
            edit.setEnabled(False)
        self.text_filter = QLineEdit()
        self.text_filter.setPlaceholderText("Reason, trigger or entity id…")
        self.text_filter.setClearButtonEnabled(True)
        self.filter_timer = QTimer(self)  # typing: one query when the user pauses
        self.filter_timer.setSingleShot(True)
        self.filter_timer.setInterval(250)
        self.filter_timer.timeout.connect(self.reload_audit)
        for combo in (self.event_filter, self.entity_filter, self.origin_filter):
            combo.currentIndexChanged.connect(self.reload_audit)
        self.range_filter.toggled.connect(self._range_toggled)
        self.since_edit.dateChanged.connect(self.reload_audit)
        self.until_edit.dateChanged.connect(self.reload_audit)
        self.text_filter.textChanged.connect(lambda _text: self.filter_timer.start())
        filters.addWidget(self.event_filter)
        filters.addWidget(self.entity_filter)
        filters.addWidget(self.origin_filter)
        filters.addWidget(self.range_filter)
        filters.addWidget(self.since_edit)
        filters.addWidget(QLabel("to"))
        filters.addWidget(self.until_edit)
        filters.addWidget(self.text_filter, 1)
        self.audit_model = AuditModel(self)
        self.audit_table = self._table(self.audit_model)
        for column, width in enumerate((150, 140, 160, 120, 140)):
            self.audit_table.setColumnWidth(column, width)
        self.audit_table.verticalScrollBar().valueChanged.connect(self._audit_scrolled)
        self.audit_more_button = QPushButton("Load more")
        self.audit_more_button.clicked.connect(self.load_more_audit)
        self.audit_more_button.setEnabled(False)
        self.audit_label = QLabel("")
        self.audit_label.setStyleSheet("color: #5f6b7a;")
        footer = QHBoxLayout()
        footer.addWidget(self.audit_label, 1)
        footer.addWidget(self.audit_more_button)
        layout.addLayout(filters)
        layout.addWidget(self.audit_table, 1)
        layout.addLayout(footer)
        return page

    def _approvals_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.approvals_model = ApprovalsModel(self)
        self.approvals_table = self._table(self.approvals_model)
        for column, width in enumerate((150, 140, 160, 130)):
            self.approvals_table.setColumnWidth(column, width)
        self.approvals_table.selectionModel().selectionChanged.connect(self._update_actions)
        self.decision_note = QLineEdit()
        self.decision_note.setPlaceholderText("Reason for the decision (recorded in the audit)")
        self.decision_note.setMaxLength(1000)
        self.approve_button = QPushButton("Approve")
        self.reject_button = QPushButton("Reject")
        self.approve_button.clicked.connect(lambda: self.tasks.spawn(self.decide(approve=True)))
        self.reject_button.clicked.connect(lambda: self.tasks.spawn(self.decide(approve=False)))
        self.approvals_label = QLabel("")
        self.approvals_label.setStyleSheet("color: #5f6b7a;")
        actions = QHBoxLayout()
        actions.addWidget(self.decision_note, 1)
        actions.addWidget(self.approve_button)
        actions.addWidget(self.reject_button)
        layout.addWidget(self.approvals_table, 1)
        layout.addLayout(actions)
        layout.addWidget(self.approvals_label)
        return page

    def _deliveries_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        top = QHBoxLayout()
        self.delivery_filter = QComboBox()
        for text, value in (("All deliveries", None), ("Pending", "pending"),
                            ("Delivered", "delivered"), ("Failed", "failed")):  # fmt: skip
            self.delivery_filter.addItem(text, value)
        self.delivery_filter.currentIndexChanged.connect(
            lambda _i: self.tasks.spawn(self.load_deliveries())
        )
        self.worker_label = QLabel("")
        self.worker_label.setWordWrap(True)
        top.addWidget(self.delivery_filter)
        top.addWidget(self.worker_label, 1)
        self.deliveries_model = DeliveriesModel(self)
        self.deliveries_table = self._table(self.deliveries_model)
        for column, width in enumerate((150, 140, 160, 120, 120, 140)):
            self.deliveries_table.setColumnWidth(column, width)
        self.deliveries_table.selectionModel().selectionChanged.connect(self._update_actions)
        self.replay_button = QPushButton("Replay")
        self.replay_button.clicked.connect(lambda: self.tasks.spawn(self.replay()))
        footer = QHBoxLayout()
        footer.addStretch(1)
        footer.addWidget(self.replay_button)
        layout.addLayout(top)
        layout.addWidget(self.deliveries_table, 1)
        layout.addLayout(footer)
        return page

    # -- errors and connection -------------------------------------------------------------
    def _task_failed(self, error: BaseException) -> None:
        self.show_error(describe(error))

    def show_error(self, text: str) -> None:
        if not self._closed:
            show_banner(self.error, text, BANNER_ERROR)

    def show_notice(self, text: str) -> None:
        if not self._closed:
            show_banner(self.notice, text, BANNER_OK)

    def connection_changed(self, state: SyncState) -> None:
        offline = state.status in OFFLINE
        self._offline_reason = (
            ("Offline: actions need the server" if state.status == "offline"
             else "Signed out: sign in to act")
            if offline else None
        )  # fmt: skip
        self._update_actions()

    def _why_not(self) -> str | None:
        """Why the actions are disabled now (None: they are not)."""
        if not self.can_act:
            return "Only administrators act on C.A.R.E.; managers see it read-only"
        return self._offline_reason

    def _update_actions(self, *_: object) -> None:
        reason = self._why_not()
        approval = self._selected(self.approvals_table, self.approvals_model)
        delivery = self._selected(self.deliveries_table, self.deliveries_model)
        for button, selected in (
            (self.pause_button, True),
            (self.approve_button, approval is not None),
            (self.reject_button, approval is not None),
            (self.replay_button, delivery is not None),
        ):
            button.setEnabled(reason is None and selected)
            button.setToolTip(reason or ("" if selected else "Select a row first"))
        self.pause_reason.setEnabled(reason is None)
        self.decision_note.setEnabled(reason is None)

    @staticmethod
    def _selected(table: QTableView, model: RowsModel[Any]) -> Any:
        rows = table.selectionModel().selectedRows()
        return model.row(rows[0].row()) if rows else None

    def _params(self, **extra: Any) -> dict[str, Any]:
        params = {k: v for k, v in extra.items() if v is not None}
        if self.tenant_id:
            params["tenant_id"] = self.tenant_id
        return params

    # -- refreshing --------------------------------------------------------------------------
    def _tab_shown(self, index: int) -> None:
        if self.tabs.widget(index) is self.audit_page and not self.audit_loaded:
            self.reload_audit()  # read on first view: the first render needs only the charts

    @property
    def audit_loaded(self) -> bool:
        return self._audit_generation > 0

    def refresh_all(self) -> None:
        """Charts (and the audit log once shown) from the replica; status, approvals and
        deliveries from the API."""
        show_banner(self.error, "")
        self.schedule_charts()
        if self.audit_loaded:
            self.reload_audit()
        self.tasks.spawn(self.load_status())
        self.tasks.spawn(self.load_approvals())
        self.tasks.spawn(self.load_deliveries())

    def entities_changed(self, entities: frozenset[str]) -> None:
        """A pull changed rows: C.A.R.E. ones redraw the charts (coalesced)."""
        if entities & CARE_ENTITIES and not self.refresh_timer.isActive():
            self.refresh_timer.start()

    def _changed_now(self) -> None:
        self.schedule_charts()
        # shown and not paged down: the new entries appear on top
        if self.audit_loaded and len(self.audit_model.rows) <= PAGE:
            self.reload_audit()

    def schedule_charts(self) -> None:
        if self._charts_running:
            self._charts_dirty = True  # once the running read is done
            return
        self._charts_running = True
        self.tasks.spawn(self._read_charts())

    async def _read_charts(self) -> None:
        try:
            while True:
                self._charts_dirty = False
                summary = await asyncio.to_thread(self.replica.care_summary, self.today(), DAYS)
                if self._closed:
                    return
                self.show_summary(summary)
                if not self._charts_dirty:
                    return
        finally:
            self._charts_running = False

    @property
    def charts_busy(self) -> bool:
        return self._charts_running or self.refresh_timer.isActive()

    def show_summary(self, summary: CareSummary) -> None:
        """Update the charts' existing items with `summary`."""
        self.summary = summary
        edges = [x - 0.5 for x in range(len(summary.days) + 1)]
        xs = list(range(len(summary.days)))
        per_day = summary.per_day
        self.escalation_bars.setData(edges, list(per_day["ESCALATION_DETECTED"]))
        self.allowed_curve.setData(xs, list(per_day["ACTION_ALLOWED"]))
        self.blocked_curve.setData(xs, list(per_day["ACTION_BLOCKED"]))
        self.transition_curve.setData(xs, list(per_day["STATE_TRANSITION"]))
        self._set_day_axes(summary.days)
        names = [name for name, _ in summary.triggers]
        counts = [n for _, n in summary.triggers]
        self.trigger_bars.setOpts(
            x0=[0] * len(counts), y=list(range(len(counts))), width=counts, height=0.6
        )
        self.trigger_plot.getAxis("left").setTicks([list(enumerate(names))])
        if counts:
            self.trigger_plot.setXRange(0, max(counts) * 1.08, padding=0)
            self.trigger_plot.setYRange(-0.6, len(counts) - 0.4, padding=0)
        states = [name for name, _ in summary.states]
        self.state_bars.setOpts(
            x=list(range(len(states))),
            height=[n for _, n in summary.states],
            width=0.6,
            brushes=[pg.mkBrush(STATE_COLORS.get(s, "#5f6b7a")) for s in states],
        )
        self.state_plot.getAxis("bottom").setTicks([list(enumerate(states))])
        self.state_plot.setXRange(-0.6, len(states) - 0.4, padding=0)
        allowed, blocked = summary.total("ACTION_ALLOWED"), summary.total("ACTION_BLOCKED")
        decided = allowed + blocked
        share = f" ({blocked / decided:.0%} blocked)" if decided else ""
        self.totals_label.setText(
            f"Last {len(summary.days)} days: {summary.total('ESCALATION_DETECTED'):,} "
            f"escalations, {allowed:,} actions allowed and {blocked:,} blocked{share}, "
            f"{summary.total('STATE_TRANSITION'):,} state transitions, "
            f"{summary.total('WORKFLOW_TRIGGERED'):,} workflow trigger attempts · "
            f"{summary.entries:,} audit entries in this replica · "
            f"{sum(n for _, n in summary.states):,} records with a C.A.R.E. state"
        )

    # -- audit log ---------------------------------------------------------------------------
    def _range_toggled(self, on: bool) -> None:
        self.since_edit.setEnabled(on)
        self.until_edit.setEnabled(on)
        self.reload_audit()

    def audit_filters(self) -> AuditFilters:
        since = until = None
        if self.range_filter.isChecked():
            start = self.since_edit.date().toPython()
            end = self.until_edit.date().toPython()
            assert isinstance(start, date) and isinstance(end, date)
            since = datetime.combine(start, time(), UTC)
            until = datetime.combine(end + timedelta(days=1), time(), UTC)  # the whole day
        return AuditFilters(
            event_type=self.event_filter.currentData(),
            entity_type=self.entity_filter.currentData(),
            action_origin=self.origin_filter.currentData(),
            since=since,
            until=until,
            text=self.text_filter.text(),
        )

    def reload_audit(self, *_: object) -> None:
        self._audit_generation += 1
        if self._audit_reads:  # a query for older filters (maybe a long text scan): stop it
            self.replica.care_interrupt()
        self.tasks.spawn(self._read_audit(self._audit_generation, more=False))

    def load_more_audit(self) -> None:
        if self._audit_more:
            self._audit_more = False  # one page at a time
            self.tasks.spawn(self._read_audit(self._audit_generation, more=True))

    def _audit_scrolled(self, value: int) -> None:
        bar = self.audit_table.verticalScrollBar()
        if value >= bar.maximum() - 2 and bar.maximum() > 0:
            self.load_more_audit()

    async def _read_audit(self, generation: int, *, more: bool) -> None:
        filters = self.audit_filters()
        last = self.audit_model.rows[-1] if more and self.audit_model.rows else None
        after = (last.created_at, last.id) if last is not None else None
        self._audit_reads += 1
        try:
            rows = await asyncio.to_thread(self.replica.care_audit, filters, PAGE + 1, after)
        except sqlite3.OperationalError:
            if generation != self._audit_generation:
                return  # interrupted: newer filters took over
            raise
        finally:
            self._audit_reads -= 1
        if generation != self._audit_generation or self._closed:
            return  # the filters changed meanwhile: a newer query answers
        self._audit_more = len(rows) > PAGE
        rows = rows[:PAGE]
        if more:
            self.audit_model.extend(rows)
        else:
            self.audit_model.replace(rows)
        shown = len(self.audit_model.rows)
        self.audit_more_button.setEnabled(self._audit_more)
        self.audit_label.setText(
            f"{shown:,} entr{'y' if shown == 1 else 'ies'} shown"
            + (" · more below" if self._audit_more else "")
        )

    @property
    def audit_generation(self) -> int:
        return self._audit_generation

    # -- online: status and pause ----------------------------------------------------------
    async def load_status(self) -> None:
        try:
            status = await self.api.request("GET", "/api/care/status", params=self._params())
        except Exception as exc:
            for label in self.status_labels.values():
                if label.text() == "…":
                    label.setText("unknown")
            self.show_error(f"C.A.R.E. status: {describe(exc)}")
            return
        if isinstance(status, Mapping):
            self.show_status(status)
            retention = status.get("audit_log_retention_days")
            if isinstance(retention, int) and retention > 0:
                # the server drops older entries without telling replicas: so do we
                before = datetime.now(UTC) - timedelta(days=retention)
                if await asyncio.to_thread(self.replica.care_prune, before):
                    self.schedule_charts()

    def show_status(self, status: Mapping[str, Any]) -> None:
        self.status = dict(status)
        labels = self.status_labels

        def put(key: str, text: str, style: str = "") -> None:
            labels[key].setText(text)
            labels[key].setStyleSheet(style)

        if status.get("enabled"):
            put("enabled", "ON — C.A.R.E. may act", OK_STYLE)
        else:
            put("enabled", "OFF — detection and audit only", WARN_STYLE)
        mode = str(status.get("policy_mode") or "?")
        put("policy_mode", mode, "" if mode == "strict" else WARN_STYLE)
        if status.get("tenant_paused"):
            reason = status.get("pause_reason")
            put("tenant", "PAUSED" + (f": {reason}" if reason else ""), BAD_STYLE)
            labels["tenant"].setToolTip(f"Paused at {status.get('paused_at')}")
        else:
            put("tenant", "acting" if status.get("acting") else "not paused", OK_STYLE)
            labels["tenant"].setToolTip("")
        pending = int(status.get("pending_approvals") or 0)
        put("pending", str(pending), WARN_STYLE if pending else "")
        worker = status.get("worker")
        last = worker.get("last_run_at") if isinstance(worker, Mapping) else None
        put("last_scan", str(last)[:19].replace("T", " ") + " UTC" if last else "never")
        self.pause_button.setText(
            "Resume C.A.R.E." if status.get("tenant_paused") else "Pause C.A.R.E."
        )

    async def toggle_pause(self) -> None:
        if self._why_not() is not None:
            return
        paused = not bool(self.status.get("tenant_paused"))
        body: dict[str, Any] = {"paused": paused}
        reason = self.pause_reason.text().strip()
        if reason and paused:
            body["reason"] = reason
        if self.tenant_id:
            body["tenant_id"] = self.tenant_id
        self.pause_button.setEnabled(False)
        try:
            status = await self.api.request("PUT", "/api/care/pause", json=body)
        except Exception as exc:
            self.show_error(f"{'Pausing' if paused else 'Resuming'} failed: {describe(exc)}")
            return
        finally:
            self._update_actions()
        show_banner(self.error, "")
        self.pause_reason.clear()
        if isinstance(status, Mapping):
            self.show_status(status)
        self.show_notice("C.A.R.E. paused for this tenant" if paused else "C.A.R.E. resumed")

    # -- online: approvals -------------------------------------------------------------------
    async def load_approvals(self) -> None:
        try:
            items = await self.api.request(
                "GET", "/api/care/approvals", params=self._params(status="pending", limit=500)
            )
        except Exception as exc:
            self.approvals_label.setText(f"Approvals could not be read: {describe(exc)}")
            return
        rows = [Approval.from_json(i) for i in items or [] if isinstance(i, Mapping)]
        self.approvals_model.replace(rows)
        self.approvals_label.setText(
            f"{counted(len(rows), 'action')} {'waits' if len(rows) == 1 else 'wait'} for a decision"
            if rows
            else "No action waits for a decision"
        )
        self._update_actions()

    async def decide(self, *, approve: bool) -> None:
        approval = self._selected(self.approvals_table, self.approvals_model)
        if approval is None or self._why_not() is not None:
            return
        verb = "approve" if approve else "reject"
        body: dict[str, Any] = {}
        note = self.decision_note.text().strip()
        if note:
            body["note"] = note
        if self.tenant_id:
            body["tenant_id"] = self.tenant_id
        for button in (self.approve_button, self.reject_button):
            button.setEnabled(False)
        try:
            await self.api.request("POST", f"/api/care/approvals/{approval.id}/{verb}", json=body)
        except Exception as exc:
            self.show_error(f"Could not {verb} the {approval.action_type}: {describe(exc)}")
            if isinstance(exc, ApiError) and exc.status in (404, 409):
                await self.load_approvals()  # decided or gone meanwhile: show the queue as is
            return
        finally:
            self._update_actions()
        show_banner(self.error, "")
        self.decision_note.clear()
        self.show_notice(f"{approval.action_type} {'approved' if approve else 'rejected'}")
        await self.load_approvals()
        await self.load_status()

    # -- online: trigger deliveries ------------------------------------------------------------
    async def load_deliveries(self) -> None:
        """The newest deliveries (the API's largest page) with the worker's state."""
        if not self.can_act:
            self.worker_label.setText("Trigger deliveries are shown to administrators.")
            return
        status = self.delivery_filter.currentData()
        try:
            counts = await self.api.request(
                "GET", "/api/care/triggers/status", params=self._params()
            )
            items = await self.api.request(
                "GET",
                "/api/care/triggers/deliveries",
                params=self._params(status=status, limit=DELIVERIES),
            )
        except Exception as exc:
            self.worker_label.setText(f"Deliveries could not be read: {describe(exc)}")
            self.worker_label.setStyleSheet(BAD_STYLE)
            return
        rows = [Delivery.from_json(i) for i in items or [] if isinstance(i, Mapping)]
        self.deliveries_model.replace(rows)
        self.show_worker(counts)
        if len(rows) == DELIVERIES:
            self.worker_label.setText(
                self.worker_label.text() + f" · newest {DELIVERIES} shown (filter by status)"
            )
        self._update_actions()

    def show_worker(self, data: Any) -> None:
        worker = data.get("worker") if isinstance(data, Mapping) else None
        counts = data.get("deliveries") if isinstance(data, Mapping) else None
        parts = []
        if isinstance(worker, Mapping):
            if worker.get("enabled"):
                parts.append(f"Sending to {worker.get('webhook_host') or '?'}")
            else:
                parts.append(f"Not sending: {worker.get('disabled_reason') or 'switched off'}")
        if isinstance(counts, Mapping):
            parts.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        self.worker_label.setText(" · ".join(p for p in parts if p))
        sending = isinstance(worker, Mapping) and worker.get("enabled")
        self.worker_label.setStyleSheet("" if sending else WARN_STYLE)

    async def replay(self) -> None:
        delivery = self._selected(self.deliveries_table, self.deliveries_model)
        if delivery is None or self._why_not() is not None:
            return
        self.replay_button.setEnabled(False)
        try:
            await self.api.request(
                "POST",
                f"/api/care/triggers/deliveries/{delivery.id}/replay",
                params=self._params(),
            )
        except Exception as exc:
            self.show_error(f"Replay failed: {describe(exc)}")
            return
        finally:
            self._update_actions()
        show_banner(self.error, "")
        self.show_notice(f"{delivery.trigger_type or 'Trigger'} queued to be sent again")
        await self.load_deliveries()

    # -- lifetime ----------------------------------------------------------------------------
    def close_view(self) -> None:
        self._closed = True
        self.refresh_timer.stop()
        self.filter_timer.stop()
        self.tasks.cancel()
        if self._audit_reads:
            self.replica.care_interrupt()


__all__ = ["ADMIN_ROLES", "READER_ROLES", "CareView", "day_ticks"]
