"""`MainWindow`: navigation by the tenant's entity labels, one `EntityView` per entity, a
status bar with connection, sync state, pending edits and conflicts, and a command palette
(Ctrl+K) listing every command with its shortcut.

It is handed the context `bootstrap()` built (replica, sync engine, signed-in user) and
creates the one `SyncBridge` that turns the engine's callbacks into Qt signals."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client.models import CurrentUser
from aisha_desktop.dialogs.admin import AdminDialog, AdminKind, open_admin_dialog
from aisha_desktop.models.fields import NAV_ENTITIES, entity_labels
from aisha_desktop.models.sync_bridge import SyncBridge
from aisha_desktop.models.wording import counted
from aisha_desktop.replica import Replica
from aisha_desktop.sync.engine import SyncEngine, SyncState
from aisha_desktop.views.care import READER_ROLES, CareView
from aisha_desktop.views.conflicts import ConflictInbox, InboxLink
from aisha_desktop.views.entity_view import EntityView
from aisha_desktop.views.health import HealthView
from aisha_desktop.views.tenant_switcher import TenantSwitcher

STATUS_TEXT = {
    "stopped": ("Not syncing", "#666666"),
    "syncing": ("Syncing…", "#1a5fb4"),
    "online": ("Online", "#2e7d32"),
    "offline": ("Offline: edits are kept and sent later", "#b26a00"),
    "error": ("Sync error", "#b3261e"),
    "signed_out": ("Signed out: sign in to sync", "#b3261e"),
}
CARE = "care"  # the navigation's C.A.R.E. entry (after the entities)
NAV_STYLE = """
QListWidget#navigation { background: #1f2a37; color: #e8edf2; border: none; font-size: 14px; }
QListWidget#navigation::item { padding: 9px 14px; }
QListWidget#navigation::item:selected { background: #3b82f6; color: white; }
"""


class ConsoleContext(Protocol):
    """What the main window uses of `aisha_desktop.context.AppContext`."""

    replica: Replica
    engine: SyncEngine
    server_url: str

    @property
    def me(self) -> Any: ...


@dataclass(frozen=True)
class Command:
    name: str
    shortcut: str
    run: Callable[[], object]
    entity: str | None = None  # "Go to" commands: named by the entity's label


class CommandPalette(QDialog):
    """Ctrl+K: type to narrow the commands, Enter runs the highlighted one."""

    def __init__(self, commands: list[Command], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Commands")
        self.setModal(True)
        self.resize(460, 360)
        self.commands = commands
        self.query = QLineEdit()
        self.query.setPlaceholderText("Type a command…")
        self.list = QListWidget()
        layout = QVBoxLayout(self)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        self.query.textChanged.connect(self._narrow)
        self.query.returnPressed.connect(self.run_current)
        self.list.itemActivated.connect(lambda _: self.run_current())
        self._narrow("")

    def _narrow(self, text: str) -> None:
        words = text.lower().split()
        self.list.clear()
        for command in self.commands:
            name = command.name.lower()
            bare = name.replace(".", "")  # "care" finds "C.A.R.E."
            if all(w in name or w in bare for w in words):
                label = command.name + (f"    {command.shortcut}" if command.shortcut else "")
                item = QListWidgetItem(label)
                item.setData(Qt.ItemDataRole.UserRole, command.name)
                self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def visible_names(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def run_current(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        self.accept()
        next(c for c in self.commands if c.name == name).run()


class MainWindow(QMainWindow):
    # a superadmin chose another tenant: the composition root reopens the console on it
    tenant_switch_requested = Signal(str)

    def __init__(self, context: ConsoleContext, *, search_delay_ms: int = 150) -> None:
        super().__init__()
        self.context = context
        self.replica = context.replica
        self.engine = context.engine
        self._search_delay_ms = search_delay_ms
        self.bridge = SyncBridge(self.engine, self)
        self.labels = entity_labels(self.replica.settings("entity_labels"))
        self.views: dict[str, EntityView] = {}
        self.care_view: CareView | None = None
        self._entity = "contacts"  # the last entity view shown (record commands go there)
        self.setWindowTitle("AiSHA")
        self.resize(1280, 800)

        self.navigation = QListWidget()
        self.navigation.setObjectName("navigation")
        self.navigation.setStyleSheet(NAV_STYLE)
        self.navigation.setFixedWidth(190)
        for entity in NAV_ENTITIES:
            item = QListWidgetItem(self.labels[entity][0])
            item.setData(Qt.ItemDataRole.UserRole, entity)
            self.navigation.addItem(item)
        if self.role in READER_ROLES:  # administrators and managers (read-only) only
            item = QListWidgetItem("C.A.R.E.")
            item.setData(Qt.ItemDataRole.UserRole, CARE)
            item.setToolTip("C.A.R.E. dashboard: escalations, decisions, audit, approvals")
            self.navigation.addItem(item)
        self.stack = QStackedWidget()
        self.navigation.currentRowChanged.connect(self._navigate)

        body = QWidget()
        row = QHBoxLayout(body)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.navigation)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(body)

        self.connection_label = QLabel()
        self.connection_label.setObjectName("connection")
        self.pending_label = QLabel()
        self.pending_label.setObjectName("pending")
        self.conflicts_label = InboxLink()
        self.conflicts_label.setObjectName("conflicts")
        self.conflicts_label.clicked.connect(self.open_conflicts)
        self.conflict_inbox: ConflictInbox | None = None
        self.health_view: HealthView | None = None
        self.user_label = QLabel(self._who())
        bar = self.statusBar()
        for label in (self.connection_label, self.pending_label, self.conflicts_label):
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
        bar.addPermanentWidget(self.user_label)
        self.tenant_switcher: TenantSwitcher | None = None
        if self.role == "superadmin":
            self.tenant_switcher = TenantSwitcher(self.engine.api, self.console_tenant_id)
            self.tenant_switcher.switch_requested.connect(self._switch_requested)
            bar.addPermanentWidget(self.tenant_switcher)
            self.tenant_switcher.start()

        self.commands = self._make_commands()
        self.bridge.state_changed.connect(self.show_state)
        self.bridge.entities_changed.connect(self._entities_changed)
        self.show_state(self.engine.state)
        self.navigation.setCurrentRow(NAV_ENTITIES.index("contacts"))

    # -- commands ----------------------------------------------------------------------------
    def _make_commands(self) -> list[Command]:
        commands = [
            Command("New record", "Ctrl+N", self.new_record),
            Command("Search", "Ctrl+F", self.focus_search),
            Command("Save record", "Ctrl+S", self.save_record),
            Command("Next record", "Ctrl+Down", lambda: self.move_record(1)),
            Command("Previous record", "Ctrl+Up", lambda: self.move_record(-1)),
            Command("Sync now", "F5", self.engine.kick),
            Command("Conflicts…", "", self.open_conflicts),
            Command("System health…", "", self.open_health),
            Command("Opportunities board", "", self.open_board),
            Command("Import CSV…", "", lambda: self.current_view.view_tools.import_if_allowed()),
            Command("Export CSV…", "", lambda: self.current_view.view_tools.export_if_allowed()),
            Command("Deleted records…", "", lambda: self.current_view.open_deleted()),
            Command("Merge duplicate…", "", lambda: self.current_view.open_merge()),
            Command("Change selected records…", "", lambda: self.current_view.open_bulk_change()),
            Command("Entity labels…", "", lambda: self.open_admin("entity_labels")),
            Command("Module settings…", "", lambda: self.open_admin("module_settings")),
            Command("Custom fields…", "", lambda: self.open_admin("custom_fields")),
            Command("Users and invitations…", "", lambda: self.open_admin("users")),
            Command("Employees…", "", lambda: self.open_admin("employees")),
            Command("API keys…", "", lambda: self.open_admin("api_keys")),
            Command("Tenant settings…", "", lambda: self.open_admin("tenant_settings")),
            Command("Command palette", "Ctrl+K", self.open_palette),
        ]
        if self.role == "superadmin":  # everyone else: not offered at all
            commands.append(Command("Tenants…", "", lambda: self.open_admin("tenants")))
            commands.append(Command("Switch tenant…", "", self.choose_tenant))
        if self.role in READER_ROLES:
            commands.append(Command("C.A.R.E. dashboard", "", self.open_care))
        for number, entity in enumerate(NAV_ENTITIES, start=1):
            commands.append(
                Command(
                    f"Go to {self.labels[entity][0]}",
                    f"Ctrl+{number}",
                    lambda e=entity: self.open_entity(e),  # type: ignore[misc]
                    entity,
                )
            )
        self.actions_by_name: dict[str, QAction] = {}
        for command in commands:
            action = QAction(command.name, self)
            action.setShortcut(QKeySequence(command.shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(command.run)
            self.addAction(action)
            self.actions_by_name[command.entity or command.name] = action
        return commands

    def open_palette(self) -> CommandPalette:
        palette = CommandPalette(self.commands, self)
        self.command_palette = palette
        palette.open()
        return palette

    def open_conflicts(self) -> ConflictInbox:
        if self.conflict_inbox is None:
            me = getattr(getattr(self.context, "me", None), "user", None)
            me_id = str(me.id) if me is not None else None
            people = {me_id: str(me.display_name)} if me is not None and me_id else {}
            self.conflict_inbox = ConflictInbox(self.bridge, self, people=people, me_id=me_id)
        self.conflict_inbox.show()
        self.conflict_inbox.raise_()
        return self.conflict_inbox

    def open_health(self) -> HealthView:
        if self.health_view is None:
            self.health_view = HealthView(self.engine.api, self)
        self.health_view.show()  # (re)starts sampling; hiding or closing stops it
        self.health_view.raise_()
        return self.health_view

    def open_admin(self, kind: AdminKind) -> AdminDialog:
        """An admin settings dialog for the console's tenant (read-only for non-admins; the
        dialog asks the server who the user is).  Needs the running qasync loop."""
        dialog = open_admin_dialog(kind, self.engine.api, self.console_tenant_id, self)
        if kind == "entity_labels":  # new names show in the navigation at once
            dialog.finished.connect(lambda _code: self.engine.kick())
        switcher = self.tenant_switcher
        if kind == "tenants" and switcher is not None:  # new and renamed tenants show there
            dialog.finished.connect(lambda _code: switcher.start())
        return dialog

    def may(self, entity: str, action: str) -> bool:
        """Whether the signed-in user's role allows `action` on `entity` (as the server said
        at sign-in; when it did not say, everything is offered and the server decides)."""
        me = getattr(self.context, "me", None)
        return me.may(entity, action) if isinstance(me, CurrentUser) else True

    @property
    def role(self) -> str:
        return str(getattr(getattr(self.context, "me", None), "role", "") or "")

    @property
    def console_tenant_id(self) -> str:
        tenant_id = getattr(self.context, "tenant_id", None) or self.engine.api.tenant_id
        if tenant_id is None:
            me = getattr(self.context, "me", None)
            tenant_id = getattr(me, "tenant_id", None)
        return str(tenant_id)

    def _switch_requested(self, tenant_id: str) -> None:
        if self.confirm_switch():
            self.tenant_switch_requested.emit(tenant_id)

    def confirm_switch(self) -> bool:
        """Edits not yet on the server stay in this tenant's replica when the console moves
        to another: they are sent when it works in this tenant again.  Say so first."""
        pending = self.engine.replica.pending_count()
        if pending == 0:
            return True
        switcher = self.tenant_switcher
        here = switcher.currentText() if switcher is not None else "this tenant"
        edits = f"{pending:,} edit{'s' if pending != 1 else ''}"
        verb = "is" if pending == 1 else "are"
        answer = QMessageBox.question(
            self,
            "Switch tenant",
            f"{edits} made in {here} {verb} not on the server yet.\n\n"
            f"{'It stays' if pending == 1 else 'They stay'} on this computer and "
            f"{verb} sent when you work in {here} again. Switch anyway?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def choose_tenant(self) -> None:
        if self.tenant_switcher is not None:
            self.tenant_switcher.setFocus()
            self.tenant_switcher.showPopup()

    @property
    def current_view(self) -> EntityView:
        view = self.stack.currentWidget()
        if not isinstance(view, EntityView):  # the C.A.R.E. dashboard
            view = self.open_entity(self._entity)
        return view

    def new_record(self) -> None:
        self.current_view.new_record()

    def focus_search(self) -> None:
        self.current_view.focus_search()

    def save_record(self) -> None:
        view = self.current_view
        view.tasks.spawn(view.save())

    def move_record(self, step: int) -> None:
        self.current_view.move_selection(step)

    # -- navigation --------------------------------------------------------------------------
    def open_entity(self, entity: str) -> EntityView:
        self.navigation.setCurrentRow(NAV_ENTITIES.index(entity))
        return self.views[entity]

    def _navigate(self, row: int) -> None:
        if row < 0:
            return
        if row >= len(NAV_ENTITIES):
            self.stack.setCurrentWidget(self._care())
            return
        entity = self._entity = NAV_ENTITIES[row]
        view = self.views.get(entity)
        if view is None:  # built on first visit: a view reads its first page
            view = EntityView(
                self.replica,
                self.engine,
                entity,
                self.labels[entity],
                search_delay_ms=self._search_delay_ms,
                allowed=functools.partial(self.may, entity),
            )
            view.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
            view.open_record.connect(self.show_record)
            self.bridge.state_changed.connect(view.connection_changed)
            self.views[entity] = view
            self.stack.addWidget(view)
        self.stack.setCurrentWidget(view)

    def show_record(self, entity: str, record_id: str) -> EntityView:
        """Open `entity`'s view on a record (selected once sync brings it, if need be)."""
        view = self.open_entity(entity)
        view.show_when_synced(record_id)
        return view

    def _care(self) -> CareView:
        if self.care_view is None:  # built on first visit; reads the replica, asks the API
            tenant = self.console_tenant_id
            self.care_view = CareView(
                self.replica,
                self.engine,
                role=self.role,
                tenant_id=tenant if tenant != "None" else None,
            )
            self.bridge.state_changed.connect(self.care_view.connection_changed)
            self.bridge.entities_changed.connect(self.care_view.entities_changed)
            self.stack.addWidget(self.care_view)
            self.care_view.refresh_all()
        return self.care_view

    def open_care(self) -> CareView:
        """The C.A.R.E. dashboard (administrators and managers)."""
        self.navigation.setCurrentRow(len(NAV_ENTITIES))
        return self._care()

    def open_board(self) -> EntityView:
        view = self.open_entity("opportunities")
        view.show_board(True)
        return view

    def _entities_changed(self, entities: frozenset[str]) -> None:
        if "entity_labels" in entities:
            self.relabel()
        for view in self.views.values():
            view.entities_changed(entities)

    def relabel(self) -> None:
        """The tenant's labels changed: navigation, views and commands follow."""
        self.labels = entity_labels(self.replica.settings("entity_labels"))
        for row, entity in enumerate(NAV_ENTITIES):
            self.navigation.item(row).setText(self.labels[entity][0])
            if entity in self.views:
                self.views[entity].relabel(self.labels[entity])
        renamed = []
        for command in self.commands:
            target = command.entity
            if target is not None:
                command = replace(command, name=f"Go to {self.labels[target][0]}")
                self.actions_by_name[target].setText(command.name)
            renamed.append(command)
        self.commands = renamed

    # -- status ------------------------------------------------------------------------------
    def _who(self) -> str:
        me = getattr(self.context, "me", None)
        user = getattr(me, "user", None)
        name = getattr(user, "display_name", "") if user is not None else ""
        tenant = getattr(getattr(me, "tenant", None), "name", "")
        return "  ·  ".join(p for p in (name, tenant) if p)

    def show_state(self, state: SyncState) -> None:
        text, color = STATUS_TEXT.get(state.status, (state.status, "#666666"))
        if state.status == "online" and not state.stream_connected:
            text = "Online (polling)"
        self.connection_label.setText(f"● {text}")
        self.connection_label.setStyleSheet(f"color: {color}; font-weight: 600;")
        self.connection_label.setToolTip(state.last_error or self.context.server_url)
        self.pending_label.setText(
            "All edits synced" if state.pending == 0 else counted(state.pending, "pending edit")
        )
        self.pending_label.setStyleSheet("" if state.pending == 0 else "color: #8a5a00;")
        self.conflicts_label.setText(
            counted(state.conflicts, "conflict") if state.conflicts else "No conflicts"
        )
        self.conflicts_label.setStyleSheet(
            "color: #b3261e; font-weight: 600;" if state.conflicts else ""
        )
        if state.rejections:
            self.conflicts_label.setText(
                self.conflicts_label.text() + f", {state.rejections} rejected"
            )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.bridge.close()
        if self.tenant_switcher is not None:
            self.tenant_switcher.tasks.cancel()
        for window in (self.conflict_inbox, self.health_view):
            if window is not None:
                window.close()
        for view in self.views.values():
            view.close_view()
        if self.care_view is not None:
            self.care_view.close_view()
        super().closeEvent(event)


__all__ = ["Command", "CommandPalette", "ConsoleContext", "MainWindow"]
