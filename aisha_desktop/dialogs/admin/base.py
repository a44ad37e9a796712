"""What the admin dialogs share: loading from the server on open, read-only mode for users
who may not change tenant settings, confirmations, and the server's refusals in words.

Each dialog loads its data (and the caller's role, from `/api/auth/me`) when it opens; only
admins and the superadmin edit.  Everyone else sees the same values with every editing
control disabled and a line saying why; should the server still refuse a change (a role
taken away meanwhile), its 403 is shown in the dialog's error banner.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QVBoxLayout, QWidget

from aisha_desktop.client import ApiClient, CurrentUser, Forbidden
from aisha_desktop.dialogs.common import (
    BANNER_INFO,
    BANNER_OK,
    Busy,
    banner,
    describe,
    show_banner,
)

# the roles the server lets change entity labels, module settings and custom fields
ADMIN_ROLES = frozenset({"admin", "superadmin"})
READ_ONLY_NOTE = (
    "Read-only: only administrators can change these settings (you are signed in as {role})."
)
Confirm = Callable[[str, str], bool]


def ask(parent: QWidget, title: str, text: str) -> bool:
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


def refusal(exc: BaseException) -> str:
    """The banner text for a failed call: a 403 says plainly that the server refused."""
    if isinstance(exc, Forbidden):
        return f"The server refused this change (403 Forbidden): {exc.message}"
    return describe(exc)


def humanize(key: str) -> str:
    """`realtime_voice` -> `Realtime voice`."""
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


class AdminDialog(QDialog):
    """Base of the admin dialogs.  Subclasses build their widgets, list the editing controls
    in `editors`, and implement `fetch()` (runs on open and after each change)."""

    title = "Settings"
    editing_roles = ADMIN_ROLES  # who edits; everyone else gets the dialog read-only
    read_only_note = READ_ONLY_NOTE

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.api = api
        self.tenant_id = tenant_id
        self.role = ""
        self.me: CurrentUser | None = None
        self.can_edit = False
        self.loaded = False
        self.editors: list[QWidget] = []
        self.setWindowTitle(self.title)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(
            "QLabel { background: #fef7e0; color: #7a4f01; border: 1px solid #f9d88a; "
            "border-radius: 4px; padding: 6px; }"
        )
        self.note.hide()
        self.error = banner()
        self.status = banner()
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.note)
        self.busy: Busy | None = None
        # replaced in tests; a modal question in the GUI
        self.confirm: Confirm = lambda title, text: ask(self, title, text)

    def finish_layout(self) -> None:
        """Call at the end of a subclass's __init__: banners below the content, Busy over
        every editing control."""
        self.layout_.addWidget(self.error)
        self.layout_.addWidget(self.status)
        self.busy = Busy(self, self.editors)
        self.apply_mode()

    # -- running work ---------------------------------------------------------------------
    def start(self) -> None:
        """Load the caller's role and the dialog's data (done by `open_admin_dialog`)."""
        self.run(self._load())

    def run(self, work: Coroutine[Any, Any, Any]) -> None:
        assert self.busy is not None
        task = self.busy.run(self._guarded(work))
        if task is not None:  # after Busy re-enabled its controls: read-only stays read-only
            task.add_done_callback(lambda _: self.apply_mode())

    async def wait(self) -> None:
        """Until the running work is done (tests, and callers that need the answer)."""
        assert self.busy is not None
        if self.busy.task is not None:
            await self.busy.task

    async def _guarded(self, work: Coroutine[Any, Any, Any]) -> None:
        self.clear_banners()
        try:
            await work
        except Exception as exc:
            self.show_failure(exc)

    def clear_banners(self) -> None:
        show_banner(self.error, "")
        show_banner(self.status, "")

    def show_failure(self, exc: BaseException) -> None:
        show_banner(self.error, refusal(exc))

    def show_done(self, text: str) -> None:
        show_banner(self.status, text, BANNER_OK)

    def show_info(self, text: str) -> None:
        show_banner(self.status, text, BANNER_INFO)

    async def _load(self) -> None:
        me = await self.api.me()
        self.me = me
        self.role = me.role
        self.can_edit = me.role in self.editing_roles
        await self.fetch()
        self.loaded = True

    async def fetch(self) -> None:
        raise NotImplementedError

    # -- read-only ------------------------------------------------------------------------
    def apply_mode(self) -> None:
        editable = self.can_edit and self.loaded
        for control in self.editors:
            control.setEnabled(editable)
        if self.loaded and not self.can_edit:
            self.note.setText(self.read_only_note.format(role=self.role or "a user without a role"))
            self.note.show()
        else:
            self.note.hide()
