"""A stand-in main window until `views/main_window.py` lands: who is signed in where, the
sync state, and Settings -> Connection, so start-up runs end to end."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from aisha_desktop.context import AppContext
from aisha_desktop.dialogs.connection import ConnectionDialog
from aisha_desktop.sync import SyncState


class _StateBridge(QObject):
    changed = Signal(object)


class PlaceholderWindow(QMainWindow):
    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.context = context
        me = context.me
        user = me.user.display_name if me.user is not None else "?"
        tenant = me.tenant.name if me.tenant is not None else context.tenant_id
        self.setWindowTitle(f"AiSHA - {tenant}")
        self.resize(720, 420)

        where = "this computer (bundled server)" if context.bundled else context.server_url
        self.summary = QLabel(
            f"<h2>AiSHA</h2><p>Signed in as <b>{user}</b> ({me.role}) in <b>{tenant}</b>"
            f"<br>Server: {where}</p>"
        )
        self.sync_label = QLabel()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.summary)
        layout.addWidget(self.sync_label)
        layout.addStretch(1)
        self.setCentralWidget(central)

        settings_menu = self.menuBar().addMenu("&Settings")
        self.connection_action = QAction("&Connection...", self)
        self.connection_action.triggered.connect(self.open_connection)
        settings_menu.addAction(self.connection_action)

        # the engine calls back on the loop's thread; a queued signal keeps Qt in charge
        self._bridge = _StateBridge(self)
        self._bridge.changed.connect(self.show_state)
        self._unsubscribe = context.engine.subscribe(self._bridge.changed.emit)
        self.show_state(context.engine.state)

    def show_state(self, state: SyncState) -> None:
        text = f"Sync: {state.status}; pending edits: {state.pending}; conflicts: {state.conflicts}"
        if state.last_error:
            text += f"<br><span style='color:#b3261e'>{state.last_error}</span>"
        self.sync_label.setText(text)
        self.statusBar().showMessage(f"{state.status} - {state.pending} pending")

    def open_connection(self) -> None:
        dialog = ConnectionDialog(self.context.settings, self)
        dialog.accepted.connect(lambda: self.context.save_settings(dialog.settings))
        dialog.open()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self._unsubscribe()
        super().closeEvent(event)
