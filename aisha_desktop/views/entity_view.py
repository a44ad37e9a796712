"""`EntityView`: one entity's list and record panel.

The table is a `RecordTableModel` over the replica (search as you type, status filter,
sortable indexed columns, column chooser; saved views and a CSV menu in `ViewTools`).  The
record panel edits the selected record, or a new one, with the form built from the entity's
fields and the tenant's custom fields.
Saving goes through the sync engine: the replica shows the edit at once and the outbox
carries it to the server in the background.  Before a create, records with the same email
or phone are looked up in the replica and shown as a warning the user must confirm.

Beside the related activities and notes, the panel shows the record's timeline from the
server (`TimelinePanel`).  Leads offer "Convert…" (`ConvertLeadDialog`, online only);
opportunities switch between the table and a board by stage (`BoardView`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSettings,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.dialogs.bulk_edit import BulkEditDialog
from aisha_desktop.dialogs.convert_lead import ConvertLeadDialog
from aisha_desktop.dialogs.deleted_records import DeletedRecordsDialog
from aisha_desktop.dialogs.merge_records import MERGEABLE, MergeDialog
from aisha_desktop.models.board import module_enabled, opportunity_stages
from aisha_desktop.models.fields import (
    STATUSES,
    column_title,
    custom_field_specs,
    display_name,
    form_specs,
)
from aisha_desktop.models.record_table import RecordTableModel
from aisha_desktop.models.saved_views import SettingsStore
from aisha_desktop.models.wording import counted, needs
from aisha_desktop.replica import RecordMissing, Replica, ReplicaRow
from aisha_desktop.replica.schema import ENTITY_COLUMNS, SEARCH_FIELDS
from aisha_desktop.sync.engine import SyncEngine, SyncState
from aisha_desktop.views.board import BoardView
from aisha_desktop.views.record_editor import RecordEditor
from aisha_desktop.views.tasks import TaskKeeper
from aisha_desktop.views.timeline import TimelinePanel
from aisha_desktop.views.view_tools import ViewTools

RELATED_ENTITIES = frozenset({"accounts", "contacts", "leads", "opportunities"})
WARNING_STYLE = (
    "QFrame#duplicates { background: #fff4ce; border: 1px solid #e0c060; border-radius: 4px; }"
)
COLUMN_WIDTHS = {
    "email": 240, "company": 170, "name": 200, "subject": 240, "first_name": 110,
    "last_name": 120, "phone": 140, "updated_at": 130, "created_at": 130, "status": 90,
}  # fmt: skip
MAX_BULK = 5_000  # records one bulk change or delete takes
MESSAGE_STYLES = {"error": "color: #b3261e;", "info": "color: #2e6b30;"}


class EntityView(QWidget):
    message = Signal(str)  # for the status bar
    open_record = Signal(str, str)  # entity, id: show it in its view (a converted lead's contact)

    def __init__(
        self,
        replica: Replica,
        engine: SyncEngine,
        entity: str,
        labels: tuple[str, str],
        parent: QWidget | None = None,
        *,
        search_delay_ms: int = 150,
        ui_settings: SettingsStore | None = None,  # saved views (default: QSettings())
        allowed: Callable[[str], bool] | None = None,  # action -> the server allows it
    ) -> None:
        super().__init__(parent)
        self.may: Callable[[str], bool] = allowed or (lambda _action: True)
        self._ui_settings = ui_settings if ui_settings is not None else QSettings()
        self.replica = replica
        self.engine = engine
        self.entity = entity
        self.plural, self.singular = labels
        self.tasks = TaskKeeper(self._failed)
        self.record_id: str | None = None  # None: the panel holds a new record
        self._duplicates_confirmed = False
        self.board: BoardView | None = None  # opportunities: built when first shown
        self._timeline_key: tuple[str | None, int | None] = (None, None)
        self._awaited: str | None = None  # a record to select once sync brings it
        self.sync_state = engine.state  # as last reported (online-only actions)
        self.model = RecordTableModel(replica, entity, self, search_delay_ms=search_delay_ms)
        self.model.reloaded.connect(self._update_count)
        self.model.reloaded.connect(self._keep_selection)
        self.model.rowsInserted.connect(self._update_count)
        self.model.reloaded.connect(self._select_awaited)
        self._build()
        self.rebuild_form(replica.settings("custom_fields"))
        self._update_count()
        self.new_record()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel(self.plural)
        self.title.setObjectName("viewTitle")
        self.title.setStyleSheet("font-size: 18px; font-weight: 600;")
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color: #555;")
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(240)
        self.search.textChanged.connect(self.model.set_search)
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("statusFilter")
        self.status_filter.addItem("All statuses", None)
        for status in STATUSES.get(self.entity, ()):
            self.status_filter.addItem(status.capitalize(), status)
        self.status_filter.setVisible(bool(STATUSES.get(self.entity)))
        self.status_filter.currentIndexChanged.connect(self._filter_status)
        self.columns_button = QToolButton()
        self.columns_button.setText("Columns")
        self.columns_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.columns_menu = QMenu(self.columns_button)
        for name in self.model.available:
            action = self.columns_menu.addAction(column_title(name))
            action.setCheckable(True)
            action.setChecked(name in self.model.columns)
            action.setData(name)
            action.toggled.connect(self._columns_chosen)
        self.columns_button.setMenu(self.columns_menu)
        self.view_tools = ViewTools(self, self._ui_settings, self.replica.path.stem)
        self.new_button = QPushButton()
        self.new_button.clicked.connect(self.new_record)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._ask_delete)

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.count_label)
        top.addWidget(self._layout_switch())
        top.addStretch(1)
        top.addWidget(self.search)
        top.addWidget(self.status_filter)
        top.addWidget(self.columns_button)
        top.addWidget(self.view_tools)
        top.addWidget(self.new_button)

        self.table = QTableView()
        self.table.setObjectName("records")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # several rows (Ctrl/Shift) for a bulk change or delete; the current one is shown
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.table.horizontalHeader()
        # The header paints a section by asking whether its whole column is selected, and Qt
        # answers that by asking the model's flags() of every row: after Ctrl+A, a call into
        # Python per cell of the list (22 s at a million rows).  Rows are what is selected
        # here, never columns: the header gets a selection model of its own, always empty.
        header.setHighlightSections(False)
        self._header_selection = QItemSelectionModel(self.model, self)
        header.setSelectionModel(self._header_selection)
        header.setStretchLastSection(True)
        header.setDefaultSectionSize(130)
        header.setSortIndicator(
            self._sort_column(), Qt.SortOrder.DescendingOrder
        ) if self._sort_column() >= 0 else None
        self.table.selectionModel().currentRowChanged.connect(self._row_selected)
        self.table.selectionModel().selectionChanged.connect(self._update_bulk)
        # Delete on the list: the selected records (asked first)
        self.table.installEventFilter(self)
        self._size_columns()
        self.model.modelReset.connect(self._size_columns)

        # record panel
        self.panel_title = QLabel()
        self.panel_title.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.panel_title.setWordWrap(True)
        self.rights_note = QLabel()
        self.rights_note.setObjectName("rightsNote")
        self.rights_note.setStyleSheet("color: #555; font-size: 11px;")
        self.rights_note.setWordWrap(True)
        self.rights_note.hide()
        self.pending_label = QLabel("Not yet synced")
        self.pending_label.setStyleSheet("color: #8a5a00; font-size: 11px;")
        self.duplicates = QFrame()
        self.duplicates.setObjectName("duplicates")
        self.duplicates.setStyleSheet(WARNING_STYLE)
        self.duplicates_label = QLabel()
        self.duplicates_label.setWordWrap(True)
        self.create_anyway = QPushButton("Create anyway")
        self.create_anyway.clicked.connect(self._confirm_duplicates)
        dup_layout = QVBoxLayout(self.duplicates)
        dup_layout.addWidget(self.duplicates_label)
        dup_layout.addWidget(self.create_anyway, 0, Qt.AlignmentFlag.AlignRight)
        self.duplicates.hide()
        self.form_area = QScrollArea()
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QFrame.Shape.NoFrame)
        self.feedback = QLabel()
        self.feedback.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self._save_clicked)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(self.revert)
        buttons = QHBoxLayout()
        buttons.addWidget(self.feedback, 1)
        self.convert_button = QPushButton("Convert…")
        self.convert_button.setObjectName("convertLead")
        self.convert_button.clicked.connect(self.convert_lead)
        self.convert_button.setVisible(self.entity == "leads")
        buttons.addWidget(self.convert_button)
        self.merge_button = QPushButton("Merge…")
        self.merge_button.setObjectName("mergeRecords")
        self.merge_button.setToolTip("Merge a duplicate into this record")
        self.merge_button.clicked.connect(self.open_merge)
        self.merge_button.setVisible(self.entity in MERGEABLE)
        buttons.addWidget(self.merge_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        self.related = QListWidget()
        self.related.setObjectName("related")
        self.timeline = TimelinePanel(self.engine.api)
        self.timeline.message.connect(self.message)
        # related rows come from the replica (offline too); the timeline from the server
        self.record_tabs = QTabWidget()
        self.record_tabs.setObjectName("recordTabs")
        self.record_tabs.addTab(self.related, "Activities and notes")
        self.record_tabs.addTab(self.timeline, "Timeline")
        self.record_tabs.setMinimumHeight(170)
        self.record_tabs.setVisible(self.entity in RELATED_ENTITIES)

        panel = QWidget()
        panel.setMinimumWidth(340)
        side = QVBoxLayout(panel)
        side.setContentsMargins(8, 0, 0, 0)
        side.addWidget(self.panel_title)
        side.addWidget(self.rights_note)
        side.addWidget(self.pending_label)
        side.addWidget(self.duplicates)
        side.addWidget(self.form_area, 3)
        side.addLayout(buttons)
        side.addWidget(self.record_tabs, 2)

        # shown while several rows are selected
        self.bulk_bar = QFrame()
        self.bulk_bar.setObjectName("bulkBar")
        self.bulk_bar.setStyleSheet(
            "#bulkBar { background: #e8f0fe; border: 1px solid #aecbfa; border-radius: 4px; }"
        )
        self.bulk_label = QLabel()
        self.bulk_change_button = QPushButton("Change field…")
        self.bulk_change_button.setObjectName("bulkChange")
        self.bulk_change_button.clicked.connect(self.open_bulk_change)
        self.bulk_delete_button = QPushButton("Delete…")
        self.bulk_delete_button.setObjectName("bulkDelete")
        self.bulk_delete_button.clicked.connect(self._ask_bulk_delete)
        clear = QPushButton("Clear selection")
        clear.clicked.connect(self._clear_bulk)
        bulk_row = QHBoxLayout(self.bulk_bar)
        bulk_row.setContentsMargins(8, 4, 8, 4)
        bulk_row.addWidget(self.bulk_label, 1)
        bulk_row.addWidget(self.bulk_change_button)
        bulk_row.addWidget(self.bulk_delete_button)
        bulk_row.addWidget(clear)
        self.bulk_bar.hide()
        self.table_box = table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.setSpacing(4)
        table_layout.addWidget(self.bulk_bar)
        table_layout.addWidget(self.table, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.list_stack = QStackedWidget()  # the table, or (opportunities) the board
        self.list_stack.addWidget(table_box)
        self.splitter.addWidget(self.list_stack)
        self.splitter.addWidget(panel)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.relabel((self.plural, self.singular))

    def _size_columns(self) -> None:
        header = self.table.horizontalHeader()
        for section, name in enumerate(self.model.columns):
            header.resizeSection(section, COLUMN_WIDTHS.get(name, 120))

    def _keep_selection(self) -> None:
        """After a reload the selected record may sit on another row: follow it."""
        if self.record_id is None:
            return
        current = self.table.currentIndex().row()
        if current >= 0:
            self.model.record_at(current)  # loads the page around it
        self.model.record_at(0)
        row = self.model.row_of(self.record_id)
        if row is None:
            self.table.selectionModel().clearSelection()
        elif row != current:
            self.select_row(row)

    def _sort_column(self) -> int:
        name = self.model.sort_key.lstrip("-")
        return self.model.columns.index(name) if name in self.model.columns else -1

    def relabel(self, labels: tuple[str, str]) -> None:
        self.plural, self.singular = labels
        self.title.setText(self.plural)
        self.search.setPlaceholderText(f"Search {self.plural.lower()}  (Ctrl+F)")
        self.new_button.setText(f"New {self.singular.lower()}")
        self._update_count()
        self._update_panel_title()

    def rebuild_form(self, custom_rows: Iterable[Mapping[str, Any]]) -> None:
        """(Re)build the record form; the tenant's custom fields changed.  What the user
        typed into the old form is carried over where the field still exists."""
        stages = (
            opportunity_stages(self.replica.settings("module_settings"))
            if self.entity == "opportunities"
            else []
        )
        specs = [*form_specs(self.entity, stages), *custom_field_specs(self.entity, custom_rows)]
        old = getattr(self, "editor", None)
        typed = old.raw_values() if old is not None and old.dirty else None
        self.editor = RecordEditor(self.entity, specs)
        self.editor.setObjectName("editor")
        self.editor.edited.connect(self._edited)
        self.form_area.setWidget(self.editor)  # deletes the old form
        self._load_panel()
        if typed:
            for name, value in typed.items():
                if name in {s.name for s in self.editor.specs}:
                    self.editor.set_value(name, value)

    # -- list --------------------------------------------------------------------------------
    def _update_count(self, *_: object) -> None:
        rows = self.model.rowCount()
        if self.model.windowed:
            text = f"{rows:,} {self.plural.lower() if rows != 1 else self.singular.lower()}"
        else:
            more = "+" if self.model.canFetchMore(QModelIndex()) else ""
            text = f"{rows:,}{more} {'match' if rows == 1 and not more else 'matches'}"
        self.count_label.setText(text)

    def _filter_status(self, _: int) -> None:
        self.model.set_filter("status", self.status_filter.currentData())

    def _columns_chosen(self, _: bool) -> None:
        chosen = [a.data() for a in self.columns_menu.actions() if a.isChecked()]
        if not chosen:  # the last column stays
            self.columns_menu.actions()[0].setChecked(True)
            return
        self.model.set_columns(chosen)

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def move_selection(self, step: int) -> None:
        """Next (1) or previous (-1) record."""
        rows = self.model.rowCount()
        if rows == 0:
            return
        current = self.table.currentIndex().row()
        target = 0 if current < 0 else max(0, min(rows - 1, current + step))
        if target >= rows - 1 and step > 0 and self.model.canFetchMore(QModelIndex()):
            self.model.fetchMore(QModelIndex())
        self.select_row(target)

    def select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)

    def select_record(self, record_id: str) -> bool:
        row = self.model.row_of(record_id)
        if row is None:
            return False
        self.select_row(row)
        return True

    def _row_selected(self, current: QModelIndex | QPersistentModelIndex, _: object = None) -> None:
        record = self.model.record_at(current.row()) if current.isValid() else None
        if record is None or record.id == self.record_id:
            return
        self.record_id = record.id
        self._duplicates_confirmed = False
        self._load_panel()

    # -- record panel ------------------------------------------------------------------
    def current_record(self) -> ReplicaRow | None:
        return None if self.record_id is None else self.replica.get(self.entity, self.record_id)

    def new_record(self) -> None:
        self.record_id = None
        self._duplicates_confirmed = False
        self.table.clearSelection()
        self._load_panel()
        first = self.editor.specs[1] if len(self.editor.specs) > 1 else self.editor.specs[0]
        self.editor.editor(first.name).setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _load_panel(self) -> None:
        record = self.current_record()
        if self.record_id is not None and record is None:
            self.record_id = None  # deleted meanwhile
        statuses = STATUSES.get(self.entity, ())
        fresh = {"status": statuses[0]} if statuses else None  # what a new record starts as
        self.editor.load(record.data if record is not None else fresh)
        self.duplicates.hide()
        self.pending_label.setVisible(record is not None and record.pending)
        self._apply_rights(record)
        self._say("")
        self._update_panel_title()
        self._load_related()
        self._load_timeline(record)
        self._update_convert()

    # -- what the user's role allows (the server said, in /api/auth/me) ----------------------
    def refused(self, action: str) -> str:
        """The message for an action the user's role does not have."""
        verb = {"create": "create", "update": "change", "delete": "delete",
                "export": "export"}.get(action, action)  # fmt: skip
        return f"Your role may not {verb} {self.plural.lower()}"

    def say_refused(self, action: str) -> None:
        self._say(self.refused(action), "error")

    def _allow(self, button: QPushButton, action: str, shown: bool = True) -> None:
        allowed = self.may(action)
        button.setEnabled(shown and allowed)
        button.setToolTip("" if allowed else self.refused(action))

    def _apply_rights(self, record: ReplicaRow | None) -> None:
        editing = "update" if record is not None else "create"
        can_edit = self.may(editing)
        self.form_area.setEnabled(can_edit)
        self._allow(self.save_button, editing)
        self._allow(self.revert_button, editing)
        self._allow(self.delete_button, "delete", record is not None)
        self._allow(self.merge_button, "update", record is not None)
        self._allow(self.new_button, "create")
        self.rights_note.setText("" if can_edit else f"Read only: {self.refused(editing).lower()}")
        self.rights_note.setVisible(not can_edit)

    def _update_panel_title(self) -> None:
        record = self.current_record() if self.record_id is not None else None
        if record is None:
            self.panel_title.setText(f"New {self.singular.lower()}")
        else:
            self.panel_title.setText(display_name(self.entity, record.data))

    def _load_related(self) -> None:
        self.related.clear()
        shown = self.entity in RELATED_ENTITIES and self.record_id is not None
        self.record_tabs.setVisible(shown)
        if not shown:
            return
        found = 0
        for entity in ("activities", "notes"):
            page = self.replica.query(
                entity, filters={"related_id": self.record_id}, sort="-updated_at", limit=50
            )
            for row in page.rows:
                data = row.data
                if entity == "activities":
                    kind = str(data.get("type") or "activity").capitalize()
                    due = str(data.get("due_date") or "")[:10]
                    text = f"{kind}: {data.get('subject') or ''}" + (
                        f"  (due {due})" if due else ""
                    )
                else:
                    text = f"Note: {data.get('title') or str(data.get('content') or '')[:60]}"
                self.related.addItem(text)
                found += 1
        if not found:
            self.related.addItem("Nothing related yet")
        self.record_tabs.setTabText(0, f"Activities and notes ({found})" if found else
                                    "Activities and notes")  # fmt: skip

    def _edited(self) -> None:
        self._duplicates_confirmed = False
        self.duplicates.hide()

    def revert(self) -> None:
        self._load_panel()

    def _say(self, text: str, kind: str = "info") -> None:
        self.feedback.setStyleSheet(MESSAGE_STYLES.get(kind, ""))
        self.feedback.setText(text)
        if text:
            self.message.emit(text)

    def _failed(self, error: BaseException) -> None:
        self._say(f"Could not save: {error}", "error")

    # -- duplicates ----------------------------------------------------------------------
    def find_duplicates(self, values: Mapping[str, Any]) -> list[ReplicaRow]:
        """Shown records with the same email, or the same phone, as `values`."""
        found: dict[str, ReplicaRow] = {}
        email = values.get("email")
        if isinstance(email, str) and email and "email" in ENTITY_COLUMNS[self.entity]:
            wanted = email.strip().lower()  # stored normalised (lower case)
            page = self.replica.query(self.entity, filters={"email": wanted}, limit=5)
            found.update((r.id, r) for r in page.rows)
        for field in ("phone", "mobile"):
            phone = values.get(field)
            if isinstance(phone, str) and phone.strip() and field in SEARCH_FIELDS[self.entity]:
                page = self.replica.query(self.entity, search=phone.strip(), limit=5)
                wanted = phone.strip().lower()
                found.update(
                    (r.id, r)
                    for r in page.rows
                    if wanted in (str(r.data.get("phone") or "").lower(),
                                  str(r.data.get("mobile") or "").lower())
                )  # fmt: skip
        found.pop(self.record_id or "", None)
        return list(found.values())

    def _confirm_duplicates(self) -> None:
        self._duplicates_confirmed = True
        self.duplicates.hide()
        self.tasks.spawn(self.save())

    # -- saving ----------------------------------------------------------------------------
    def _save_clicked(self) -> None:
        self.tasks.spawn(self.save())

    async def save(self) -> bool:
        """Validate, then create or update through the sync engine.  False when nothing was
        saved (messages say why)."""
        action = "create" if self.record_id is None else "update"
        if not self.may(action):
            self.say_refused(action)
            return False
        problems = self.editor.problems()
        self.editor.show_errors(problems)
        if problems:
            self._say(f"{needs(len(problems), 'field')} attention", "error")
            return False
        self.save_button.setEnabled(False)
        try:
            if self.record_id is None:
                values = self.editor.all_values()
                if not values:
                    self._say("Nothing to save yet", "error")
                    return False
                if not self._duplicates_confirmed:
                    duplicates = self.find_duplicates(values)
                    if duplicates:
                        self._show_duplicates(duplicates)
                        return False
                row = await self.engine.create(self.entity, values)
                self.record_id = str(row["id"])
                self._say(f"{self.singular} created")
            else:
                changes = self.editor.changes()
                if not changes:
                    self._say("No changes")
                    return True
                if not self._duplicates_confirmed:
                    # only what the edit gives the record: a duplicate accepted before does
                    # not block every later edit (the server's rule for PATCH)
                    given: dict[str, Any] = {
                        k: changes[k] for k in ("email", "phone", "mobile") if k in changes
                    }
                    duplicates = self.find_duplicates(given) if given else []
                    if duplicates:
                        self._show_duplicates(duplicates, creating=False)
                        return False
                await self.engine.update(self.entity, self.record_id, changes)
                self._say("Saved")
        except (ValueError, RecordMissing) as exc:
            self._say(str(exc), "error")
            return False
        finally:
            self.save_button.setEnabled(self.may(action))
        self.model.refresh()  # at once; the engine's change report refreshes again later
        message = self.feedback.text()
        self._load_panel()
        self._say(message)
        self.select_record(self.record_id)
        return True

    def _show_duplicates(self, rows: list[ReplicaRow], *, creating: bool = True) -> None:
        names = ", ".join(
            f"{display_name(self.entity, r.data)} <{r.data.get('email') or r.data.get('phone')}>"
            for r in rows[:3]
        )
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        self.duplicates_label.setText(
            f"Possible duplicate: {names}{more} already has this email or phone."
        )
        self.create_anyway.setText("Create anyway" if creating else "Save anyway")
        self.duplicates.show()
        verb = "creating" if creating else "saving"
        self._say(f"Check the possible duplicate before {verb}", "error")

    def _ask_delete(self) -> None:
        record = self.current_record()
        if record is None:
            return
        answer = QMessageBox.question(
            self,
            f"Delete {self.singular.lower()}",
            f"Delete {display_name(self.entity, record.data)}?",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.tasks.spawn(self.delete_current())

    async def delete_current(self) -> bool:
        if self.record_id is None:
            return False
        if not self.may("delete"):
            self.say_refused("delete")
            return False
        try:
            await self.engine.delete(self.entity, self.record_id)
        except (ValueError, RecordMissing) as exc:
            self._say(str(exc), "error")
            return False
        self.record_id = None
        self.model.refresh()
        self._load_panel()
        self._say(f"{self.singular} deleted; Views → Deleted {self.plural.lower()} restores it")
        return True

    # -- bulk changes ------------------------------------------------------------------------
    def _selected_rows(self) -> list[int]:
        """The selected rows, in order, read from the selection's ranges (Ctrl+A over a
        million rows is one range: no index object per row)."""
        rows: set[int] = set()
        for top, bottom in self._spans():
            rows.update(range(top, bottom + 1))
        return sorted(rows)

    def _spans(self) -> list[tuple[int, int]]:
        selection = self.table.selectionModel().selection()
        spans = (selection.at(i) for i in range(selection.size()))
        return [(span.top(), span.bottom()) for span in spans]

    def selected_ids(self) -> list[str] | None:
        """The ids of the selected rows, in row order (None: some are still loading)."""
        ids = []
        for row in self._selected_rows():
            record = self.model.record_at(row)
            if record is None:
                return None
            ids.append(record.id)
        return ids

    def _selected_count(self) -> int:
        """How many rows are selected, from the ranges alone (cheap at any size)."""
        spans = self._spans()
        if len(spans) <= 1:
            return sum(bottom - top + 1 for top, bottom in spans)
        return len(self._selected_rows())  # ranges may overlap (Ctrl-clicks)

    def _update_bulk(self, *_: object) -> None:
        count = self._selected_count()
        self.bulk_bar.setVisible(count > 1)
        if count > 1:
            noun = counted(count, self.singular.lower(), self.plural.lower())
            self.bulk_label.setText(f"{noun} selected")
            too_many = count > MAX_BULK
            for button, action in ((self.bulk_change_button, "update"),
                                   (self.bulk_delete_button, "delete")):  # fmt: skip
                self._allow(button, action, not too_many)
                if too_many:
                    button.setToolTip(f"At most {MAX_BULK:,} at once")

    def _clear_bulk(self) -> None:
        current = self.table.currentIndex()
        self.table.selectionModel().clearSelection()
        if current.isValid():  # the record shown stays shown
            self.select_row(current.row())

    def _bulk_ids(self, action: str) -> list[str] | None:
        if not self.may(action):
            self.say_refused(action)
            return None
        if self._selected_count() > MAX_BULK:  # before reading a row of them
            self._say(f"Select at most {MAX_BULK:,} {self.plural.lower()} at once", "error")
            return None
        ids = self.selected_ids()
        if ids is None:
            self._say("Some selected rows are still loading: try again in a moment", "error")
        return ids

    def open_bulk_change(self) -> BulkEditDialog | None:
        ids = self._bulk_ids("update")
        if not ids:
            return None
        dialog = BulkEditDialog(
            self.entity, (self.plural, self.singular), self.editor.specs, len(ids), self
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._bulk_accepted(dialog, ids))
        dialog.show()
        return dialog

    def _bulk_accepted(self, dialog: BulkEditDialog, ids: list[str]) -> None:
        spec, values = dialog.chosen, dialog.values
        if spec is not None and values is not None:
            self.tasks.spawn(self.apply_bulk_change(ids, values, spec.label))

    async def apply_bulk_change(self, ids: list[str], values: dict[str, Any], label: str) -> int:
        """Set `values` on the records `ids` (all or none); how many changed."""
        try:
            changed = await self.engine.update_many(self.entity, ids, values)
        except (ValueError, RecordMissing) as exc:
            self._say(f"Nothing changed: {exc}", "error")
            return 0
        noun = counted(len(ids), self.singular.lower(), self.plural.lower())
        same = len(ids) - changed
        self._say(f"{label} set on {noun}" + (f" ({same:,} had it already)" if same else ""))
        self.model.refresh()
        return changed

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if (
            watched is self.table
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.matches(QKeySequence.StandardKey.Delete)
        ):
            self._delete_key()
            return True
        return super().eventFilter(watched, event)

    def _delete_key(self) -> None:
        if not self.may("delete"):
            self.say_refused("delete")
        elif self._selected_count() > 1:
            self._ask_bulk_delete()
        else:
            self._ask_delete()

    def _ask_bulk_delete(self) -> None:
        ids = self._bulk_ids("delete")
        if not ids:
            return
        noun = counted(len(ids), self.singular.lower(), self.plural.lower())
        answer = QMessageBox.question(
            self,
            f"Delete {self.plural.lower()}",
            f"Delete {noun}? They can be restored from Views → Deleted {self.plural.lower()}.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.tasks.spawn(self.delete_many(ids))

    async def delete_many(self, ids: list[str]) -> int:
        try:
            deleted = await self.engine.delete_many(self.entity, ids)
        except (ValueError, RecordMissing) as exc:
            self._say(f"Nothing deleted: {exc}", "error")
            return 0
        if self.record_id in ids:
            self.record_id = None
            self._load_panel()
        self.model.refresh()
        noun = counted(deleted, self.singular.lower(), self.plural.lower())
        self._say(f"{noun} deleted; Views → Deleted {self.plural.lower()} restores them")
        return deleted

    def open_merge(self) -> MergeDialog | None:
        """Merge a duplicate into the record shown (accounts, contacts, leads)."""
        record = self.current_record()
        if record is None or self.entity not in MERGEABLE:
            return None
        if not self.may("update"):
            self.say_refused("update")
            return None
        dialog = MergeDialog(
            self.engine.api, self.replica, self.entity, (self.plural, self.singular), record,
            self, on_merged=self._merged,
        )  # fmt: skip
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _merged(self, kept_id: str, merged_id: str, message: str) -> None:
        self.engine.kick()  # the merged record and the duplicate's deletion come with a pull
        if self.record_id == merged_id:
            self.show_when_synced(kept_id)  # the record shown was merged away
        self._say(message)

    def open_deleted(self) -> DeletedRecordsDialog:
        """The entity's deleted records, read from the server, to restore."""
        dialog = DeletedRecordsDialog(
            self.engine.api, self.entity, (self.plural, self.singular), self,
            on_restored=self._restored,
            can_restore=self.may("delete"),  # the server: restoring needs the right to delete
        )  # fmt: skip
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def _restored(self, ids: list[str]) -> None:
        self.engine.kick()  # the restores come back with the next pull
        noun = counted(len(ids), self.singular.lower(), self.plural.lower())
        self._say(f"Restored {noun}; back in the list once synced")

    def entities_changed(self, entities: frozenset[str]) -> None:
        self.model.entities_changed(entities)
        if "custom_fields" in entities or (
            "module_settings" in entities and self.entity == "opportunities"  # the pipeline
        ):
            self.rebuild_form(self.replica.settings("custom_fields"))
        elif self.entity in entities and not self.editor.dirty:
            self._load_panel()
        elif entities & {"activities", "notes"}:
            self._load_related()
        if entities & {"activities", "notes"}:
            self.timeline.refresh()  # a changed record reloads it in _load_timeline
        elif self.entity in entities and self.editor.dirty and self.record_id is not None:
            self._load_timeline(self.current_record())  # the form keeps what is being typed
        if self.board is not None:
            self.board.entities_changed(entities)

    # -- timeline ------------------------------------------------------------------------------
    def _load_timeline(self, record: ReplicaRow | None) -> None:
        if self.entity not in RELATED_ENTITIES:
            return
        if record is None:
            self.timeline.show_record(None, None)
            self._timeline_key = (None, None)
            return
        self.timeline.show_record(self.entity, record.id, on_server=record.version is not None)
        key = (record.id, record.version)
        if key[0] == self._timeline_key[0] and key != self._timeline_key:
            self.timeline.refresh()  # the server has a newer version: new entries
        self._timeline_key = key

    def connection_changed(self, state: SyncState) -> None:
        """The sync engine's state (through the window's bridge): online-only actions."""
        self.sync_state = state
        self.timeline.connection_changed(state.online, offline=state.status == "offline")
        self._update_convert()

    # -- lead conversion -----------------------------------------------------------------------
    def _convert_refusal(self, record: ReplicaRow | None) -> str | None:
        """Why "Convert…" is not possible now (None: it is)."""
        if record is None:
            return "Select a lead to convert"
        if record.data.get("status") == "converted" or record.data.get("converted_at"):
            return "This lead is already converted"
        state = self.sync_state
        if not state.online:
            reason = {"signed_out": "you are signed out", "offline": "the server is unreachable"}
            why = reason.get(state.status, "the console is not connected")
            return f"Converting needs the server and {why}: edits still work offline"
        if record.version is None or record.pending:
            return "This lead has edits not yet synced: convert it once they reach the server"
        return None

    def _update_convert(self) -> None:
        if self.entity != "leads":
            return
        refusal = self._convert_refusal(self.current_record())
        self.convert_button.setEnabled(refusal is None)
        self.convert_button.setToolTip(
            refusal or "Convert into a contact, an account and optionally an opportunity"
        )

    def convert_lead(self) -> ConvertLeadDialog | None:
        record = self.current_record()
        refusal = self._convert_refusal(record)
        if record is None or refusal is not None:
            self._say(refusal or "", "error")
            return None
        modules = self.replica.settings("module_settings")
        company = str(record.data.get("company") or "").strip()
        # accounts the new contact may join instead of a new one named like the company
        found = (
            self.replica.query("accounts", search=company, sort="name", limit=8).rows
            if company
            else []
        )
        dialog = ConvertLeadDialog(
            self.engine.api,
            record.data,
            self,
            stages=opportunity_stages(modules),
            opportunities_enabled=module_enabled(modules, "opportunities"),
            accounts=[(r.id, display_name("accounts", r.data)) for r in found],
        )
        dialog.accepted.connect(lambda: self._converted(dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.convert_dialog = dialog
        dialog.open()
        return dialog

    def _converted(self, dialog: ConvertLeadDialog) -> None:
        result = dialog.conversion or {}
        contact = result.get("contact") or {}
        self.engine.kick()  # the new contact, account and opportunity come by sync
        self._say(f"Converted: {display_name('contacts', contact)} is now a contact")
        if dialog.contact_id is not None:
            self.open_record.emit("contacts", dialog.contact_id)

    def show_when_synced(self, record_id: str) -> None:
        """Select `record_id` now, or as soon as sync brings it into the replica."""
        if self.search.text():
            self.search.clear()
            self.model.search_now("")
        self._awaited = record_id
        self._select_awaited()

    def _select_awaited(self) -> None:
        record_id = self._awaited
        if record_id is None:
            return
        if self.select_record(record_id):
            self._awaited = None
        elif self.replica.get(self.entity, record_id) is not None:
            self._awaited = None  # in the replica but not among the rows read: show it anyway
            self.record_id = record_id
            self._load_panel()

    # -- board (opportunities) -------------------------------------------------------------------
    def _layout_switch(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(12, 0, 0, 0)
        row.setSpacing(0)
        self.layout_group = QButtonGroup(box)
        self.table_toggle = QToolButton()
        self.table_toggle.setText("Table")
        self.board_toggle = QToolButton()
        self.board_toggle.setText("Board")
        self.board_toggle.setToolTip("Opportunities by stage: drag a card to change its stage")
        for button in (self.table_toggle, self.board_toggle):
            button.setCheckable(True)
            self.layout_group.addButton(button)
            row.addWidget(button)
        self.table_toggle.setChecked(True)
        self.board_toggle.toggled.connect(self.show_board)
        box.setVisible(self.entity == "opportunities")
        return box

    def show_board(self, shown: bool = True) -> BoardView | None:
        """The board instead of the table (opportunities only)."""
        if self.entity != "opportunities":
            return None
        if shown and self.board is None:
            self.board = BoardView(self.replica, self.engine)
            self.board.setObjectName("board")
            self.board.record_selected.connect(self._board_selected)
            self.board.message.connect(self.message)
            self.list_stack.addWidget(self.board)
        (self.board_toggle if shown else self.table_toggle).setChecked(True)
        self.list_stack.setCurrentWidget(self.board if shown and self.board else self.table_box)
        for control in (self.search, self.status_filter, self.columns_button):
            control.setEnabled(not shown)  # the board shows every opportunity by stage
        return self.board

    def _board_selected(self, record_id: str) -> None:
        if record_id != self.record_id:
            self.record_id = record_id
            self._duplicates_confirmed = False
            self._load_panel()

    def close_view(self) -> None:
        """The window closes: stop background work."""
        self.tasks.cancel()
        self.model.close()
        if self.board is not None:
            self.board.close_board()
