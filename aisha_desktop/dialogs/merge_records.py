"""Merging a duplicate into a record (accounts, contacts, leads).

The operator picks the duplicate among the likely ones (the replica's records sharing the
record's e-mail, a phone or its name) or finds it by search, sees field by field what the
merged record will hold, and merges: the server keeps the record's values, fills its empty
fields from the duplicate, unites tags and custom fields, moves the duplicate's activities,
notes and links to the record, and soft-deletes the duplicate (restorable), all in one
transaction (`POST /api/<entity>/<id>/merge`).  "Keep the other one" swaps which record
stays.  Both records must be on the server (no edits waiting to sync); the merge needs the
server, and says so when it is out of reach."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ClientError
from aisha_desktop.dialogs.common import (
    BANNER_ERROR,
    BANNER_INFO,
    Busy,
    banner,
    describe,
    show_banner,
)
from aisha_desktop.models.fields import FIELDS, FieldSpec, custom_field_specs, display_name
from aisha_desktop.models.record_table import cell_text
from aisha_desktop.models.wording import counted
from aisha_desktop.replica import Replica, ReplicaRow
from aisha_desktop.replica.schema import ENTITY_COLUMNS, SEARCH_FIELDS

MERGEABLE = ("accounts", "contacts", "leads")
CANDIDATES = 20
FILLED_BRUSH = QBrush(QColor("#0d652d"))
IdRole = Qt.ItemDataRole.UserRole + 1
MOVED_NAMES = {  # the server's table names in the operator's words
    "activities": ("activity", "activities"),
    "notes": ("note", "notes"),
    "contacts": ("contact", "contacts"),
    "opportunities": ("opportunity", "opportunities"),
    "leads": ("converted lead", "converted leads"),
}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@dataclass(frozen=True, slots=True)
class PreviewRow:
    label: str
    kept: str
    duplicate: str
    after: str
    filled: bool  # the merged value comes from the duplicate


def merge_preview(
    entity: str,
    kept: Mapping[str, Any],
    duplicate: Mapping[str, Any],
    custom: Sequence[FieldSpec] = (),
) -> list[PreviewRow]:
    """What the merged record holds, field by field, as the server merges: the kept record's
    value where it has one, else the duplicate's; tags united; custom fields the same way.
    Fields empty in both are left out."""
    rows: list[PreviewRow] = []

    def add(label: str, mine: Any, theirs: Any) -> None:
        if _empty(mine) and _empty(theirs):
            return
        after = theirs if _empty(mine) else mine
        rows.append(
            PreviewRow(label, cell_text(mine), cell_text(theirs), cell_text(after),
                       _empty(mine) and not _empty(theirs))
        )  # fmt: skip

    for spec in FIELDS.get(entity, ()):
        add(spec.label, kept.get(spec.name), duplicate.get(spec.name))
    mine_tags = list(kept.get("tags") or [])
    their_tags = list(duplicate.get("tags") or [])
    if mine_tags or their_tags:
        united = list(dict.fromkeys([*mine_tags, *their_tags]))
        rows.append(
            PreviewRow("Tags", cell_text(mine_tags), cell_text(their_tags), cell_text(united),
                       united != mine_tags)
        )  # fmt: skip
    mine_custom = kept.get("custom_fields") or {}
    their_custom = duplicate.get("custom_fields") or {}
    for spec in custom:
        add(spec.label, mine_custom.get(spec.name), their_custom.get(spec.name))
    return rows


def moved_text(repointed: Mapping[str, Any]) -> str:
    """ "2 activities and 1 note moved", or "" when nothing moved."""
    parts = []
    for table, (one, many) in MOVED_NAMES.items():
        count = repointed.get(table)
        if isinstance(count, int) and count > 0:
            parts.append(counted(count, one, many))
    if not parts:
        return ""
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed} moved"


def likely_duplicates(replica: Replica, entity: str, record: ReplicaRow) -> list[ReplicaRow]:
    """Records of `entity` in the replica sharing `record`'s e-mail, a phone number or its
    name, the closest first (e-mail, phones, then name)."""
    data = record.data
    found: dict[str, ReplicaRow] = {}
    email = data.get("email")
    if isinstance(email, str) and email.strip() and "email" in ENTITY_COLUMNS[entity]:
        page = replica.query(entity, filters={"email": email.strip().lower()}, limit=CANDIDATES)
        found.update((r.id, r) for r in page.rows)
    for field in ("phone", "mobile"):
        phone = data.get(field)
        if isinstance(phone, str) and phone.strip() and field in SEARCH_FIELDS[entity]:
            digits = "".join(c for c in phone if c.isdigit())
            for row in replica.query(entity, search=phone.strip(), limit=CANDIDATES).rows:
                theirs = {"".join(c for c in str(row.data.get(f) or "") if c.isdigit())
                          for f in ("phone", "mobile")}  # fmt: skip
                if digits and digits in theirs:
                    found.setdefault(row.id, row)
    name = display_name(entity, data)
    if name and not name.startswith("("):
        for row in replica.query(entity, search=name, limit=CANDIDATES).rows:
            if display_name(entity, row.data).lower() == name.lower():
                found.setdefault(row.id, row)
    found.pop(record.id, None)
    return list(found.values())[:CANDIDATES]


class MergeDialog(QDialog):
    def __init__(
        self,
        api: ApiClient,
        replica: Replica,
        entity: str,
        labels: tuple[str, str],
        record: ReplicaRow,
        parent: QWidget | None = None,
        *,
        on_merged: Callable[[str, str, str], None] | None = None,
        search_delay_ms: int = 150,
    ) -> None:
        super().__init__(parent)
        if entity not in MERGEABLE:
            raise ValueError(f"{entity} cannot be merged")
        self.api = api
        self.replica = replica
        self.entity = entity
        self.plural, self.singular = labels
        self.kept = record
        self.duplicate: ReplicaRow | None = None
        self.on_merged = on_merged  # (kept id, merged id, message)
        self.merged: dict[str, Any] | None = None  # the server's answer
        self.message: str | None = None
        self.kept_id = self.merged_id = ""
        self.custom = custom_field_specs(entity, replica.settings("custom_fields"))
        self.setWindowTitle(f"Merge {self.plural.lower()}")
        self.setMinimumSize(760, 560)
        self._build(search_delay_ms)
        self.busy = Busy(self, [self.search, self.candidates, self.swap_button, self.merge_button])
        self._show_candidates(likely_duplicates(replica, entity, record), likely=True)
        self._update()

    def _build(self, search_delay_ms: int) -> None:
        self.heading = QLabel()
        self.heading.setObjectName("heading")
        self.heading.setWordWrap(True)
        self.heading.setStyleSheet("font-size: 14px; font-weight: 600;")
        self.search = QLineEdit()
        self.search.setObjectName("mergeSearch")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(search_delay_ms)
        self._search_timer.timeout.connect(self._searched)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self.candidates_label = QLabel()
        self.candidates_label.setStyleSheet("color: #555;")
        self.candidates = QListWidget()
        self.candidates.setObjectName("candidates")
        self.candidates.setMaximumHeight(130)
        self.candidates.currentItemChanged.connect(self._picked)

        self.preview = QTableWidget(0, 4)
        self.preview.setObjectName("preview")
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.preview.verticalHeader().hide()
        self.preview.verticalHeader().setDefaultSectionSize(22)
        self.preview.setWordWrap(False)
        header = self.preview.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.note = QLabel()
        self.note.setObjectName("note")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555;")
        self.status = banner()
        self.status.setObjectName("status")
        self.swap_button = QPushButton("Keep the other one")
        self.swap_button.setObjectName("swap")
        self.swap_button.setToolTip("Merge this record into the chosen one instead")
        self.swap_button.clicked.connect(self.swap)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setObjectName("merge")
        self.merge_button.setDefault(True)
        self.merge_button.clicked.connect(self.merge)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.swap_button)
        buttons.addStretch(1)
        buttons.addWidget(self.merge_button)
        buttons.addWidget(cancel)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.search)
        layout.addWidget(self.candidates_label)
        layout.addWidget(self.candidates)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.note)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

    # -- choosing the duplicate -------------------------------------------------------------------
    def _show_candidates(self, rows: Sequence[ReplicaRow], *, likely: bool) -> None:
        chosen = self.duplicate.id if self.duplicate is not None else None
        self.candidates.blockSignals(True)
        self.candidates.clear()
        for row in rows:
            if row.id == self.kept.id:
                continue
            details = [
                str(row.data[f]) for f in ("email", "phone", "company", "city") if row.data.get(f)
            ]
            text = " · ".join([display_name(self.entity, row.data), *details[:2]])
            item = QListWidgetItem(text)
            item.setData(IdRole, row.id)
            self.candidates.addItem(item)
            if row.id == chosen:
                self.candidates.setCurrentItem(item)
        self.candidates.blockSignals(False)
        count = self.candidates.count()
        singular, plural = self.singular.lower(), self.plural.lower()
        if likely:
            self.candidates_label.setText(
                f"Likely duplicates (same e-mail, phone or name): {count}"
                if count
                else f"No other {singular} shares this one's e-mail, phone or name: search"
                f" for the duplicate above"
            )
        else:
            self.candidates_label.setText(
                f"{counted(count, singular, plural)} found" if count else f"No {plural} found"
            )

    def _searched(self) -> None:
        text = " ".join(self.search.text().split())
        if not text:
            self._show_candidates(
                likely_duplicates(self.replica, self.entity, self.kept), likely=True
            )
            return
        try:
            page = self.replica.query(self.entity, search=text, limit=CANDIDATES + 1)
        except ValueError as exc:
            show_banner(self.status, str(exc))
            return
        rows = [r for r in page.rows if r.id != self.kept.id]
        self._show_candidates(rows[:CANDIDATES], likely=False)

    def choose(self, record_id: str) -> bool:
        """Pick the duplicate by id (among the candidates shown); False when it is not."""
        for index in range(self.candidates.count()):
            item = self.candidates.item(index)
            if item.data(IdRole) == record_id:
                self.candidates.setCurrentItem(item)
                return True
        return False

    def _picked(self, current: QListWidgetItem | None, _: object = None) -> None:
        if current is None:
            return
        row = self.replica.get(self.entity, str(current.data(IdRole)))
        self.duplicate = row
        show_banner(self.status, "")
        self._update()

    def swap(self) -> None:
        """Keep the chosen record and merge the one this dialog opened on into it."""
        if self.duplicate is None:
            return
        self.kept, self.duplicate = self.duplicate, self.kept
        self._show_candidates(
            [self.duplicate, *likely_duplicates(self.replica, self.entity, self.kept)],
            likely=True,
        )
        self._update()

    # -- the preview ------------------------------------------------------------------------------
    def _update(self) -> None:
        kept_name = display_name(self.entity, self.kept.data)
        singular = self.singular.lower()
        self.heading.setText(f"Merge another {singular} into {kept_name}")
        self.search.setPlaceholderText(f"Find the duplicate {singular} by name, e-mail or phone")
        self.preview.setHorizontalHeaderLabels(
            ["Field", f"{kept_name} (kept)", "Duplicate", "After the merge"]
        )
        duplicate = self.duplicate
        self.merge_button.setEnabled(duplicate is not None and not self.busy.running)
        self.swap_button.setEnabled(duplicate is not None and not self.busy.running)
        if duplicate is None:
            self.preview.setRowCount(0)
            self.note.setText(f"Choose the duplicate {singular} to see what the merge keeps.")
            return
        rows = merge_preview(self.entity, self.kept.data, duplicate.data, self.custom)
        self.preview.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for index, row in enumerate(rows):
            cells = (row.label, row.kept, row.duplicate, row.after)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 3 and row.filled:
                    item.setForeground(FILLED_BRUSH)
                    item.setFont(bold)
                    item.setToolTip(f"From the duplicate: {kept_name} had no value")
                self.preview.setItem(index, column, item)
        assignee = (
            " It is unassigned and takes the duplicate's assignee."
            if _empty(self.kept.data.get("assigned_to"))
            and not _empty(duplicate.data.get("assigned_to"))
            else ""
        )
        self.note.setText(
            "The kept record keeps its values; its empty fields (green) are filled from the"
            f" duplicate.{assignee} The duplicate's activities, notes and links move to the kept"
            " record, then the duplicate is deleted (restorable from Views → Deleted"
            f" {self.plural.lower()})."
        )

    # -- merging ----------------------------------------------------------------------------------
    def _waiting(self) -> str | None:
        """Why the merge cannot go now (edits still to sync), or None."""
        assert self.duplicate is not None
        for row in (self.kept, self.duplicate):
            current = self.replica.get(self.entity, row.id)
            if current is None:
                return f"{display_name(self.entity, row.data)} is no longer in this console"
            if current.version is None or current.pending:
                return (
                    f"{display_name(self.entity, current.data)} has edits not yet on the server:"
                    " merge once they have synced"
                )
        return None

    def merge(self) -> None:
        if self.duplicate is None:
            return
        problem = self._waiting()
        if problem is not None:
            show_banner(self.status, problem, BANNER_ERROR)
            return
        show_banner(self.status, "Merging…", BANNER_INFO)
        self.busy.run(self._merge(self.kept, self.duplicate), then=self._finish)

    def _finish(self) -> None:
        if self.merged is None:
            self._update()
            return
        if self.on_merged is not None and self.message is not None:
            self.on_merged(self.kept_id, self.merged_id, self.message)
        self.accept()  # here, not in the task: closing cancels what still runs

    async def wait(self) -> None:
        """Until a running merge ends (tests)."""
        await self.busy.wait()

    async def _merge(self, kept: ReplicaRow, duplicate: ReplicaRow) -> None:
        try:
            result = await self.api.merge_records(self.entity, kept.id, duplicate.id)
        except ClientError as exc:
            show_banner(self.status, f"Not merged: {describe(exc)}", BANNER_ERROR)
            return
        kept_name = display_name(self.entity, result["record"])
        moved = moved_text(result.get("repointed") or {})
        self.message = f"Merged {display_name(self.entity, duplicate.data)} into {kept_name}" + (
            f"; {moved}" if moved else ""
        )
        self.kept_id, self.merged_id = kept.id, duplicate.id
        self.merged = result
