"""`TimelinePanel`: the record panel's timeline - a record's activities, notes, field changes
(old and new values, who, which version), deletions and restores, newest first, read from
the server (`GET /api/{entity}/{id}/timeline`).

The timeline is not in the replica, so it needs the server: it loads in the background (the
GUI never waits), only while the panel is shown, a moment after the selection settles (so
stepping through records does not send a request per row), and says plainly when it is
loading, offline, refused, empty, or when the record has not reached the server yet.  The
record view asks it to refresh when the record (or its activities and notes) changed by
sync; it reloads by itself when the connection comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Literal

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ClientError, NotFound, OfflineError, SessionExpired
from aisha_desktop.dialogs.common import describe
from aisha_desktop.models.fields import column_title, display_name
from aisha_desktop.models.timeline import KIND_COLOURS, EntryRole, TimelineEntry, TimelineModel
from aisha_desktop.views.conflicts import show_value, show_when

log = logging.getLogger("aisha.desktop.views")
State = Literal["idle", "waiting", "loading", "loaded", "empty", "unsynced", "offline", "error"]
SKIPPED_FIELDS = frozenset({"updated_at", "version", "search"})
STATE_STYLES = {
    "error": "color: #b3261e;",
    "offline": "color: #b26a00;",
    "unsynced": "color: #8a5a00;",
}
MAX_VALUE = 80  # characters of a value shown in a change line


def _short(value: Any) -> str:
    text = show_value(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def shown_field(name: str) -> bool:
    """Fields a person changed (not bookkeeping or what the server derives from them)."""
    return name not in SKIPPED_FIELDS and not name.endswith("_e164")


def change_lines(changes: Mapping[str, Any]) -> list[str]:
    """ "Title: Buyer → CFO" per changed field (custom fields one by one)."""
    lines: list[str] = []
    for name, change in changes.items():
        if not shown_field(name) or not isinstance(change, Mapping):
            continue
        old, new = change.get("old"), change.get("new")
        if (
            name == "custom_fields"
            and isinstance(old or {}, Mapping)
            and isinstance(new or {}, Mapping)
        ):
            before, after = dict(old or {}), dict(new or {})
            for key in sorted(set(before) | set(after)):
                if before.get(key) != after.get(key):
                    lines.append(
                        f"{column_title(key)}: {_short(before.get(key))} → {_short(after.get(key))}"
                    )
            continue
        lines.append(f"{column_title(name)}: {_short(old)} → {_short(new)}")
    return lines


def timeline_entries(
    items: list[Any], people: Mapping[str, str], me_id: str | None
) -> list[TimelineEntry]:
    """The server's timeline items as entries to show (unknown shapes are skipped)."""

    def who(actor: Any) -> str:
        if actor is None:
            return ""
        actor = str(actor)
        if actor == me_id:
            return "by you"
        return f"by {people.get(actor, 'another user')}"

    entries: list[TimelineEntry] = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str):
            continue
        kind, at = item["kind"], str(item.get("at") or "")
        when = show_when(at or None)
        record = item.get("record") if isinstance(item.get("record"), Mapping) else {}
        assert isinstance(record, Mapping)
        details: list[str] = []
        meta = [when]
        if kind == "activity":
            activity = str(record.get("type") or "activity").capitalize()
            title = f"{activity}: {display_name('activities', record)}"
            due = str(record.get("due_date") or "")[:10]
            status = str(record.get("status") or "")
            details.append("  ·  ".join(p for p in (f"due {due}" if due else "", status) if p))
        elif kind == "note":
            title = f"Note: {record.get('title') or 'untitled'}"
            content = " ".join(str(record.get("content") or "").split())
            details.append(content if len(content) <= 160 else content[:159] + "…")
        elif kind == "change":
            lines = change_lines(item.get("changes") or {})
            names = [column_title(n) for n in (item.get("changes") or {}) if shown_field(n)]
            title = f"Changed {', '.join(names).lower()}" if names else "Changed"
            details.extend(lines)
        elif kind in ("created", "deleted", "restored"):
            title = kind.capitalize()
        else:
            title = kind.replace("_", " ").capitalize()
        meta.append(who(item.get("actor_id")))
        if isinstance(item.get("version"), int):
            meta.append(f"version {item['version']}")
        entries.append(
            TimelineEntry(
                id=str(item.get("id") or f"{kind}-{at}"),
                kind=kind,
                at=at,
                title=title,
                meta="  ·  ".join(p for p in meta if p),
                details=tuple(d for d in details if d),
            )
        )
    return entries


