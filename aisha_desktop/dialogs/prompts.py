"""`DialogPrompts`: start-up questions asked with the dialogs (`bootstrap.Prompts`).

Dialogs are opened window-modal with `open()` and awaited through their `finished` signal,
never with `exec()`: a nested Qt loop would stall the asyncio tasks the dialogs await."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLabel, QWidget

from aisha_desktop.client import Session
from aisha_desktop.dialogs.first_run import FirstRunDialog
from aisha_desktop.dialogs.login import LoginDialog
from aisha_desktop.first_run import FirstRun
from aisha_desktop.signin import LoginRequest


async def finished(dialog: QDialog) -> int:
    """Open `dialog` and wait for its result code."""
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(code: int) -> None:
        if not future.done():
            future.set_result(code)

    dialog.finished.connect(done)
    dialog.open()
    try:
        return await future
    finally:
        dialog.finished.disconnect(done)


class DialogPrompts:
    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent
        self.splash = QLabel("Starting AiSHA...")
        self.splash.setWindowTitle("AiSHA")
        self.splash.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.splash.setMinimumSize(360, 120)

    def status(self, text: str) -> None:
        self.splash.setText(text)
        self.splash.show()

    def close(self) -> None:
        self.splash.close()

    async def first_run(self, setup: FirstRun, server_url: str) -> bool:
        dialog = FirstRunDialog(setup, server_url, self.parent)
        try:
            return await finished(dialog) == QDialog.DialogCode.Accepted
        finally:
            dialog.deleteLater()

    async def login(self, request: LoginRequest) -> Session | None:
        dialog = LoginDialog(request, self.parent)
        try:
            accepted = await finished(dialog) == QDialog.DialogCode.Accepted
            return dialog.session if accepted else None
        finally:
            dialog.deleteLater()
