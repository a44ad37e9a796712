"""`ConflictInbox`: the open sync conflicts and rejected edits of this replica, one card each.

A conflict card shows the record (named from the replica when it holds it), the field, the
server's value and mine, and who changed it on the server and when; "Keep mine" and "Take
theirs" resolve it on the server through `SyncEngine.resolve_conflict` (take_mine /
keep_server).  A rejection card shows the refused edit and the server's reason; "Dismiss"
drops it.  The list is re-read from the replica whenever the sync engine reports a state
change or changed rows (through the window's one `SyncBridge`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QMouseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.dialogs.common import banner, describe, show_banner
from aisha_desktop.models.fields import column_title, display_name
from aisha_desktop.models.sync_bridge import SyncBridge
from aisha_desktop.models.wording import counted
from aisha_desktop.replica.store import Rejection, StoredConflict
from aisha_desktop.views.tasks import TaskKeeper

EMPTY_TEXT = "No conflicts and no rejected edits: everything you changed reached the server."
CARD_STYLE = (
    "QFrame#card { background: white; border: 1px solid #d9dee5; border-radius: 6px; }"
    "QLabel#theirs { background: #eef3fb; border-radius: 4px; padding: 4px 6px; }"
    "QLabel#mine { background: #fff4e5; border-radius: 4px; padding: 4px 6px; }"
)


def show_value(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def show_when(text: str | None) -> str:
    if not text:
        return "at an unknown time"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.astimezone().strftime("on %Y-%m-%d at %H:%M")


def rejection_reason(rejection: Rejection) -> str:
    """The server's message, with its per-field messages when it gave them."""
    reason = rejection.message or rejection.code
    details = rejection.details if isinstance(rejection.details, list) else []
    fields = [
        f"{column_title(str(d['field']))}: {d['message']}"
        for d in details
        if isinstance(d, dict) and d.get("field") and d.get("message")
    ]
    return f"{reason} ({'; '.join(fields)})" if fields else reason