class EntryDelegate(QStyledItemDelegate):
    """Draws an entry: a bar coloured by kind, the title in bold, details, then when/who."""

    PAD = 6
    BAR = 4

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont]:
        bold = QFont(option.font)
        bold.setBold(True)
        small = QFont(option.font)
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.9))
        return bold, small

    def _lines(
        self, entry: TimelineEntry, option: QStyleOptionViewItem, width: int
    ) -> list[tuple[QFont, str, int]]:
        bold, small = self._fonts(option)
        normal = QFont(option.font)
        out: list[tuple[QFont, str, int]] = []
        for font, text in ((bold, entry.title), *((normal, d) for d in entry.details),
                           (small, entry.meta)):  # fmt: skip
            rect = QFontMetrics(font).boundingRect(
                QRect(0, 0, max(40, width), 10_000), int(Qt.TextFlag.TextWordWrap), text
            )
            out.append((font, text, rect.height()))
        return out

    def sizeHint(  # noqa: N802
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        entry = index.data(EntryRole)
        if not isinstance(entry, TimelineEntry):
            return super().sizeHint(option, index)
        width = option.rect.width() or 300
        text_width = width - self.BAR - 3 * self.PAD
        height = sum(h for _, _, h in self._lines(entry, option, text_width))
        return QSize(width, height + 2 * self.PAD + 2)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        entry = index.data(EntryRole)
        if not isinstance(entry, TimelineEntry):
            super().paint(painter, option, index)
            return
        rect: QRect = option.rect
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.fillRect(rect, QColor("#e8f0fe") if selected else QColor("white"))
        painter.setPen(QColor("#e3e7ec"))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        colour = QColor(KIND_COLOURS.get(entry.kind, "#888888"))
        painter.fillRect(
            QRect(rect.left() + self.PAD, rect.top() + self.PAD, self.BAR,
                  rect.height() - 2 * self.PAD),
            colour,
        )  # fmt: skip
        left = rect.left() + 2 * self.PAD + self.BAR
        width = rect.width() - self.BAR - 3 * self.PAD
        top = rect.top() + self.PAD
        lines = self._lines(entry, option, width)
        for number, (font, text, height) in enumerate(lines):
            painter.setFont(font)
            if number == 0:
                painter.setPen(
                    colour if entry.kind in ("deleted", "restored") else QColor("#1f2328")
                )
            elif number == len(lines) - 1:
                painter.setPen(QColor("#6b7280"))
            else:
                painter.setPen(QColor("#30363d"))
            painter.drawText(QRect(left, top, width, height), int(Qt.TextFlag.TextWordWrap), text)
            top += height
        painter.restore()


class TimelinePanel(QWidget):
    """Shows the timeline of one record at a time (`show_record`)."""

    message = Signal(str)

    def __init__(
        self,
        api: ApiClient,
        parent: QWidget | None = None,
        *,
        page_size: int = 50,
        delay_ms: int = 250,
    ) -> None:
        super().__init__(parent)
        self.api = api
        self.page_size = page_size
        self.model = TimelineModel(self)
        self.state: State = "idle"
        self.entity: str | None = None
        self.record_id: str | None = None
        self._stale = False  # the shown record changed while the panel was hidden
        self._more = False
        self._next_cursor: str | None = None
        self._people: dict[str, str] | None = None
        self._offline = False  # the sync engine says the server is unreachable
        self._task: asyncio.Task[None] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._start)

        self.status = QLabel()
        self.status.setObjectName("timelineStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # server messages
        self.retry_button = QPushButton("Retry")
        self.retry_button.clicked.connect(self.reload)
        self.retry_button.hide()
        self.older_button = QPushButton("Show older")
        self.older_button.clicked.connect(self.load_older)
        self.older_button.hide()
        self.list = QListView()
        self.list.setObjectName("timeline")
        self.list.setModel(self.model)
        self.list.setItemDelegate(EntryDelegate(self.list))
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setWordWrap(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setStyleSheet("QListView#timeline { border: 1px solid #d9dee5; }")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.status, 1)
        row.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.older_button, 0, Qt.AlignmentFlag.AlignRight)
        self._set_state("idle")

    # -- what is shown -------------------------------------------------------------------------
    def show_record(
        self, entity: str | None, record_id: str | None, *, on_server: bool = True
    ) -> None:
        """Show the timeline of this record (None: no record).  `on_server` False: created
        here and not synced yet, so the server has no timeline for it."""
        changed = (entity, record_id) != (self.entity, self.record_id)
        self.entity, self.record_id = entity, record_id
        if changed:
            self._cancel()
            self.model.replace([])
            self._more = False
            self._next_cursor = None
            self.state = "idle"
        if record_id is None or entity is None:
            self._set_state("idle")
            return
        if not on_server:
            self._cancel()
            self._set_state("unsynced")
            return
        if changed or self.state in ("idle", "unsynced"):
            self.refresh()

    def refresh(self) -> None:
        """Read the timeline again soon (the record or its activities changed, or it came
        back online); while hidden, when next shown."""
        if self.record_id is None or self.state == "unsynced":
            return
        if not self.isVisible():
            self._stale = True
            return
        if self.state not in ("loaded", "empty"):
            self._set_state("waiting")
        self._timer.start()

    def reload(self) -> None:
        """At once (the Retry button)."""
        self._timer.stop()
        self._start()

    def connection_changed(self, online: bool, *, offline: bool = False) -> None:
        """`offline`: known unreachable (no request is sent; the state says so at once)."""
        self._offline = offline and not online
        if online and self.state == "offline":
            self.refresh()
        elif self._offline and self.state in ("waiting", "loading"):
            self._start()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self._stale = False
            self.refresh()

    # -- loading ---------------------------------------------------------------------------------
    def _cancel(self) -> None:
        self._timer.stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def _start(self, *, older: bool = False) -> None:
        if self.record_id is None or self.entity is None:
            return
        self._cancel()
        if self._offline and not older:
            self._set_state("offline")
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a timer fired while the console shuts down
            return
        if not older:
            self._set_state("loading")
        self._task = asyncio.ensure_future(self._load(self.entity, self.record_id, older))
        self._task.add_done_callback(self._done)

    def load_older(self) -> None:
        self._start(older=True)

    @property
    def loading(self) -> bool:
        return self._timer.isActive() or (self._task is not None and not self._task.done())

    async def wait(self) -> None:
        """Until nothing is pending or loading (tests)."""
        while self.loading:
            if self._timer.isActive():
                self._timer.stop()
                self._start()
            task = self._task
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            await asyncio.sleep(0)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("timeline load failed", exc_info=task.exception())
            self._set_state("error", describe(task.exception() or Exception()))

    async def _load(self, entity: str, record_id: str, older: bool) -> None:
        cursor = self._next_cursor if older else None
        try:
            page = await self.api.timeline(entity, record_id, limit=self.page_size, cursor=cursor)
            people = await self._people_names()
        except OfflineError:
            self._set_state("offline")
            return
        except SessionExpired:
            self._set_state("error", "Signed out: sign in again to see the timeline.")
            return
        except NotFound:
            self._set_state(
                "error", "The server does not have this record (deleted, or not yours to see)."
            )
            return
        except ClientError as exc:
            self._set_state("error", describe(exc))
            return
        if (entity, record_id) != (self.entity, self.record_id):
            return  # another record was selected meanwhile
        session = self.api.session
        fresh = timeline_entries(page.items, people, session.user.id if session else None)
        self._next_cursor = page.next_cursor
        self._more = page.next_cursor is not None
        if older:
            self.model.extend(fresh)
        else:
            self.model.replace(fresh)
        self._set_state("loaded" if self.model.rowCount() else "empty")

    async def _people_names(self) -> dict[str, str]:
        """User id -> name, once (the users list is for administrators; others see their
        own changes as "you" and anyone else's as "another user")."""
        if self._people is None:
            names: dict[str, str] = {}
            try:
                users = await self.api.request("GET", "/api/users", params={"limit": 500})
            except OfflineError:
                raise
            except ClientError:
                users = []
            for user in users if isinstance(users, list) else []:
                if isinstance(user, Mapping) and user.get("id"):
                    name = display_name("contacts", user)
                    names[str(user["id"])] = name
            self._people = names
        return self._people

    # -- state ---------------------------------------------------------------------------------
    def _set_state(self, state: State, error: str = "") -> None:
        self.state = state
        texts = {
            "idle": "Select a record to see its timeline.",
            "waiting": "Loading the timeline…",
            "loading": "Loading the timeline…",
            "loaded": "",
            "empty": "Nothing has happened to this record yet.",
            "unsynced": "Not on the server yet: the timeline shows once this record is synced.",
            "offline": "Offline: the timeline comes from the server and shows again once it "
            "is reachable.",
            "error": f"Could not load the timeline: {error}",
        }
        self.status.setText(texts[state])
        self.status.setStyleSheet(STATE_STYLES.get(state, "color: #555;"))
        self.status.setVisible(bool(texts[state]))
        self.retry_button.setVisible(state in ("offline", "error"))
        self.list.setVisible(
            state in ("loaded", "loading", "waiting") and self.model.rowCount() > 0
        )
        self.older_button.setVisible(state == "loaded" and self._more)
        if state == "error":
            self.message.emit(texts[state])


__all__ = ["EntryDelegate", "TimelinePanel", "change_lines", "timeline_entries"]
