"""CSV export of one entity: the rows of the current view (its search and filters) or all of
them, every column or the view's visible ones, streamed from the server into a file the
operator chooses, with progress (rows and bytes) and cancel.  The file is written under a
temporary name and only appears when complete: a cancel or a failure leaves nothing behind.

The server writes the chosen columns in the view's sort order when the view is sorted on a
field the server exports in order (`EXPORT_SORTS`); otherwise by record id, and the dialog
says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ClientError
from aisha_desktop.client.csv_io import ExportProgress, ExportResult
from aisha_desktop.dialogs.admin.base import ask
from aisha_desktop.dialogs.common import BANNER_INFO, BANNER_OK, Busy, banner, describe, show_banner
from aisha_desktop.dialogs.transfer import Transfer, human_size
from aisha_desktop.models.csv_mapping import COMMON_IMPORT_FIELDS, IMPORT_FIELDS
from aisha_desktop.models.fields import STATUSES, column_title

# the list filters the export takes besides `q` (the server's EntitySpec.filters we use)
EXPORT_FILTERS = frozenset({"status"})
# the fields the server exports in order, per entity (its EntitySpec.sortable: indexed fields)
EXPORT_SORTS: dict[str, frozenset[str]] = {
    "accounts": frozenset({"updated_at", "created_at", "name"}),
    "contacts": frozenset({"updated_at", "created_at", "last_name", "email"}),
    "leads": frozenset({"updated_at", "created_at", "email"}),
    "opportunities": frozenset({"updated_at", "created_at", "close_date"}),
    "activities": frozenset({"updated_at", "created_at", "due_date"}),
    "notes": frozenset({"updated_at", "created_at"}),
}
Confirm = Callable[[str, str], bool]


@dataclass(frozen=True)
class ViewScope:
    """What an entity view shows: its search text, filters, visible columns and sort, and
    how many rows that is (None when not known exactly)."""

    search: str = ""
    filters: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    sort: str = ""
    shown: int | None = None

    @property
    def narrowed(self) -> bool:
        return bool(self.search.strip()) or any(
            v not in (None, "") for k, v in self.filters.items() if k in EXPORT_FILTERS
        )


def exportable(entity: str) -> tuple[str, ...]:
    """The columns of the server's export of `entity` (custom fields follow as cf.<name>)."""
    return ("id", *IMPORT_FIELDS[entity], *COMMON_IMPORT_FIELDS, "created_at", "updated_at")


def export_sort(entity: str, scope: ViewScope) -> str | None:
    """The view's sort when the server can export in it, else None (by record id)."""
    name = scope.sort.lstrip("-")
    return scope.sort if name and name in EXPORT_SORTS.get(entity, ()) else None


