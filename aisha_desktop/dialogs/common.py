"""What the dialogs share: running a coroutine from a button without blocking the GUI
thread (the control disabled meanwhile), per-field error labels, and the server's errors in
words."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QWidget

from aisha_desktop.client import ClientError, OfflineError, ValidationError
from aisha_desktop.client.errors import ApiError, RateLimited, ServerError

log = logging.getLogger("aisha.desktop.dialogs")

ERROR_STYLE = "color: #b3261e;"
BANNER_ERROR = (
    "QLabel { background: #fdecea; color: #8c1d18; border: 1px solid #f1b0aa; "
    "border-radius: 4px; padding: 6px; }"
)
BANNER_INFO = (
    "QLabel { background: #e8f0fe; color: #174ea6; border: 1px solid #aecbfa; "
    "border-radius: 4px; padding: 6px; }"
)
BANNER_OK = (
    "QLabel { background: #e6f4ea; color: #0d652d; border: 1px solid #a8dab5; "
    "border-radius: 4px; padding: 6px; }"
)


def field_error_label() -> QLabel:
    label = QLabel()
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.hide()
    return label


def banner() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def show_banner(label: QLabel, text: str, style: str = BANNER_ERROR) -> None:
    label.setStyleSheet(style)
    label.setText(text)
    label.setVisible(bool(text))


def describe(exc: BaseException) -> str:
    """The message a user can act on (never a traceback)."""
    if isinstance(exc, OfflineError):
        return f"Cannot reach the server. {exc.message}"
    if isinstance(exc, RateLimited):
        wait = f" Try again in {exc.retry_after:.0f} s." if exc.retry_after else ""
        return f"Too many attempts.{wait}"
    if isinstance(exc, ServerError):
        ref = f" (request {exc.request_id})" if exc.request_id else ""
        return f"The server failed: {exc.message}{ref}"
    if isinstance(exc, ApiError):
        return exc.message
    if isinstance(exc, ClientError):
        return exc.message
    return str(exc) or type(exc).__name__


def field_errors(exc: BaseException) -> dict[str, str]:
    """`{field: message}` from a validation error or a `ValueError({field: message})`."""
    if isinstance(exc, ValidationError):
        return exc.field_errors
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], dict):
        return {str(k): str(v) for k, v in exc.args[0].items()}
    return {}


def _after(task: asyncio.Task[Any], then: Callable[[], None]) -> None:
    if not task.cancelled():
        with contextlib.suppress(RuntimeError):  # a widget deleted meanwhile
            then()


class Busy:
    """Runs one coroutine at a time for a dialog, with `controls` disabled meanwhile.
    Tasks are owned: closing the dialog cancels what still runs."""

    def __init__(self, dialog: QDialog, controls: Iterable[QWidget]) -> None:
        self.controls = list(controls)
        self.task: asyncio.Task[Any] | None = None
        dialog.finished.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def run(
        self, work: Coroutine[Any, Any, Any], then: Callable[[], None] | None = None
    ) -> asyncio.Task[Any] | None:
        """Start `work` (None: other work runs still, and `work` is dropped).  `then` runs
        once it has ended and the controls are enabled again, unless it was cancelled (the
        dialog closed: its widgets may be gone)."""
        if self.running:
            work.close()
            return None
        for control in self.controls:
            control.setEnabled(False)
        task = asyncio.ensure_future(work)
        self.task = task
        task.add_done_callback(self._done)
        if then is not None:
            task.add_done_callback(lambda t: _after(t, then))
        return task

    async def wait(self) -> None:
        """Until the work under way (if any) has ended, however it ended."""
        if self.task is not None:
            await asyncio.wait({self.task})

    def _done(self, task: asyncio.Task[Any]) -> None:
        for control in self.controls:
            with contextlib.suppress(RuntimeError):  # the dialog may be gone already
                control.setEnabled(True)
        if not task.cancelled() and task.exception() is not None:
            log.error("dialog task failed", exc_info=task.exception())

    def cancel(self, *_: object) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
