"""`BoardView`: the opportunities as a board, one column per pipeline stage of the tenant
(module settings; the guide's default stages when unset), plus "No stage" for those without.

Each column is a `QListView` over a `StageModel` that reads its cards page by page as it
scrolls, so 100,000 opportunities do not freeze the window.  Dragging a card to another
column changes its stage: the edit goes through the sync engine (the replica shows it at
once, the outbox carries it to the server), exactly as an edit in the record panel.  Moves
the board cannot make (to a stage the pipeline does not have, of a card deleted meanwhile)
are refused with a message.  A card's context menu moves it without dragging."""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QScrollArea,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.models.board import (
    NO_STAGE,
    BoardCard,
    BoardModel,
    CardRole,
    StageModel,
    opportunity_stages,
    stage_title,
)
from aisha_desktop.models.fields import display_name
from aisha_desktop.replica import RecordMissing, Replica
from aisha_desktop.sync.engine import SyncEngine
from aisha_desktop.views.tasks import TaskKeeper

COLUMN_WIDTH = 250
CARD_HEIGHT = 82
MESSAGE_STYLES = {"error": "color: #b3261e;", "info": "color: #2e6b30;"}
COLUMN_STYLE = (
    "QFrame#stageColumn { background: #f1f3f6; border-radius: 6px; }"
    "QListView { background: transparent; border: none; }"
)


