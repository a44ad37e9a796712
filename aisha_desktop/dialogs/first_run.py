"""The first-run wizard of an empty bundled server: the organisation (first tenant) and its
superadmin.  Every field is checked before anything is sent (the server's own rules: email
syntax, password strength); what the server still refuses shows next to the field it names,
or above the buttons.  A second try after a refused tenant name does not create the user
again (`FirstRun` remembers)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.dialogs.common import (
    Busy,
    banner,
    describe,
    field_error_label,
    field_errors,
    show_banner,
)
from aisha_desktop.first_run import FirstRun, FirstRunForm

FIELDS = ("tenant_name", "first_name", "last_name", "email", "password", "password_again")
# the server's names for fields of the two requests -> the form's
SERVER_FIELDS = {"name": "tenant_name", "slug": "tenant_name"}


class FirstRunDialog(QDialog):
    def __init__(self, setup: FirstRun, server_url: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setup = setup
        self.setWindowTitle("Welcome to AiSHA")
        self.setMinimumWidth(480)

        intro = QLabel(
            "<b>Set up AiSHA</b><br>This computer's AiSHA server is new. Name your "
            "organisation and create the administrator account that manages it."
        )
        intro.setWordWrap(True)
        where = QLabel(f"Server: {server_url}")
        where.setStyleSheet("color: #5f6368;")
        self.inputs = {name: QLineEdit() for name in FIELDS}
        self.inputs["tenant_name"].setPlaceholderText("Acme Ltd")
        self.inputs["email"].setPlaceholderText("admin@acme.com")
        for secret in ("password", "password_again"):
            self.inputs[secret].setEchoMode(QLineEdit.EchoMode.Password)
        self.inputs["password"].setToolTip(
            "At least 8 characters, mixing three of: lower case, upper case, digits, symbols"
        )
        self.errors = {name: field_error_label() for name in FIELDS}

        organisation = QGroupBox("Organisation")
        org_form = QFormLayout(organisation)
        self._row(org_form, "Name", "tenant_name")
        admin = QGroupBox("Administrator")
        admin_form = QFormLayout(admin)
        self._row(admin_form, "First name", "first_name")
        self._row(admin_form, "Last name", "last_name")
        self._row(admin_form, "Email", "email")
        self._row(admin_form, "Password", "password")
        self._row(admin_form, "Repeat password", "password_again")
        hint = QLabel(
            "At least 8 characters; mix three of lower case, upper case, digits, symbols."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #5f6368;")
        admin_form.addRow("", hint)

        self.error = banner()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.create_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.create_button.setText("Create and sign in")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(where)
        layout.addWidget(organisation)
        layout.addWidget(admin)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.busy = Busy(self, [*self.inputs.values(), self.create_button])
        self.inputs["tenant_name"].setFocus()

    def _row(self, form: QFormLayout, label: str, name: str) -> None:
        form.addRow(label, self.inputs[name])
        form.addRow("", self.errors[name])

    def form(self) -> FirstRunForm:
        return FirstRunForm(**{name: self.inputs[name].text() for name in FIELDS})

    def show_errors(self, found: dict[str, str]) -> None:
        for name, label in self.errors.items():
            label.setText(found.get(name, ""))
            label.setVisible(name in found)
        for name in FIELDS:
            if name in found:
                self.inputs[name].setFocus()
                break

    def submit(self) -> None:
        form = self.form()
        problems = form.problems()
        self.show_errors(problems)
        show_banner(self.error, "")
        if not problems:
            self.busy.run(self._submit(form))

    async def _submit(self, form: FirstRunForm) -> None:
        try:
            await self.setup.complete(form)
        except Exception as exc:
            found = {SERVER_FIELDS.get(k, k): v for k, v in field_errors(exc).items()}
            shown = {k: v for k, v in found.items() if k in self.errors}
            self.show_errors(shown)
            show_banner(self.error, describe(exc))
            if self.setup.user_created:  # the account exists now: only the rest is retried
                for name in ("first_name", "last_name", "email", "password", "password_again"):
                    self.inputs[name].setReadOnly(True)
            return
        self.accept()
