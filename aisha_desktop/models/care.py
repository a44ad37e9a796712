"""Qt table models of the C.A.R.E. dashboard: the replicated audit log (keyset pages
appended as the user scrolls), the approval queue and the trigger deliveries (API answers).

Thin adapters: rows are immutable records prepared before they reach the model; `data()`
only reads them; replacing and appending go through `beginResetModel`/`beginInsertRows`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from aisha_desktop.models.wording import counted
from aisha_desktop.replica.care import AuditEntry

Row = TypeVar("Row")
Index = QModelIndex | QPersistentModelIndex

EVENT_LABELS = {
    "ESCALATION_DETECTED": "Escalation detected",
    "ACTION_ALLOWED": "Action allowed",
    "ACTION_BLOCKED": "Action blocked",
    "STATE_TRANSITION": "State transition",
    "WORKFLOW_TRIGGERED": "Workflow triggered",
}


def when(value: Any) -> str:
    """A server or replica timestamp as the tables show it (UTC, to the second)."""
    if value in (None, ""):
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Column(Generic[Row]):
    title: str
    text: Callable[[Row], str]
    tooltip: Callable[[Row], str] | None = None


class RowsModel(QAbstractTableModel, Generic[Row]):
    """A read-only table of immutable rows, one `Column` per column."""

    def __init__(self, columns: Sequence[Column[Row]], parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.rows: list[Row] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        column = self.columns[index.column()]
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(row)
        if role == Qt.ItemDataRole.ToolTipRole and column.tooltip is not None:
            return column.tooltip(row)
        return None

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.columns)
        ):
            return self.columns[section].title
        return None

    def replace(self, rows: Sequence[Row]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def extend(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self.rows.extend(rows)
        self.endInsertRows()

    def row(self, number: int) -> Row | None:
        return self.rows[number] if 0 <= number < len(self.rows) else None


def _short(value: str | None, size: int = 8) -> str:
    return (value or "")[:size]


AUDIT_COLUMNS: list[Column[AuditEntry]] = [
    Column("When (UTC)", lambda e: when(e.created_at)),
    Column("Event", lambda e: EVENT_LABELS.get(e.event_type, e.event_type)),
    Column("Entity", lambda e: f"{e.entity_type} {_short(e.entity_id)}", lambda e: e.entity_id),
    Column("Origin", lambda e: e.action_origin or ""),
    Column("Trigger", lambda e: e.trigger_type or ""),
    Column("Reason", lambda e: e.reason or "", lambda e: e.reason or ""),
]


class AuditModel(RowsModel[AuditEntry]):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(AUDIT_COLUMNS, parent)


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    created_at: str
    action_type: str
    entity_type: str
    entity_id: str
    action_origin: str
    reason: str
    status: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Approval:
        return cls(
            id=str(data.get("id") or ""),
            created_at=str(data.get("created_at") or ""),
            action_type=str(data.get("action_type") or ""),
            entity_type=str(data.get("entity_type") or ""),
            entity_id=str(data.get("entity_id") or ""),
            action_origin=str(data.get("action_origin") or ""),
            reason=str(data.get("reason") or ""),
            status=str(data.get("status") or ""),
        )


APPROVAL_COLUMNS: list[Column[Approval]] = [
    Column("Queued (UTC)", lambda a: when(a.created_at)),
    Column("Action", lambda a: a.action_type),
    Column("Entity", lambda a: f"{a.entity_type} {_short(a.entity_id)}", lambda a: a.entity_id),
    Column("Origin", lambda a: a.action_origin),
    Column("Reason", lambda a: a.reason, lambda a: a.reason),
]


class ApprovalsModel(RowsModel[Approval]):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(APPROVAL_COLUMNS, parent)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    created_at: str
    trigger_type: str
    entity_type: str
    entity_id: str
    status: str
    in_flight: bool
    attempts: int
    replays: int
    last_http_status: int | None
    last_error: str
    next_attempt_at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        http = data.get("last_http_status")
        return cls(
            id=str(data.get("id") or ""),
            created_at=str(data.get("created_at") or ""),
            trigger_type=str(data.get("trigger_type") or ""),
            entity_type=str(data.get("entity_type") or ""),
            entity_id=str(data.get("entity_id") or ""),
            status=str(data.get("status") or ""),
            in_flight=bool(data.get("in_flight")),
            attempts=int(data.get("attempts") or 0),
            replays=int(data.get("replays") or 0),
            last_http_status=http if isinstance(http, int) else None,
            last_error=str(data.get("last_error") or ""),
            next_attempt_at=str(data.get("next_attempt_at") or ""),
        )

    @property
    def answer(self) -> str:
        if self.last_http_status is not None:
            return f"HTTP {self.last_http_status}"
        return self.last_error


DELIVERY_COLUMNS: list[Column[Delivery]] = [
    Column("Created (UTC)", lambda d: when(d.created_at)),
    Column("Trigger", lambda d: d.trigger_type),
    Column("Entity", lambda d: f"{d.entity_type} {_short(d.entity_id)}", lambda d: d.entity_id),
    Column("Status", lambda d: d.status + (" (sending)" if d.in_flight else "")),
    Column(
        "Attempts",
        lambda d: str(d.attempts) + (f" · {counted(d.replays, 'replay')}" if d.replays else ""),
    ),
    Column("Last answer", lambda d: d.answer, lambda d: d.last_error or d.answer),
    Column("Next attempt (UTC)", lambda d: when(d.next_attempt_at)),
]


class DeliveriesModel(RowsModel[Delivery]):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(DELIVERY_COLUMNS, parent)


__all__ = [
    "EVENT_LABELS",
    "Approval",
    "ApprovalsModel",
    "AuditModel",
    "Column",
    "DeliveriesModel",
    "Delivery",
    "RowsModel",
    "when",
]
