"""Garbage collection on the GUI thread only.

Python's cyclic garbage collector runs in whichever thread happens to allocate when a
generation's count crosses its threshold.  In the console that is often a worker thread:
every replica call runs in `asyncio.to_thread`.  A Qt object caught in a reference cycle
(a dialog and the helper that points back at it, a closed qasync loop and its timers) is
then destroyed on that worker thread, which Qt does not allow: timers cannot be stopped
from another thread, and a widget's destructor touches the application's state.  The
process can crash, at a moment that has nothing to do with the object.

`MainThreadCollector` turns automatic collection off and runs it from a Qt timer on the
GUI thread instead, by the interpreter's own thresholds, so collections are as frequent as
before (checked every `interval_ms`) and always on the thread that owns the widgets.
Reference counting still frees everything that is not in a cycle at once, on any thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 500


class MainThreadCollector(QObject):
    """Create and `start()` on the GUI thread; `stop()` gives collection back to Python."""

    def __init__(self, interval_ms: int = CHECK_INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._was_enabled = False
        self.collections = [0, 0, 0]  # per generation, for tests and diagnostics

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self, *, freeze: bool = True) -> None:
        """Take collection over.  `freeze` first collects, then moves everything alive (the
        modules loaded so far) out of the collector's sight, so the full collections this
        timer runs do not walk them again and again."""
        if self.active:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        if freeze:
            gc.collect()
            gc.freeze()
        self._timer.start()

    def stop(self) -> None:
        if not self.active:
            return
        self._timer.stop()
        if self._was_enabled:
            gc.enable()

    def check(self) -> int | None:
        """Collect the oldest generation whose count is over its threshold (the rule the
        interpreter applies itself); the generation collected, or None."""
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                gc.collect(generation)
                self.collections[generation] += 1
                return generation
        return None