def export_params(
    entity: str,
    scope: ViewScope,
    *,
    use_view: bool,
    formula_escape: bool,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The export's query: the view's search (every word, anywhere in the searched fields,
    as the view searches) and filters, or nothing for all rows; the view's sort when the
    server can export in it; the chosen columns (None: all)."""
    params: dict[str, Any] = {"formula_escape": formula_escape}
    if use_view:
        if scope.search.strip():
            params["q"] = " ".join(scope.search.split())
            params["match"] = "contains"
        for name, value in scope.filters.items():
            if name in EXPORT_FILTERS and value not in (None, ""):
                params[name] = value
    sort = export_sort(entity, scope)
    if sort is not None:
        params["sort"] = sort
    if columns:
        params["columns"] = ",".join(columns)
    return params


def describe_order(entity: str, scope: ViewScope) -> str:
    name = scope.sort.lstrip("-")
    if not name:
        return "Rows come in record-id order."
    direction = "descending" if scope.sort.startswith("-") else "ascending"
    if export_sort(entity, scope) is not None:
        return f"Rows come sorted as the view: by {column_title(name)}, {direction}."
    return (
        f"The view's sort (by {column_title(name)}) is not one the server exports in; rows come "
        "in record-id order."
    )


def describe_scope(entity: str, plural: str, scope: ViewScope) -> str:
    parts = []
    if scope.search.strip():
        parts.append(f"search “{' '.join(scope.search.split())}”")
    status = scope.filters.get("status")
    if status and status in STATUSES.get(entity, ()):
        parts.append(f"status {str(status).capitalize()}")
    what = ", ".join(parts) if parts else f"no search or filter: all {plural.lower()}"
    count = f" · {scope.shown:,} rows" if scope.shown is not None else ""
    return f"Current view ({what}){count}"


class CsvExportDialog(QDialog):
    def __init__(
        self,
        api: ApiClient,
        entity: str,
        labels: tuple[str, str],
        scope: ViewScope,
        parent: QWidget | None = None,
        *,
        folder: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.api = api
        self.entity = entity
        self.plural, self.singular = labels
        self.scope = scope
        self.exported: ExportResult | None = None
        self.confirm: Confirm = lambda title, text: ask(self, title, text)
        self.setWindowTitle(f"Export {self.plural} to CSV")
        self.setMinimumWidth(620)
        self._build(folder or Path.home())
        self.busy = Busy(self, self.editors)

    def _build(self, folder: Path) -> None:
        self.view_rows = QRadioButton(describe_scope(self.entity, self.plural, self.scope))
        self.view_rows.setObjectName("viewRows")
        self.all_rows = QRadioButton(f"All {self.plural.lower()}")
        self.all_rows.setObjectName("allRows")
        rows_group = QButtonGroup(self)
        rows_group.addButton(self.view_rows)
        rows_group.addButton(self.all_rows)
        (self.view_rows if self.scope.narrowed else self.all_rows).setChecked(True)
        order = QLabel(
            describe_order(self.entity, self.scope) + " Your data scope applies as on the list."
        )
        order.setObjectName("order")
        order.setWordWrap(True)
        order.setStyleSheet("color: #555; font-size: 11px;")
        rows_box = QGroupBox("Rows")
        rows_layout = QVBoxLayout(rows_box)
        rows_layout.addWidget(self.view_rows)
        rows_layout.addWidget(self.all_rows)
        rows_layout.addWidget(order)

        known = set(exportable(self.entity))
        self.visible = [c for c in self.scope.columns if c in known]
        shown = ", ".join(column_title(c) for c in self.visible[:6])
        more = f" and {len(self.visible) - 6} more" if len(self.visible) > 6 else ""
        self.all_columns = QRadioButton("All columns (custom fields included)")
        self.all_columns.setObjectName("allColumns")
        self.visible_columns = QRadioButton(f"Visible columns: {shown}{more}")
        self.visible_columns.setObjectName("visibleColumns")
        self.visible_columns.setEnabled(bool(self.visible))
        columns_group = QButtonGroup(self)
        columns_group.addButton(self.all_columns)
        columns_group.addButton(self.visible_columns)
        self.all_columns.setChecked(True)
        self.formula_escape = QCheckBox(
            "Guard cells a spreadsheet would run as formulas (recommended)"
        )
        self.formula_escape.setChecked(True)
        self.formula_escape.setToolTip(
            "Cells starting with = + - @ get a leading quote; untick for a file meant for "
            "another program rather than a spreadsheet. Imports remove the quote again."
        )
        columns_box = QGroupBox("Columns")
        columns_layout = QVBoxLayout(columns_box)
        columns_layout.addWidget(self.all_columns)
        columns_layout.addWidget(self.visible_columns)
        columns_layout.addWidget(self.formula_escape)

        self.path_edit = QLineEdit(str(folder / f"{self.entity}.csv"))
        self.path_edit.setObjectName("path")
        self.path_edit.textChanged.connect(self._update_state)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self._choose)
        file_row = QHBoxLayout()
        file_row.addWidget(QLabel("Save to:"))
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(self.choose_button)

        self.error = banner()
        self.error.setObjectName("error")
        self.status = banner()
        self.status.setObjectName("status")
        self.transfer = Transfer(self.cancel)
        self.progress, self.cancel_button = self.transfer.bar, self.transfer.cancel_button

        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = self.transfer.button_row(self.export_button, self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(rows_box)
        layout.addWidget(columns_box)
        layout.addLayout(file_row)
        layout.addWidget(self.error)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        self.editors: list[QWidget] = [
            self.view_rows,
            self.all_rows,
            self.all_columns,
            self.visible_columns,
            self.formula_escape,
            self.path_edit,
            self.choose_button,
            self.export_button,
        ]

    def _choose(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, f"Export {self.plural}", self.path_edit.text(), "CSV files (*.csv)"
        )
        if name:
            self.path_edit.setText(name)

    def _update_state(self, *_: object) -> None:
        self.export_button.setEnabled(bool(self.path_edit.text().strip()))

    @property
    def destination(self) -> Path:
        path = Path(self.path_edit.text().strip()).expanduser()
        return path if path.suffix else path.with_suffix(".csv")

    # -- running ---------------------------------------------------------------------------
    def export(self) -> None:
        if not self.path_edit.text().strip():
            show_banner(self.error, "Choose the file to save to")
            return
        raw = Path(self.path_edit.text().strip()).expanduser()
        if raw.is_dir():
            show_banner(self.error, f"{raw} is a folder: name a file in it")
            return
        target = self.destination
        if target.exists() and not self.confirm(
            f"Export {self.plural}", f"{target.name} exists. Replace it?"
        ):
            return
        task = self.busy.run(self._export(target))
        if task is not None:
            task.add_done_callback(lambda _: self._update_state())

    def cancel(self) -> None:
        self.busy.cancel()

    async def wait(self) -> None:
        if self.busy.task is not None:
            await asyncio.wait({self.busy.task})

    def _progress(self, step: ExportProgress) -> None:
        # the view's count is the export's when the view is what is exported, or is all rows
        whole = self.view_rows.isChecked() or not self.scope.narrowed
        expected = (self.scope.shown if whole else None) or 0
        text = f"{step.rows:,} rows · {human_size(step.bytes)} written"
        self.transfer.step(step.rows, expected, text)

    async def _export(self, target: Path) -> None:
        show_banner(self.error, "")
        show_banner(self.status, "")
        self.exported = None
        self.transfer.start("Waiting for the server…", cancel="Cancel export")
        params = export_params(
            self.entity,
            self.scope,
            use_view=self.view_rows.isChecked(),
            formula_escape=self.formula_escape.isChecked(),
            columns=self.visible if self.visible_columns.isChecked() else None,
        )
        try:
            self.exported = await self.api.export_csv(
                self.entity, target, params=params, progress=self._progress
            )
        except asyncio.CancelledError:
            show_banner(self.status, "Export cancelled: no file was written.", BANNER_INFO)
            raise
        except ClientError as exc:  # (before OSError: OfflineError is a ConnectionError)
            show_banner(self.error, f"Export failed, no file was written: {describe(exc)}")
        except OSError as exc:
            show_banner(self.error, f"Cannot write {target}: {exc.strerror or exc}")
        except Exception as exc:
            show_banner(self.error, f"Export failed, no file was written: {describe(exc)}")
        else:
            result = self.exported
            rows = f"{result.rows:,} row{'s' if result.rows != 1 else ''}"
            show_banner(
                self.status,
                f"Exported {rows} ({human_size(result.bytes)}, {len(result.columns)} columns) "
                f"to {result.path}",
                BANNER_OK,
            )
        finally:
            self.transfer.finish()
