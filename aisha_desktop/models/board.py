"""The opportunities board's models: one column per pipeline stage (the tenant's
`opportunities` module settings, the guide's default stages when unset), each a thin list
model of cards read from the replica.

A column never holds every opportunity of its stage: it reads `page_size` cards (newest
first) and grows page by page as its view scrolls (`canFetchMore`/`fetchMore`), so a replica
of 100,000 opportunities shows at once.  Reads run in a worker thread (`asyncio.to_thread`)
and land on the GUI thread as immutable `BoardCard`s with the account and contact names
already looked up: `data()` only reads memory.

Dragging a card onto another column is a drop of the card's id and stage (`MIME_TYPE`); the
column reports it as `moved(record_id, from_stage, to_stage)` and the board view decides
whether and how to apply it (through the sync engine, like any edit)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from aisha_desktop.models.fields import display_name, stage_title
from aisha_desktop.replica import Replica

log = logging.getLogger("aisha.desktop.models")
Index = QModelIndex | QPersistentModelIndex
CardRole = Qt.ItemDataRole.UserRole + 1  # the BoardCard of a row
MIME_TYPE = "application/x-aisha-opportunity"
# guide 4.4: what a tenant's opportunities module starts with
DEFAULT_STAGES: tuple[str, ...] = ("prospect", "qualified", "proposal", "negotiation", "closed")
NO_STAGE = ""  # the column of opportunities without a stage


def module_row(rows: Iterable[Mapping[str, Any]], module: str) -> Mapping[str, Any] | None:
    return next((r for r in rows if r.get("module_name") == module), None)


def opportunity_stages(module_rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The tenant's pipeline stages from the replicated module settings (defaults when the
    setting is missing or empty)."""
    row = module_row(module_rows, "opportunities")
    settings = row.get("settings") if row is not None else None
    stages = settings.get("stages") if isinstance(settings, Mapping) else None
    if isinstance(stages, list):
        clean = [s.strip() for s in stages if isinstance(s, str) and s.strip()]
        if clean:
            return list(dict.fromkeys(clean))
    return list(DEFAULT_STAGES)


def module_enabled(module_rows: Iterable[Mapping[str, Any]], module: str) -> bool:
    row = module_row(module_rows, module)
    return row is None or bool(row.get("is_enabled", True))


def format_amount(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.2f}"


@dataclass(frozen=True, slots=True)
class BoardCard:
    id: str
    stage: str
    name: str
    amount: str  # formatted
    account: str
    contact: str
    close_date: str
    pending: bool  # edits not yet confirmed by the server

    @property
    def parties(self) -> str:
        return "  ·  ".join(p for p in (self.account, self.contact) if p)

    @property
    def text(self) -> str:
        lines = [self.name, self.amount, self.parties,
                 f"Closes {self.close_date}" if self.close_date else ""]  # fmt: skip
        return "\n".join(line for line in lines if line)


@dataclass(frozen=True, slots=True)
class ColumnPage:
    cards: list[BoardCard]
    next_after: tuple[str, str] | None


def read_column(
    replica: Replica, stage: str, after: tuple[str, str] | None = None, limit: int = 50
) -> ColumnPage:
    """A page of one stage's cards, newest first (runs in a worker thread)."""
    page = replica.query(
        "opportunities", filters={"stage": stage}, sort="-updated_at", limit=limit, after=after
    )
    names: dict[tuple[str, str], str] = {}

    def name_of(entity: str, record_id: Any) -> str:
        if not record_id:
            return ""
        key = (entity, str(record_id))
        if key not in names:
            row = replica.get(entity, str(record_id))
            names[key] = display_name(entity, row.data) if row is not None else ""
        return names[key]

    cards = [
        BoardCard(
            id=row.id,
            stage=str(row.data.get("stage") or ""),
            name=display_name("opportunities", row.data),
            amount=format_amount(row.data.get("amount")),
            account=name_of("accounts", row.data.get("account_id")),
            contact=name_of("contacts", row.data.get("contact_id")),
            close_date=str(row.data.get("close_date") or "")[:10],
            pending=row.pending,
        )
        for row in page.rows
    ]
    return ColumnPage(cards, page.next_after)


