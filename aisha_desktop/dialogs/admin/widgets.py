"""Widgets the admin dialogs share: a read-only list of server rows (one row selected at a
time, dimmed rows for archived/disabled ones), and the error labels of a form."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.dialogs.common import field_error_label

DIMMED = QColor("#80868b")
R = TypeVar("R")


def record_table(columns: Sequence[str], stretch: int) -> QTableWidget:
    """A table of rows sized to their contents, column `stretch` taking the rest."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


def fill_table(
    table: QTableWidget, rows: Sequence[Sequence[str]], dimmed: Sequence[bool] = ()
) -> None:
    """Replace the table's rows; `dimmed[i]` greys row i out (archived, disabled...)."""
    table.setRowCount(len(rows))
    grey = QBrush(DIMMED)
    for row, cells in enumerate(rows):
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if row < len(dimmed) and dimmed[row]:
                item.setForeground(grey)
            table.setItem(row, column, item)


def selected_row(table: QTableWidget) -> int | None:
    rows = {index.row() for index in table.selectionModel().selectedRows()}
    return min(rows) if rows else None


class RecordList(Generic[R]):
    """The rows of a dialog's list and the table showing them: `show` fills both,
    `selected` is the row picked in the table, `select` picks one by a test; `filter` (for
    the dialog to place) narrows the table as the user types."""

    def __init__(
        self,
        columns: Sequence[str],
        stretch: int,
        cells: Callable[[R], Sequence[str]],
        dimmed: Callable[[R], bool] = lambda _: False,
    ) -> None:
        self.table = record_table(columns, stretch)
        self.rows: list[R] = []
        self._cells = cells
        self._dimmed = dimmed

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._narrow)

    def show(self, rows: list[R]) -> None:
        self.rows = rows
        fill_table(self.table, [self._cells(r) for r in rows], [self._dimmed(r) for r in rows])
        self._narrow(self.filter.text())

    def _narrow(self, text: str) -> None:
        """Only the rows holding every typed word (in any column) stay visible."""
        words = text.casefold().split()
        for index, row in enumerate(self.rows):
            cells = " ".join(self._cells(row)).casefold()
            self.table.setRowHidden(index, not all(w in cells for w in words))

    def visible(self) -> list[R]:
        return [r for i, r in enumerate(self.rows) if not self.table.isRowHidden(i)]

    def selected(self) -> R | None:
        row = selected_row(self.table)
        return self.rows[row] if row is not None else None

    def select(self, match: Callable[[R], bool]) -> R:
        for index, row in enumerate(self.rows):
            if match(row):
                self.table.selectRow(index)
                return row
        raise KeyError("no such row")


def when(moment: datetime | None, empty: str = "") -> str:
    """A timestamp in the user's local time, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else empty


class FieldErrors:
    """One red label per input of a form, shown below it (`add_row`) and set together."""

    def __init__(self, form: QFormLayout) -> None:
        self.form = form
        self.labels: dict[str, QLabel] = {}

    def add_row(self, name: str, label: str, editor: QWidget, *, row: int = -1) -> None:
        # editor and error in one cell: a hidden error takes no room in the form
        cell = QWidget()
        cell.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(editor)
        error = field_error_label()
        column.addWidget(error)
        self.labels[name] = error
        self.form.insertRow(row, label, cell)

    def show(self, found: Mapping[str, str]) -> None:
        for name, label in self.labels.items():
            label.setText(found.get(name, ""))
            label.setVisible(name in found)

    def text(self, name: str) -> str:
        label = self.labels[name]
        return "" if label.isHidden() else label.text()

    def known(self, found: Mapping[str, str]) -> dict[str, str]:
        """The problems that have a label here (the server names fields it knows)."""
        return {k: v for k, v in found.items() if k in self.labels}

    def names(self) -> Iterable[str]:
        return self.labels.keys()
