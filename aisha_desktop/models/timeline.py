"""`TimelineModel`: a record's timeline (activities, notes, field changes, deletions and
restores, its creation), newest first, as a thin list model over immutable entries.

The entries are built by the view from the server's `GET /api/{entity}/{id}/timeline`
answer; the model only holds them and answers `data()` from memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

Index = QModelIndex | QPersistentModelIndex
EntryRole = Qt.ItemDataRole.UserRole + 1  # the TimelineEntry of a row
KIND_COLOURS = {
    "activity": "#1a5fb4",
    "note": "#6d4c9f",
    "change": "#555555",
    "created": "#2e7d32",
    "deleted": "#b3261e",
    "restored": "#b26a00",
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the timeline: `title` (what happened), `meta` (when, who, version) and
    `details` (the changed fields with old and new values, or the note's text)."""

    id: str
    kind: str
    at: str  # ISO timestamp as the server sent it (paging asks for entries before it)
    title: str
    meta: str
    details: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.details, self.meta))


class TimelineModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[TimelineEntry] = []

    @property
    def entries(self) -> list[TimelineEntry]:
        return list(self._entries)

    def replace(self, entries: Sequence[TimelineEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self.endResetModel()

    def extend(self, entries: Sequence[TimelineEntry]) -> None:
        """Older entries (the next page) go at the end; ones already shown are skipped."""
        known = {e.id for e in self._entries}
        fresh = [e for e in entries if e.id not in known]
        if not fresh:
            return
        first = len(self._entries)
        self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
        self._entries.extend(fresh)
        self.endInsertRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.text
        if role == Qt.ItemDataRole.ForegroundRole and entry.kind in ("deleted", "restored"):
            return QColor(KIND_COLOURS[entry.kind])
        if role == EntryRole:
            return entry
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


__all__ = ["KIND_COLOURS", "EntryRole", "TimelineEntry", "TimelineModel"]
