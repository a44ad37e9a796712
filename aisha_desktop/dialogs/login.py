"""The sign-in dialog: server URL (remote servers), email, password, "remember me".

"Remember me" keeps the sign-in in the OS keyring; without a usable keyring the box is
disabled and the dialog says why.  Input is checked before sending; the server's refusal
(wrong password, locked out, unreachable) shows in the dialog, which stays open for another
try.  Used at start-up and again when a session ends, without touching unsaved edits.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import Session
from aisha_desktop.dialogs.common import (
    BANNER_INFO,
    Busy,
    banner,
    describe,
    field_error_label,
    field_errors,
    show_banner,
)
from aisha_desktop.signin import LoginForm, LoginRequest


class LoginDialog(QDialog):
    def __init__(self, request: LoginRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.session: Session | None = None
        self.setWindowTitle("Sign in to AiSHA")
        self.setMinimumWidth(440)

        self.message = banner()
        self.error = banner()
        self.url = QLineEdit(request.url)
        self.url.setPlaceholderText("https://crm.example.org")
        self.url.setReadOnly(not request.url_editable)
        self.email = QLineEdit(request.email)
        self.email.setPlaceholderText("you@company.com")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox("Remember me on this computer")
        self.remember.setChecked(request.remember and request.keyring_available)
        self.remember.setEnabled(request.keyring_available)
        self.keyring_note = QLabel(request.keyring_reason or "")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setStyleSheet("color: #5f6368;")
        self.keyring_note.setVisible(not request.keyring_available)
        self.errors = {name: field_error_label() for name in ("url", "email", "password")}

        form = QFormLayout()
        form.addRow("Server", self.url)
        form.addRow("", self.errors["url"])
        form.addRow("Email", self.email)
        form.addRow("", self.errors["email"])
        form.addRow("Password", self.password)
        form.addRow("", self.errors["password"])
        form.addRow("", self.remember)
        form.addRow("", self.keyring_note)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.sign_in = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.sign_in.setText("Sign in")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        show_banner(self.message, request.message, BANNER_INFO)
        self.busy = Busy(self, [self.url, self.email, self.password, self.sign_in])
        (self.password if request.email else self.email).setFocus()

    def form(self) -> LoginForm:
        return LoginForm(
            url=self.url.text().strip(),
            email=self.email.text().strip(),
            password=self.password.text(),
            remember=self.remember.isChecked() and self.remember.isEnabled(),
        )

    def submit(self) -> None:
        self.busy.run(self._submit())

    def _show_errors(self, found: dict[str, str]) -> None:
        for name, label in self.errors.items():
            label.setText(found.get(name, ""))
            label.setVisible(name in found)

    async def _submit(self) -> None:
        self._show_errors({})
        show_banner(self.error, "")
        form = self.form()
        try:
            self.session = await self.request.attempt(form)
        except Exception as exc:
            found = field_errors(exc)
            self._show_errors(found)
            if not found or not set(found) <= set(self.errors):
                show_banner(self.error, describe(exc) if not found else "; ".join(found.values()))
            self.password.setFocus()
            return
        self.accept()
