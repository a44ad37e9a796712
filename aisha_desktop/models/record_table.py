"""`RecordTableModel`: a virtualised table over one entity of the replica.

Rows are never all in memory.  Without a filter or search the model knows the total
(`Replica.count`) and reads the rows a view asks for in pages of `page_size`, keeping a
bounded number of pages.  A page is found by keyset from the nearest page already read
(`after` = that page's last row), or, nearer the end, by reading the reverse order from the
end - so a view scrolled or dragged to the bottom never makes SQLite skip a million rows.
With a filter or a search the total is not known (counting would read every row on each
keystroke): the model grows page by page as the view scrolls (`canFetchMore`/`fetchMore`).

Sorting is by indexed columns only (delegated to the replica's query); search text is
applied after `search_delay_ms` of quiet (typing does not query per keystroke); a change
reported for the entity refreshes the model after `refresh_delay_ms` (several reports in a
row refresh once).  `data()` reads memory only once a page is loaded; loading one is a
single indexed query of about a millisecond.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from aisha_desktop.models.fields import (
    DEFAULT_COLUMNS,
    available_columns,
    column_title,
    filterable_columns,
    sortable_columns,
    stage_title,
)
from aisha_desktop.replica import QueryPage, Replica, ReplicaRow

log = logging.getLogger("aisha.desktop.models")
Index = QModelIndex | QPersistentModelIndex
RecordRole = Qt.ItemDataRole.UserRole + 1  # the ReplicaRow of a row
IdRole = Qt.ItemDataRole.UserRole + 2
PENDING_BRUSH = QBrush(QColor("#8a5a00"))
ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    text = str(value)
    # timestamps: the date and minutes are what a list needs
    if len(text) >= 16 and text[4] == "-" and text[10] == "T":
        return text[:10] + " " + text[11:16]
    return text


class RecordTableModel(QAbstractTableModel):
    # emitted after every (re)load: the views update counts and keep the selection
    reloaded = Signal()
    failed = Signal(str)  # a read failed (the message)
    # the worker's results wait in a queue; this argument-less signal (queued to the GUI
    # thread) says to take them: Python objects are not passed through Qt across threads
    _delivered = Signal()

    def __init__(
        self,
        replica: Replica,
        entity: str,
        parent: QObject | None = None,
        *,
        page_size: int = 200,
        max_pages: int = 64,
        search_delay_ms: int = 150,
        refresh_delay_ms: int = 100,
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.replica = replica
        self.entity = entity
        self.page_size = page_size
        self.max_pages = max_pages
        self._available = available_columns(entity)
        self._columns: list[str] = list(columns or DEFAULT_COLUMNS[entity])
        self._sortable = sortable_columns(entity)
        self._filterable = filterable_columns(entity)
        self._sort = "-updated_at"
        self._filters: dict[str, Any] = {}
        self._search = ""
        self._pending_search = ""
        # windowed mode (total known): page number -> rows; page -> keyset after its last row
        self._total: int | None = None
        self._pages: OrderedDict[int, list[ReplicaRow]] = OrderedDict()
        self._anchors: dict[int, tuple[str, str]] = {}
        # growing mode (filter or search): the rows read so far and where the next page starts
        self._rows: list[ReplicaRow] = []
        self._next: tuple[str, str] | None = None
        self.queries = 0  # replica reads made (tests and benchmarks look at it)
        # pages further than this many rows from a known position are read in the worker
        self.sync_skip_limit = 20 * page_size
        self._loading: set[int] = set()
        self._fetching = False
        self._generation = 0
        self._jobs = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aisha-rows")
        self._closed = False
        self._results: queue.SimpleQueue[tuple[str, int, tuple[Any, ...], Any, Any]] = (
            queue.SimpleQueue()
        )
        self._delivered.connect(self._take_results, Qt.ConnectionType.QueuedConnection)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(search_delay_ms)
        self._search_timer.timeout.connect(self._apply_search)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(refresh_delay_ms)
        self._refresh_timer.timeout.connect(self.refresh)
        # the first page now (a view paints at once), the total in the worker
        self._install(*self._read_first(self._params(), 0, False))
        self._after_install()

    def close(self) -> None:
        """Stop the worker (waits for a read in flight); later refreshes are ignored."""
        self._closed = True
        self._generation += 1
        self._refresh_timer.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- shape -----------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        if parent.isValid():
            return 0
        return self._total if self._total is not None else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._columns)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self._columns):
            name = self._columns[section]
            if role == Qt.ItemDataRole.DisplayRole:
                return column_title(name)
            if role == Qt.ItemDataRole.ToolTipRole:
                return None if name in self._sortable else "Not sortable (not indexed)"
            if role == Qt.ItemDataRole.UserRole:
                return name
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.column() >= len(self._columns):
            return None
        record = self.record_at(index.row())
        if record is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            name = self._columns[index.column()]
            value = record.data.get(name)
            if name == "stage" and isinstance(value, str) and value:
                return stage_title(value)  # as the board and the form show it
            return cell_text(value)
        if role == RecordRole:
            return record
        if role == IdRole:
            return record.id
        if role == Qt.ItemDataRole.ForegroundRole and record.pending:
            return PENDING_BRUSH  # edits not yet confirmed by the server
        if role == Qt.ItemDataRole.FontRole and record.pending:
            font = QFont()
            font.setItalic(True)
            return font
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        # Qt asks this of every cell a selection covers: a constant, no enum arithmetic
        return ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    # -- growing mode --------------------------------------------------------------------------
    def canFetchMore(self, parent: Index) -> bool:  # noqa: N802
        return (
            not parent.isValid()
            and self._total is None
            and self._next is not None
            and not self._fetching
        )

    def fetchMore(self, parent: Index) -> None:  # noqa: N802
        """The next page is read in the worker (a search that matches little may read the
        whole table to find it); rows are inserted when it arrives."""
        if not self.canFetchMore(parent):
            return
        self._fetching = True
        self._submit("more", lambda p, a: self._query(p, after=a), self._params(), self._next)

    # -- what is shown -------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def available(self) -> tuple[str, ...]:
        return self._available

    @property
    def sort_key(self) -> str:
        return self._sort

    @property
    def search_text(self) -> str:
        return self._search

    @property
    def filters(self) -> dict[str, Any]:
        return dict(self._filters)

    @property
    def windowed(self) -> bool:
        return self._total is not None

    def set_columns(self, names: Iterable[str]) -> None:
        chosen = [n for n in names if n in self._available]
        if not chosen:
            raise ValueError("at least one column must stay visible")
        if chosen == self._columns:
            return
        self.beginResetModel()
        self._columns = chosen
        self.endResetModel()

    def is_sortable(self, name: str) -> bool:
        return name in self._sortable

    def set_sort(self, name: str, descending: bool = False) -> None:
        if name not in self._sortable:
            raise ValueError(f"{self.entity} cannot be sorted by {name!r}")
        key = f"-{name}" if descending else name
        if key != self._sort:
            self._sort = key
            self._reset()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Header clicks: only indexed columns sort; others leave the order as it is."""
        if 0 <= column < len(self._columns) and self._columns[column] in self._sortable:
            self.set_sort(self._columns[column], order == Qt.SortOrder.DescendingOrder)

    def set_filter(self, name: str, value: Any) -> None:
        """Show rows whose `name` equals `value` (a list: any of); None or "" drops it."""
        if name not in self._filterable:
            raise ValueError(f"{self.entity} cannot be filtered by {name!r}")
        if value is None or value == "":
            if self._filters.pop(name, None) is None:
                return
        elif self._filters.get(name) == value:
            return
        else:
            self._filters[name] = value
        self._reset()

    def set_search(self, text: str) -> None:
        """Search as you type: applied once typing paused for `search_delay_ms`."""
        self._pending_search = text
        self._search_timer.start()

    def search_now(self, text: str) -> None:
        self._search_timer.stop()
        self._pending_search = text
        self._apply_search()

    def _apply_search(self) -> None:
        text = " ".join(self._pending_search.split())
        if text != self._search:
            self._search = text
            self._reset()

    # -- rows ----------------------------------------------------------------------------
    def record_at(self, row: int) -> ReplicaRow | None:
        if row < 0:
            return None
        if self._total is None:
            return self._rows[row] if row < len(self._rows) else None
        if row >= self._total:
            return None
        number, offset = divmod(row, self.page_size)
        page = self._pages.get(number)
        if page is None:
            page = self._load_page(number)
            if page is None:
                return None  # on its way
        else:
            self._pages.move_to_end(number)
        return page[offset] if offset < len(page) else None

    def record_id(self, row: int) -> str | None:
        record = self.record_at(row)
        return None if record is None else record.id

    def row_of(self, record_id: str) -> int | None:
        """The row of a record among those loaded (None: not loaded or not shown)."""
        if self._total is None:
            for row, record in enumerate(self._rows):
                if record.id == record_id:
                    return row
            return None
        for number, page in self._pages.items():
            for offset, record in enumerate(page):
                if record.id == record_id:
                    return number * self.page_size + offset
        return None

    # -- change refresh --------------------------------------------------------------------
    def entities_changed(self, entities: frozenset[str] | set[str]) -> None:
        """A sync or edit changed rows of these entities: refresh soon (coalesced)."""
        if self.entity in entities:
            self._refresh_timer.start()

    @property
    def busy(self) -> bool:
        """Reads are under way in the worker (tests wait for this to clear)."""
        return self._jobs > 0

    def refresh(self) -> None:
        """Read again in the worker; the rows keep their positions where possible (so a
        view keeps its scroll position and selection)."""
        self._refresh_timer.stop()
        self._generation += 1
        keep = len(self._rows) if self._total is None else 0
        self._submit("refresh", self._read_first, self._params(), keep, self._total is not None)

    def _reset(self) -> None:
        """Sort, filter or search changed: the old rows stay until the new ones are read."""
        self._generation += 1
        self._submit("reset", self._read_first, self._params(), 0, False)

    def _params(self) -> tuple[str, dict[str, Any], str]:
        return self._sort, dict(self._filters), self._search

    def _read_first(
        self, params: tuple[str, dict[str, Any], str], keep: int, count: bool
    ) -> tuple[int | None, list[ReplicaRow], tuple[str, str] | None]:
        """(total, rows, next): the first rows (at least `keep`), and the total when
        `count` and nothing narrows the rows (worker thread)."""
        _, filters, search = params
        if count and not filters and not search:
            self.queries += 1
            return self.replica.count(self.entity), [], None
        rows: list[ReplicaRow] = []
        after: tuple[str, str] | None = None
        while True:
            page = self._query(params, after=after)
            rows.extend(page.rows)
            after = page.next_after
            if after is None or len(rows) >= max(keep, 1):
                return None, rows, after

    def _count(self, params: tuple[str, dict[str, Any], str]) -> int | None:
        _, filters, search = params
        if filters or search:
            return None
        self.queries += 1
        return self.replica.count(self.entity)

    # -- the worker ------------------------------------------------------------------------
    def _submit(self, kind: str, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed:  # a change report arriving after the view closed
            return
        generation = self._generation
        self._jobs += 1

        def work() -> None:
            try:
                result, error = fn(*args), None
            except Exception as exc:  # reported on the GUI thread
                result, error = None, exc
            self._results.put((kind, generation, args, result, error))
            with contextlib.suppress(RuntimeError):  # the model is gone
                self._delivered.emit()

        self._executor.submit(work)

    def _take_results(self) -> None:
        while True:
            try:
                payload = self._results.get_nowait()
            except queue.Empty:
                return
            self._on_delivered(payload)

    def _on_delivered(self, payload: tuple[str, int, tuple[Any, ...], Any, Any]) -> None:
        kind, generation, args, result, error = payload
        self._jobs -= 1
        if generation != self._generation:
            return  # asked for under a sort, filter or search no longer shown
        if error is not None:
            log.warning("reading %s failed: %s", self.entity, error)
            self.failed.emit(str(error))
            return
        if kind == "reset":
            self.beginResetModel()
            self._install(*result)
            self.endResetModel()
            self._after_install()
        elif kind == "refresh":
            self._apply_refresh(*result)
        elif kind == "count":
            self._become_windowed(result)
        elif kind == "more":
            self._fetching = False
            self._append(result)
        elif kind == "page":
            number = args[2]
            self._loading.discard(number)
            self._store_page(number, result)
            first = number * self.page_size
            last = min(first + len(result), self.rowCount()) - 1
            if last >= first and self._columns:
                self.dataChanged.emit(
                    self.index(first, 0), self.index(last, len(self._columns) - 1)
                )

    def _after_install(self) -> None:
        self.reloaded.emit()
        if self._total is None and not self._filters and not self._search:
            self._submit("count", self._count, self._params())

    def _apply_refresh(
        self, total: int | None, rows: list[ReplicaRow], nxt: tuple[str, str] | None
    ) -> None:
        before = self.rowCount()
        after = total if total is not None else len(rows)
        if after > before:
            self.beginInsertRows(QModelIndex(), before, after - 1)
            self._install(total, rows, nxt)
            self.endInsertRows()
        elif after < before:
            self.beginRemoveRows(QModelIndex(), after, before - 1)
            self._install(total, rows, nxt)
            self.endRemoveRows()
        else:
            self._install(total, rows, nxt)
        if after and self._columns:
            self.dataChanged.emit(self.index(0, 0), self.index(after - 1, len(self._columns) - 1))
        self._after_install()

    def _become_windowed(self, total: int | None) -> None:
        """The count arrived: the table takes its full height; the rows read so far become
        the first pages."""
        if total is None or self._total is not None:
            return
        rows, before = self._rows, len(self._rows)
        self._pages.clear()
        self._anchors.clear()
        for number in range(0, len(rows) // self.page_size + 1):
            chunk = rows[number * self.page_size : (number + 1) * self.page_size]
            if chunk:
                self._store_page(number, chunk)
        if total > before:
            self.beginInsertRows(QModelIndex(), before, total - 1)
            self._total, self._rows, self._next = total, [], None
            self.endInsertRows()
        elif total < before:
            self.beginRemoveRows(QModelIndex(), total, before - 1)
            self._total, self._rows, self._next = total, [], None
            self.endRemoveRows()
        else:
            self._total, self._rows, self._next = total, [], None
        self.reloaded.emit()

    def _append(self, page: QueryPage) -> None:
        self._next = page.next_after
        if page.rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(page.rows) - 1)
            self._rows.extend(page.rows)
            self.endInsertRows()
        self.reloaded.emit()

    def _install(
        self, total: int | None, rows: list[ReplicaRow], nxt: tuple[str, str] | None
    ) -> None:
        self._total = total
        self._rows = rows
        self._next = nxt
        self._pages.clear()
        self._anchors.clear()
        self._loading.clear()
        self._fetching = False

    def _query(
        self,
        params: tuple[str, dict[str, Any], str],
        *,
        after: tuple[str, str] | None = None,
        offset: int = 0,
        reverse: bool = False,
    ) -> QueryPage:
        sort, filters, search = params
        if reverse:
            sort = sort[1:] if sort.startswith("-") else f"-{sort}"
        self.queries += 1
        return self.replica.query(
            self.entity,
            sort=sort,
            filters=filters,
            search=search or None,
            limit=self.page_size,
            offset=offset,
            after=after,
        )

    def _plan(self, number: int) -> tuple[tuple[str, str] | None, int, bool, int]:
        """How to read page `number`: (after, offset, reverse, rows skipped)."""
        assert self._total is not None
        start = number * self.page_size
        from_end = max(0, self._total - start - self.page_size)
        known = [n for n in self._anchors if n < number]
        nearest = max(known) if known else None
        skip = start if nearest is None else (number - nearest - 1) * self.page_size
        if from_end < skip:
            return None, from_end, True, from_end
        return (None if nearest is None else self._anchors[nearest]), skip, False, skip

    def _read_page(
        self,
        params: tuple[str, dict[str, Any], str],
        total: int,
        number: int,
        plan: tuple[tuple[str, str] | None, int, bool, int],
    ) -> list[ReplicaRow]:
        after, offset, reverse, _ = plan
        page = self._query(params, after=after, offset=offset, reverse=reverse)
        if reverse:
            size = min(self.page_size, total - number * self.page_size)
            return list(reversed(page.rows[:size]))
        return page.rows

    def _load_page(self, number: int) -> list[ReplicaRow] | None:
        """A page near one already read (or near either end) is read now: one indexed query
        of about a millisecond.  One that would make SQLite skip many rows (a scroll bar
        dragged to the middle) is read in the worker; its cells fill in when it arrives."""
        assert self._total is not None
        plan = self._plan(number)
        if plan[3] <= self.sync_skip_limit:
            rows = self._read_page(self._params(), self._total, number, plan)
            self._store_page(number, rows)
            return rows
        if number not in self._loading:
            self._loading.add(number)
            self._submit("page", self._read_page, self._params(), self._total, number, plan)
        return None

    def _store_page(self, number: int, rows: list[ReplicaRow]) -> None:
        if rows and len(rows) == self.page_size:
            last = rows[-1]
            self._anchors[number] = (self._sort_value(last), last.id)
        self._pages[number] = rows
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)

    def _sort_value(self, row: ReplicaRow) -> str:
        """The replica's indexed form of the sort column (what `after` compares)."""
        value = row.data.get(self._sort.lstrip("-"))
        if value is None:
            return ""
        return value if isinstance(value, str) else str(value)


def visible_values(model: RecordTableModel, rows: Iterable[int]) -> list[Mapping[str, Any]]:
    """The records of some rows (tests and exports of a selection)."""
    found = (model.record_at(r) for r in rows)
    return [r.data for r in found if r is not None]