class CardDelegate(QStyledItemDelegate):
    """A card: the name in bold, the amount, account and contact, the close date."""

    def sizeHint(  # noqa: N802
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(COLUMN_WIDTH - 24, CARD_HEIGHT)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        card = index.data(CardRole)
        if not isinstance(card, BoardCard):
            super().paint(painter, option, index)
            return
        rect: QRect = option.rect.adjusted(2, 3, -2, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#3b82f6" if selected else "#d6dbe1"), 2 if selected else 1))
        painter.setBrush(QColor("#ffffff"))
        painter.drawRoundedRect(rect, 5, 5)
        base = QFont(option.font)
        bold = QFont(base)
        bold.setBold(True)
        small = QFont(base)
        small.setPointSizeF(max(7.0, base.pointSizeF() * 0.9))
        inner = rect.adjusted(9, 6, -9, -6)
        line = QFontMetrics(base).height()

        def text(font: QFont, colour: str, top: int, value: str, align: Qt.AlignmentFlag) -> None:
            painter.setFont(font)
            painter.setPen(QColor(colour))
            metrics = QFontMetrics(font)
            shown = metrics.elidedText(value, Qt.TextElideMode.ElideRight, inner.width())
            painter.drawText(
                QRect(inner.left(), top, inner.width(), line),
                int(align | Qt.AlignmentFlag.AlignVCenter),
                shown,
            )

        left = Qt.AlignmentFlag.AlignLeft
        name_colour = "#8a5a00" if card.pending else "#1f2328"
        text(bold, name_colour, inner.top(), card.name, left)
        if card.amount:
            text(base, "#0d652d", inner.top() + line + 1, card.amount, left)
        text(
            small,
            "#4b5563",
            inner.top() + 2 * line + 2,
            card.parties or "No account or contact",
            left,
        )
        closes = f"Closes {card.close_date}" if card.close_date else "No close date"
        text(small, "#6b7280", inner.top() + 3 * line + 2, closes, left)
        if card.pending:
            text(small, "#8a5a00", inner.top() + 3 * line + 2, "not yet synced",
                 Qt.AlignmentFlag.AlignRight)  # fmt: skip
        painter.restore()


class StageColumn(QFrame):
    """One stage: a header with the count and the cards."""

    def __init__(self, model: StageModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stageColumn")
        self.setStyleSheet(COLUMN_STYLE)
        self.setFixedWidth(COLUMN_WIDTH)
        self.model = model
        self.header = QLabel()
        self.header.setStyleSheet("font-weight: 600; padding: 4px 2px;")
        self.view = QListView()
        self.view.setObjectName(f"stage-{model.stage or 'none'}")
        self.view.setModel(model)
        self.view.setItemDelegate(CardDelegate(self.view))
        self.view.setUniformItemSizes(True)  # cheap layout of many cards
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.view, 1)
        for signal in (model.modelReset, model.rowsInserted):
            signal.connect(self.update_header)
        self.update_header()

    def update_header(self, *_: object) -> None:
        shown = self.model.rowCount()
        count = f"{shown:,}" if self.model.complete else f"{shown:,}+"
        title = html.escape(stage_title(self.model.stage))  # a tenant's name, not markup
        self.header.setText(
            f"{title}   <span style='color:#6b7280; font-weight:400'>{count}</span>"
        )


class BoardView(QWidget):
    record_selected = Signal(str)  # a card was clicked: its opportunity
    message = Signal(str)

    def __init__(
        self,
        replica: Replica,
        engine: SyncEngine,
        parent: QWidget | None = None,
        *,
        page_size: int = 50,
    ) -> None:
        super().__init__(parent)
        self.replica = replica
        self.engine = engine
        self.tasks = TaskKeeper(lambda error: self._say(f"Could not move: {error}", "error"))
        self.model = BoardModel(
            replica, opportunity_stages(replica.settings("module_settings")), self,
            page_size=page_size,
        )  # fmt: skip
        self.model.moved.connect(self._dropped)
        self.model.failed.connect(lambda text: self._say(text, "error"))
        self.model.loaded.connect(self._loaded)
        self.columns: dict[str, StageColumn] = {}
        self.selected_id: str | None = None  # kept selected across re-reads
        self._stale = True

        self.feedback = QLabel()
        self.feedback.setObjectName("boardFeedback")
        self.feedback.setWordWrap(True)
        self.feedback.setTextFormat(Qt.TextFormat.PlainText)  # names of opportunities
        self.hint = QLabel("Drag a card to another column to change its stage.")
        self.hint.setStyleSheet("color: #6b7280;")
        self.strip = QWidget()
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_layout.setSpacing(8)
        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setWidget(self.strip)
        top = QHBoxLayout()
        top.addWidget(self.hint)
        top.addWidget(self.feedback, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.scroller, 1)
        self._build_columns()

    def _build_columns(self) -> None:
        for column in self.columns.values():
            column.setParent(None)
            column.deleteLater()
        self.columns = {}
        while self.strip_layout.count():
            self.strip_layout.takeAt(0)
        for stage, model in self.model.columns.items():
            column = StageColumn(model, self.strip)
            column.view.selectionModel().currentChanged.connect(
                lambda current, _previous, s=stage: self._card_selected(s, current)
            )
            column.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            column.view.customContextMenuRequested.connect(
                lambda point, c=column: self._card_menu(c, point)
            )
            self.columns[stage] = column
            self.strip_layout.addWidget(column)
        self.strip_layout.addStretch(1)
        self._loaded()

    def _loaded(self) -> None:
        # the "No stage" column only when some opportunities have no stage
        blank = self.columns.get(NO_STAGE)
        if blank is not None:
            blank.setVisible(blank.model.rowCount() > 0)
        if self.selected_id is not None:
            self.select_card(self.selected_id)

    def select_card(self, record_id: str) -> bool:
        """Highlight the card of `record_id` (False: not among the cards read)."""
        for column in self.columns.values():
            row = column.model.row_of(record_id)
            if row is not None:
                index = column.model.index(row, 0)
                if column.view.currentIndex() != index:
                    column.view.setCurrentIndex(index)
                return True
        return False

    # -- following the replica ---------------------------------------------------------------
    def entities_changed(self, entities: frozenset[str]) -> None:
        if "module_settings" in entities:
            stages = opportunity_stages(self.replica.settings("module_settings"))
            if self.model.set_stages(stages):
                self._build_columns()
                self._stale = True
        if entities & {"opportunities", "accounts", "contacts"}:
            self._stale = True
        if self._stale and self.isVisible():
            self._stale = False
            self.model.refresh()

    def reload(self) -> None:
        self._stale = False
        self.model.refresh_now()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._stale:
            self.reload()

    # -- selection ---------------------------------------------------------------------------
    def _card_selected(self, stage: str, current: QModelIndex) -> None:
        card = current.data(CardRole) if current.isValid() else None
        if not isinstance(card, BoardCard):
            return
        for other, column in self.columns.items():
            if other != stage:
                column.view.selectionModel().clearSelection()
        self.selected_id = card.id
        self.record_selected.emit(card.id)

    # -- moving --------------------------------------------------------------------------------
    def move_menu(self, record_id: str) -> QMenu:
        """ "Move to" each other stage: the board without dragging (right click)."""
        menu = QMenu(self)
        record = self.replica.get("opportunities", record_id)
        current = (record.data.get("stage") or "") if record is not None else None
        for stage in self.model.stages:
            action = menu.addAction(f"Move to {stage_title(stage)}")
            action.setEnabled(stage != current)
            action.triggered.connect(
                lambda _=False, s=stage: self.tasks.spawn(self.move_card(record_id, s))
            )
        return menu

    def _card_menu(self, column: StageColumn, point: QPoint) -> None:
        card = column.view.indexAt(point).data(CardRole)
        if isinstance(card, BoardCard):
            self.move_menu(card.id).popup(column.view.viewport().mapToGlobal(point))

    def _dropped(self, record_id: str, _from: str, to_stage: str) -> None:
        self.tasks.spawn(self.move_card(record_id, to_stage))

    async def move_card(self, record_id: str, to_stage: str) -> bool:
        """Change the stage of an opportunity (a drop); False when refused (says why)."""
        stages = self.model.stages
        if to_stage not in stages:
            shown = stage_title(to_stage)
            self._say(
                f"Cannot move to “{shown}”: the pipeline's stages are "
                f"{', '.join(stage_title(s) for s in stages)}.",
                "error",
            )
            return False
        record = self.replica.get("opportunities", record_id)
        if record is None:
            self._say("That opportunity is gone (deleted meanwhile).", "error")
            self.model.refresh()
            return False
        name = display_name("opportunities", record.data)
        if (record.data.get("stage") or "") == to_stage:
            self._say(f"“{name}” is already in {stage_title(to_stage)}.")
            return False
        try:
            await self.engine.update("opportunities", record_id, {"stage": to_stage})
        except (ValueError, RecordMissing) as exc:
            self._say(f"Could not move “{name}”: {exc}", "error")
            return False
        self._say(f"Moved “{name}” to {stage_title(to_stage)}.")
        self.model.refresh_now()  # at once; the engine's change report refreshes again later
        return True

    def _say(self, text: str, kind: str = "info") -> None:
        self.feedback.setStyleSheet(MESSAGE_STYLES.get(kind, ""))
        self.feedback.setText(text)
        if text:
            self.message.emit(text)

    def close_board(self) -> None:
        self.tasks.cancel()
        self.model.close()


__all__ = ["BoardView", "CardDelegate", "StageColumn"]
