"""Deleted records of one entity, and restoring them.

A delete is soft: the server keeps the record with its `deleted_at` and the replica drops it,
so this dialog reads from the server (`GET /api/<entity>?deleted=true`, newest deletion
first, the operator's data scope applying as on the list).  The operator searches, pages on,
looks at a record's fields and restores the chosen ones (`POST .../restore`, one by one, each
reported); restored records come back to the list with the next sync.  Online only: offline
it says so and keeps nothing half-done."""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ClientError
from aisha_desktop.dialogs.common import (
    BANNER_ERROR,
    BANNER_OK,
    Busy,
    banner,
    describe,
    show_banner,
)
from aisha_desktop.models.fields import FIELDS, column_title, display_name
from aisha_desktop.models.record_table import cell_text
from aisha_desktop.models.wording import counted

PAGE_SIZE = 100
# the second column: what tells records of the same name apart
DETAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts": ("industry", "city", "website"),
    "contacts": ("email", "company", "phone"),
    "leads": ("company", "email", "phone"),
    "opportunities": ("stage", "amount", "close_date"),
    "activities": ("type", "due_date", "status"),
    "notes": ("content",),
}
DETAIL_LENGTH = 80
IdRole = Qt.ItemDataRole.UserRole + 1


def detail_text(entity: str, data: Mapping[str, Any]) -> str:
    """The first of the entity's telling fields that has a value, shortened."""
    for name in DETAIL_FIELDS.get(entity, ()):
        text = " ".join(cell_text(data.get(name)).split())
        if text:
            return text if len(text) <= DETAIL_LENGTH else text[: DETAIL_LENGTH - 1] + "…"
    return ""


def record_summary(entity: str, data: Mapping[str, Any]) -> str:
    """The record's non-empty fields as rich text (label: value), for looking before
    restoring."""
    lines = []
    for spec in FIELDS.get(entity, ()):
        text = cell_text(data.get(spec.name))
        if text:
            lines.append(f"<b>{html.escape(spec.label)}:</b> {html.escape(text)}")
    for name in ("deleted_at", "updated_at", "created_at"):
        text = cell_text(data.get(name))
        if text:
            lines.append(f"<b>{html.escape(column_title(name))}:</b> {html.escape(text)} UTC")
    return "<br>".join(lines)