class InboxLink(QLabel):
    """The status bar's conflict count: clicking it opens the inbox."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Open the conflict inbox")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class ConflictInbox(QDialog):
    """Lists and settles conflicts and rejections; `people` names user ids (who changed a
    field on the server), `me_id` is the signed-in user's id."""

    def __init__(
        self,
        bridge: SyncBridge,
        parent: QWidget | None = None,
        *,
        people: Mapping[str, str] | None = None,
        me_id: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Conflicts")
        self.resize(820, 560)
        self.bridge = bridge
        self.engine = bridge.engine
        self.replica = bridge.engine.replica
        self.people = dict(people or {})
        self.me_id = me_id
        self.tasks = TaskKeeper()
        self.conflict_buttons: dict[str, tuple[QPushButton, QPushButton]] = {}
        self.rejection_buttons: dict[str, QPushButton] = {}

        self.summary = QLabel()
        self.summary.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.error = banner()
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setObjectName("empty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #5f6b7a; font-size: 14px; padding: 40px;")
        self.cards = QWidget()
        self.cards.setStyleSheet(CARD_STYLE)
        self.cards_layout = QVBoxLayout(self.cards)
        self.cards_layout.setSpacing(10)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.cards)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        self.list_area = scroll

        bridge.state_changed.connect(self._state_changed)
        bridge.entities_changed.connect(self._entities_changed)
        self._shown_counts: tuple[int, int] | None = None
        self.refresh()

    # -- reading -------------------------------------------------------------------------
    def _state_changed(self, state: Any) -> None:
        if (state.conflicts, state.rejections) != self._shown_counts:
            self.refresh()

    def _entities_changed(self, _entities: frozenset[str]) -> None:
        self.refresh()  # record names (and conflicts resolved elsewhere) may have changed

    def refresh(self) -> None:
        conflicts = self.replica.conflicts()
        rejections = self.replica.rejections()
        self._shown_counts = (len(conflicts), len(rejections))
        while self.cards_layout.count():
            item = self.cards_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.conflict_buttons.clear()
        self.rejection_buttons.clear()
        for conflict in conflicts:
            self.cards_layout.addWidget(self._conflict_card(conflict))
        for rejection in rejections:
            self.cards_layout.addWidget(self._rejection_card(rejection))
        self.cards_layout.addStretch(1)
        nothing = not conflicts and not rejections
        self.empty.setVisible(nothing)
        self.list_area.setVisible(not nothing)
        parts = []
        if conflicts:
            parts.append(f"{counted(len(conflicts), 'conflict')} to decide")
        if rejections:
            parts.append(f"{counted(len(rejections), 'edit')} the server refused")
        self.summary.setText(", ".join(parts) if parts else "All clear")

    def record_name(self, entity: str, record_id: str) -> str:
        row = self.replica.get(entity, record_id)
        if row is None:
            return f"record {record_id[:8]}"
        return display_name(entity, row.data)

    def who(self, user_id: str | None) -> str:
        if not user_id:
            return "someone"
        if user_id == self.me_id:
            return "you (another device)"
        return self.people.get(user_id, f"user {user_id[:8]}")

    @property
    def shown_conflicts(self) -> list[str]:
        return list(self.conflict_buttons)

    @property
    def shown_rejections(self) -> list[str]:
        return list(self.rejection_buttons)

    # -- cards ---------------------------------------------------------------------------
    def _card(self, title: str) -> tuple[QFrame, QGridLayout]:
        card = QFrame()
        card.setObjectName("card")
        grid = QGridLayout(card)
        grid.setColumnStretch(1, 1)
        heading = QLabel(title)
        heading.setStyleSheet("font-weight: 600; font-size: 14px;")
        heading.setTextFormat(Qt.TextFormat.PlainText)
        grid.addWidget(heading, 0, 0, 1, 3)
        return card, grid

    def _conflict_card(self, conflict: StoredConflict) -> QFrame:
        entity = conflict.entity
        name = self.record_name(entity, conflict.record_id)
        deleted = conflict.field == "_deleted"
        field = "the whole record" if deleted else column_title(conflict.field)
        card, grid = self._card(f"{entity.rstrip('s').capitalize()} “{name}” — {field}")
        theirs_text = "deleted" if deleted else show_value(conflict.server_value)
        mine_text = show_value(conflict.client_value)
        rows = (
            ("Server", theirs_text, "theirs"),
            ("Mine", mine_text, "mine"),
        )
        for row, (caption, text, style) in enumerate(rows, start=1):
            grid.addWidget(QLabel(caption), row, 0)
            value = QLabel(text)
            value.setObjectName(style)
            value.setTextFormat(Qt.TextFormat.PlainText)
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(value, row, 1, 1, 2)
        changed = QLabel(
            f"Changed on the server by {self.who(conflict.server_changed_by)} "
            f"{show_when(conflict.server_changed_at)}"
        )
        changed.setStyleSheet("color: #5f6b7a;")
        grid.addWidget(changed, 3, 0, 1, 2)
        mine = QPushButton("Keep mine")
        theirs = QPushButton("Take theirs")
        mine.setToolTip("Write my value to the server")
        theirs.setToolTip("Keep the server's value and drop mine")
        mine.clicked.connect(lambda: self.settle(conflict.id, "take_mine"))
        theirs.clicked.connect(lambda: self.settle(conflict.id, "keep_server"))
        actions = QHBoxLayout()
        actions.addWidget(mine)
        actions.addWidget(theirs)
        grid.addLayout(actions, 3, 2, Qt.AlignmentFlag.AlignRight)
        self.conflict_buttons[conflict.id] = (mine, theirs)
        return card

    def _rejection_card(self, rejection: Rejection) -> QFrame:
        name = self.record_name(rejection.entity, rejection.record_id)
        verb = {"create": "Creating", "update": "Editing", "delete": "Deleting"}.get(
            rejection.op, rejection.op.capitalize()
        )
        card, grid = self._card(f"{verb} {rejection.entity.rstrip('s')} “{name}” was refused")
        reason = QLabel(rejection_reason(rejection))
        reason.setStyleSheet("color: #b3261e;")
        reason.setWordWrap(True)
        reason.setTextFormat(Qt.TextFormat.PlainText)
        grid.addWidget(QLabel("Reason"), 1, 0)
        grid.addWidget(reason, 1, 1, 1, 2)
        fields = ", ".join(
            f"{column_title(k)}: {show_value(v)}" for k, v in rejection.fields.items()
        )
        if fields:
            edit = QLabel(fields)
            edit.setWordWrap(True)
            edit.setTextFormat(Qt.TextFormat.PlainText)
            grid.addWidget(QLabel("My edit"), 2, 0)
            grid.addWidget(edit, 2, 1, 1, 2)
        dismiss = QPushButton("Dismiss")
        dismiss.setToolTip("Forget this refused edit")
        dismiss.clicked.connect(lambda: self.dismiss(rejection.mutation_id))
        grid.addWidget(dismiss, 3, 2, Qt.AlignmentFlag.AlignRight)
        self.rejection_buttons[rejection.mutation_id] = dismiss
        return card

    # -- acting --------------------------------------------------------------------------
    def settle(self, conflict_id: str, resolution: str) -> None:
        for button in self.conflict_buttons.get(conflict_id, ()):
            button.setEnabled(False)
        self.tasks.spawn(self.resolve(conflict_id, resolution))

    def dismiss(self, mutation_id: str) -> None:
        button = self.rejection_buttons.get(mutation_id)
        if button is not None:
            button.setEnabled(False)
        self.tasks.spawn(self.forget(mutation_id))

    async def resolve(self, conflict_id: str, resolution: str) -> bool:
        """Resolve on the server; a failure is shown in the inbox (the card stays)."""
        try:
            await self.engine.resolve_conflict(conflict_id, resolution)
        except Exception as exc:
            show_banner(self.error, f"Could not resolve the conflict: {describe(exc)}")
            for button in self.conflict_buttons.get(conflict_id, ()):
                button.setEnabled(True)
            return False
        show_banner(self.error, "")
        self.refresh()
        return True

    async def forget(self, mutation_id: str) -> None:
        await self.engine.dismiss_rejection(mutation_id)
        self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.tasks.cancel()
        super().closeEvent(event)


__all__ = ["EMPTY_TEXT", "ConflictInbox", "InboxLink"]
