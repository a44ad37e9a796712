"""`SyncBridge`: the one place the Qt-free sync engine's callbacks become Qt signals.

The engine reports state changes and the entities whose rows changed; the bridge re-emits
state at once (status bar) and the changed entities coalesced over `delay_ms` (a pull of
many pages, or a burst of edits, refreshes each view once)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from aisha_desktop.sync.engine import SyncEngine, SyncState


class SyncBridge(QObject):
    state_changed = Signal(object)  # SyncState
    entities_changed = Signal(object)  # frozenset[str]

    def __init__(self, engine: SyncEngine, parent: QObject | None = None, delay_ms: int = 50):
        super().__init__(parent)
        self.engine = engine
        self._changed: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)
        self._unsubscribe = [
            engine.subscribe(self._on_state),
            engine.subscribe_changes(self._on_changes),
        ]

    @property
    def state(self) -> SyncState:
        return self.engine.state

    def _on_state(self, state: SyncState) -> None:
        self.state_changed.emit(state)

    def _on_changes(self, entities: frozenset[str]) -> None:
        self._changed |= entities
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit the changes gathered so far now."""
        self._timer.stop()
        if self._changed:
            changed, self._changed = frozenset(self._changed), set()
            self.entities_changed.emit(changed)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._timer.stop()