class DeletedRecordsDialog(QDialog):
    def __init__(
        self,
        api: ApiClient,
        entity: str,
        labels: tuple[str, str],
        parent: QWidget | None = None,
        *,
        on_restored: Callable[[list[str]], None] | None = None,
        page_size: int = PAGE_SIZE,
        search_delay_ms: int = 300,
        can_restore: bool = True,  # what the server said of the user's role
    ) -> None:
        super().__init__(parent)
        self.api = api
        self.entity = entity
        self.plural, self.singular = labels
        self.on_restored = on_restored
        self.can_restore = can_restore
        self.page_size = page_size
        self.records: dict[str, dict[str, Any]] = {}
        self.next_cursor: str | None = None
        self.restored: list[str] = []
        self._gone: dict[str, dict[str, Any]] = {}  # restored records, for the report
        self.loaded_once = False
        self.setWindowTitle(f"Deleted {self.plural.lower()}")
        self.setMinimumSize(720, 480)
        self._build(search_delay_ms)
        self.busy = Busy(
            self, [self.search, self.more_button, self.refresh_button, self.restore_button]
        )
        self._selection_changed()

    def _build(self, search_delay_ms: int) -> None:
        intro = QLabel(
            f"Deleted {self.plural.lower()} stay on the server until restored. Newest deletions"
            " first; your data scope applies as on the list."
        )
        if not self.can_restore:
            intro.setText(
                f"{intro.text()} Your role may not restore {self.plural.lower()} (restoring"
                " needs the right to delete): you can look, not restore."
            )
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #555;")
        self.search = QLineEdit()
        self.search.setObjectName("deletedSearch")
        self.search.setPlaceholderText(f"Search deleted {self.plural.lower()}")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(search_delay_ms)
        self._search_timer.timeout.connect(self.reload)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)

        self.table = QTableWidget(0, 3)
        self.table.setObjectName("deletedRecords")
        self.table.setHorizontalHeaderLabels([self.singular, "Details", "Deleted (UTC)"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSection(0, 220)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.empty = QLabel()
        self.empty.setObjectName("empty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #666; padding: 12px;")
        self.empty.hide()
        self.more_button = QPushButton("Load more")
        self.more_button.setObjectName("loadMore")
        self.more_button.clicked.connect(self.load_more)
        self.more_button.hide()
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color: #555;")
        paging = QHBoxLayout()
        paging.addWidget(self.count_label, 1)
        paging.addWidget(self.more_button)

        self.details = QLabel()
        self.details.setObjectName("details")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setStyleSheet(
            "QLabel { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 4px;"
            " padding: 6px; }"
        )
        self.details.setMinimumHeight(90)
        self.status = banner()
        self.status.setObjectName("status")
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("restore")
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(self.restore_selected)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.restore_button)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(top)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.empty)
        layout.addLayout(paging)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

    # -- reading --------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self.loaded_once:
            self.loaded_once = True
            self.reload()

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        # once it ends (and Busy enabled its controls again) the selection decides
        self.busy.run(work, then=self._selection_changed)

    def reload(self) -> None:
        self._search_timer.stop()
        self._run(self._load(reset=True))

    def load_more(self) -> None:
        if self.next_cursor is not None:
            self._run(self._load(reset=False))

    async def wait(self) -> None:
        """Until the running read or restore ends (tests)."""
        await self.busy.wait()

    def _params(self, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"deleted": True, "sort": "-updated_at", "limit": self.page_size}
        query = " ".join(self.search.text().split())
        if query:
            params["q"] = query
        if cursor is not None:
            params["cursor"] = cursor
        return params

    async def _load(self, *, reset: bool) -> None:
        cursor = None if reset else self.next_cursor
        try:
            page = await self.api.list_records(self.entity, **self._params(cursor))
        except ClientError as exc:
            show_banner(self.status, describe(exc), BANNER_ERROR)
            return
        if reset:
            self.records.clear()
            self.table.setRowCount(0)
            if self.status.styleSheet() == BANNER_ERROR:
                show_banner(self.status, "")
        self.next_cursor = page.next_cursor
        for data in page.items:
            self._add_row(data)
        self._update_count()

    def _add_row(self, data: dict[str, Any]) -> None:
        record_id = str(data.get("id") or "")
        if not record_id or record_id in self.records:
            return
        self.records[record_id] = data
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(display_name(self.entity, data))
        name.setData(IdRole, record_id)
        self.table.setItem(row, 0, name)
        self.table.setItem(row, 1, QTableWidgetItem(detail_text(self.entity, data)))
        self.table.setItem(row, 2, QTableWidgetItem(cell_text(data.get("deleted_at"))))

    def _update_count(self) -> None:
        shown = self.table.rowCount()
        more = self.next_cursor is not None
        self.more_button.setVisible(more)
        searching = bool(self.search.text().strip())
        if shown == 0:
            self.empty.setText(
                f"No deleted {self.plural.lower()} match this search"
                if searching
                else f"No deleted {self.plural.lower()}"
            )
        self.empty.setVisible(shown == 0)
        self.count_label.setText(
            f"{counted(shown, self.singular.lower(), self.plural.lower())} shown"
            + (" · more on the server" if more else "")
        )

    # -- choosing and restoring ---------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        ids = []
        for row in rows:
            item = self.table.item(row, 0)
            if item is not None:
                ids.append(str(item.data(IdRole)))
        return ids

    def select_ids(self, ids: Sequence[str]) -> None:
        wanted = set(ids)
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(IdRole) in wanted:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        self.restore_button.setEnabled(bool(ids) and self.can_restore and not self.busy.running)
        self.restore_button.setText(
            f"Restore {len(ids)} {self.plural.lower()}" if len(ids) > 1 else "Restore"
        )
        if len(ids) == 1:
            self.details.setText(record_summary(self.entity, self.records[ids[0]]))
        elif ids:
            self.details.setText(f"{counted(len(ids), self.singular.lower(), self.plural.lower())}"
                                 " chosen")  # fmt: skip
        else:
            self.details.setText(
                f"Choose a deleted {self.singular.lower()} to see its fields; choose several"
                " with Ctrl or Shift to restore them together."
            )

    def restore_selected(self) -> None:
        ids = self.selected_ids()
        if ids and self.can_restore:
            self._run(self._restore(ids))

    async def _restore(self, ids: list[str]) -> None:
        done: list[str] = []
        refused: list[tuple[str, str]] = []
        for record_id in ids:
            name = display_name(self.entity, self.records[record_id])
            try:
                await self.api.restore_record(self.entity, record_id)
            except ClientError as exc:  # reported per record
                refused.append((name, describe(exc)))
                continue
            done.append(record_id)
            self._remove(record_id)
        names = ", ".join(display_name(self.entity, self._gone[i]) for i in done[:5])
        more = f" and {len(done) - 5} more" if len(done) > 5 else ""
        parts = []
        if done:
            parts.append(
                f"Restored {counted(len(done), self.singular.lower(), self.plural.lower())}:"
                f" {names}{more}. They show in the list once synced."
            )
        for name, reason in refused[:5]:
            parts.append(f"Not restored: {name}: {reason}")
        if len(refused) > 5:
            parts.append(f"… and {len(refused) - 5} more not restored")
        show_banner(self.status, "\n".join(parts), BANNER_ERROR if refused else BANNER_OK)
        self._update_count()
        if done:
            self.restored.extend(done)
            if self.on_restored is not None:
                self.on_restored(done)

    def _remove(self, record_id: str) -> None:
        self._gone[record_id] = self.records.pop(record_id)
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(IdRole) == record_id:
                self.table.removeRow(row)
                return