class StageModel(QAbstractListModel):
    """The cards of one stage shown so far; a drop of another stage's card is reported."""

    moved = Signal(str, str, str)  # record id, from stage, to stage
    more_wanted = Signal(str)  # stage: its view scrolled to the end

    def __init__(self, stage: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stage = stage
        self._cards: list[BoardCard] = []
        self._next: tuple[str, str] | None = None
        self.fetching = False

    @property
    def cards(self) -> list[BoardCard]:
        return list(self._cards)

    @property
    def complete(self) -> bool:
        """Every card of the stage is loaded."""
        return self._next is None

    def show(self, page: ColumnPage) -> None:
        self.beginResetModel()
        self._cards = list(page.cards)
        self._next = page.next_after
        self.fetching = False
        self.endResetModel()

    def append(self, page: ColumnPage) -> None:
        self.fetching = False
        known = {c.id for c in self._cards}
        fresh = [c for c in page.cards if c.id not in known]
        self._next = page.next_after
        if fresh:
            first = len(self._cards)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._cards.extend(fresh)
            self.endInsertRows()

    @property
    def next_after(self) -> tuple[str, str] | None:
        return self._next

    def row_of(self, record_id: str) -> int | None:
        return next((n for n, c in enumerate(self._cards) if c.id == record_id), None)

    # -- shape ---------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._cards)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._cards):
            return None
        card = self._cards[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return card.text
        if role == Qt.ItemDataRole.ToolTipRole:
            return card.text + ("\n(not yet synced)" if card.pending else "")
        if role == CardRole:
            return card
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )

    def canFetchMore(self, parent: Index) -> bool:  # noqa: N802
        return not parent.isValid() and self._next is not None and not self.fetching

    def fetchMore(self, parent: Index) -> None:  # noqa: N802
        if self.canFetchMore(parent):
            self.fetching = True
            self.more_wanted.emit(self.stage)

    # -- drag and drop -------------------------------------------------------------------------
    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [MIME_TYPE]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:  # noqa: N802
        rows = sorted({i.row() for i in indexes if i.isValid() and i.row() < len(self._cards)})
        payload = [{"id": self._cards[r].id, "stage": self.stage} for r in rows]
        data = QMimeData()
        data.setData(MIME_TYPE, QByteArray(json.dumps(payload).encode()))
        return data

    @staticmethod
    def dragged(data: QMimeData) -> list[tuple[str, str]]:
        """(record id, from stage) of the cards in a drag (nothing when it is not ours)."""
        if not data.hasFormat(MIME_TYPE):
            return []
        try:
            payload = json.loads(bytes(data.data(MIME_TYPE).data()).decode())
        except (ValueError, UnicodeDecodeError):
            return []
        if not isinstance(payload, list):
            return []
        return [
            (str(item["id"]), str(item.get("stage") or ""))
            for item in payload
            if isinstance(item, dict) and item.get("id")
        ]

    def canDropMimeData(  # noqa: N802
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        return any(source != self.stage for _, source in self.dragged(data))

    def dropMimeData(  # noqa: N802
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        moves = [(rid, source) for rid, source in self.dragged(data) if source != self.stage]
        for record_id, source in moves:
            self.moved.emit(record_id, source, self.stage)
        # the card is not inserted here: the edit goes to the replica and the board re-reads
        return False


class BoardModel(QObject):
    """The columns of the board and their loading.  `refresh()` after a change report
    re-reads every column (coalesced); a stale read (overtaken by a newer one) is dropped."""

    loaded = Signal()  # the columns were (re)read (the pipeline's, then "No stage")
    failed = Signal(str)
    moved = Signal(str, str, str)  # from any column

    def __init__(
        self,
        replica: Replica,
        stages: Sequence[str],
        parent: QObject | None = None,
        *,
        page_size: int = 50,
        refresh_delay_ms: int = 100,
    ) -> None:
        super().__init__(parent)
        self.replica = replica
        self.page_size = page_size
        self.columns: dict[str, StageModel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0
        self._closed = False
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(refresh_delay_ms)
        self._refresh_timer.timeout.connect(self.refresh_now)
        self.set_stages(stages)

    @property
    def stages(self) -> list[str]:
        return [s for s in self.columns if s != NO_STAGE]

    def set_stages(self, stages: Sequence[str]) -> bool:
        """New columns (the tenant changed its pipeline); False when they are the same."""
        wanted = [*dict.fromkeys(s for s in stages if s), NO_STAGE]
        if wanted == list(self.columns):
            return False
        old = self.columns
        self.columns = {}
        for stage in wanted:
            model = old.pop(stage, None)
            if model is None:
                model = StageModel(stage, self)
                model.moved.connect(self.moved)
                model.more_wanted.connect(self._more_wanted)
            self.columns[stage] = model
        for model in old.values():
            model.deleteLater()
        return True

    @property
    def busy(self) -> bool:
        return self._refresh_timer.isActive() or any(not t.done() for t in self._tasks)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a timer fired while the console shuts down: nothing to read for
            work.close()
            return None
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._closed:
            return
        error = task.exception()
        if error is not None:
            log.error("board read failed", exc_info=error)
            self.failed.emit(f"Could not read the opportunities: {error}")

    def refresh(self) -> None:
        """Soon (several change reports in a row read once)."""
        if not self._closed:
            self._refresh_timer.start()

    def refresh_now(self) -> asyncio.Task[None] | None:
        self._refresh_timer.stop()
        if self._closed:
            return None
        self._generation += 1
        return self._spawn(self._reload(self._generation))

    async def _reload(self, generation: int) -> None:
        # the pipeline's columns together (a moved card leaves one and enters the other at
        # once), then "No stage": finding that none lack a stage reads every row
        limits = {s: max(self.page_size, m.rowCount()) for s, m in self.columns.items()}
        for group in ([s for s in limits if s != NO_STAGE], [NO_STAGE]):

            def read(stages: list[str] = group) -> dict[str, ColumnPage]:
                return {s: read_column(self.replica, s, None, limits[s]) for s in stages}

            pages = await asyncio.to_thread(read)
            if generation != self._generation or self._closed:
                return
            for stage, page in pages.items():
                column = self.columns.get(stage)
                if column is not None:
                    column.show(page)
            self.loaded.emit()

    def _more_wanted(self, stage: str) -> None:
        column = self.columns.get(stage)
        if column is None or self._closed:
            return
        after = column.next_after
        generation = self._generation

        async def more() -> None:
            try:
                page = await asyncio.to_thread(
                    read_column, self.replica, stage, after, self.page_size
                )
            finally:
                column.fetching = False
            if generation == self._generation and self.columns.get(stage) is column:
                column.append(page)

        self._spawn(more())

    async def wait(self) -> None:
        """Until nothing is being read (tests)."""
        if self._refresh_timer.isActive():
            self.refresh_now()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        self._closed = True
        self._refresh_timer.stop()
        for task in list(self._tasks):
            task.cancel()


__all__ = [
    "DEFAULT_STAGES",
    "MIME_TYPE",
    "NO_STAGE",
    "BoardCard",
    "BoardModel",
    "CardRole",
    "ColumnPage",
    "StageModel",
    "format_amount",
    "module_enabled",
    "opportunity_stages",
    "read_column",
    "stage_title",
]
