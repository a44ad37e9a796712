"""Settings -> Connection: the bundled local server or a remote server's URL, with a
"Test connection" button.  The choice is saved to the console's settings and takes effect
at the next start (the replica and sign-in belong to one server)."""

from __future__ import annotations

import httpx
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.common import (
    BANNER_OK,
    Busy,
    banner,
    describe,
    field_error_label,
    show_banner,
)
from aisha_desktop.settings import DesktopSettings


def url_problem(url: str) -> str | None:
    if not url:
        return "Enter the server's URL"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"Not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "Use http://host[:port] or https://host[:port]"
    return None


async def test_connection(url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> str:
    """What the server at `url` says about itself; raises `ClientError` when it cannot."""
    async with ApiClient(url, transport=transport, timeout=10) as api:
        await api.health()
        status = await api.status()
    version = status.get("version", "?") if isinstance(status, dict) else "?"
    database = status.get("database_backend", "?") if isinstance(status, dict) else "?"
    return f"Connected: AiSHA server {version}, database {database}."


class ConnectionDialog(QDialog):
    def __init__(self, settings: DesktopSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings - Connection")
        self.setMinimumWidth(480)

        self.bundled = QRadioButton("This computer (bundled server, no setup)")
        self.remote = QRadioButton("A team server")
        group = QButtonGroup(self)
        group.addButton(self.bundled)
        group.addButton(self.remote)
        self.url = QLineEdit(settings.server_url)
        self.url.setPlaceholderText("https://crm.example.org")
        self.url_error = field_error_label()
        self.test = QPushButton("Test connection")
        self.outcome = banner()
        note = QLabel("A change of server takes effect when AiSHA starts again.")
        note.setStyleSheet("color: #5f6368;")
        note.setWordWrap(True)

        remote_row = QHBoxLayout()
        remote_row.setContentsMargins(24, 0, 0, 0)
        remote_row.addWidget(self.url, 1)
        remote_row.addWidget(self.test)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Where AiSHA keeps its data</b>"))
        layout.addWidget(self.bundled)
        layout.addWidget(self.remote)
        layout.addLayout(remote_row)
        layout.addWidget(self.url_error)
        layout.addWidget(self.outcome)
        layout.addWidget(note)
        layout.addWidget(self.buttons)

        (self.remote if settings.server_mode == "remote" else self.bundled).setChecked(True)
        self.bundled.toggled.connect(self._mode_changed)
        self._mode_changed()
        self.busy = Busy(self, [self.test, self.save])
        self.test.clicked.connect(self.run_test)

    def _mode_changed(self) -> None:
        remote = self.remote.isChecked()
        self.url.setEnabled(remote)
        self.test.setEnabled(remote)
        if not remote:
            self.url_error.hide()

    def _checked_url(self) -> str | None:
        url = self.url.text().strip().rstrip("/")
        problem = url_problem(url)
        self.url_error.setText(problem or "")
        self.url_error.setVisible(problem is not None)
        return None if problem else url

    def run_test(self) -> None:
        show_banner(self.outcome, "")
        url = self._checked_url()
        if url is not None:
            self.busy.run(self._test(url))

    async def _test(self, url: str) -> None:
        show_banner(self.outcome, f"Testing {url}...", BANNER_OK)
        try:
            text = await test_connection(url)
        except Exception as exc:
            show_banner(self.outcome, describe(exc))
            return
        show_banner(self.outcome, text, BANNER_OK)

    def chosen(self) -> DesktopSettings:
        if self.remote.isChecked():
            return self.settings.replace(server_mode="remote", server_url=self._url_text())
        return self.settings.replace(server_mode="bundled")

    def _url_text(self) -> str:
        return self.url.text().strip().rstrip("/")

    def submit(self) -> None:
        if self.remote.isChecked() and self._checked_url() is None:
            return
        self.settings = self.chosen()
        self.accept()
