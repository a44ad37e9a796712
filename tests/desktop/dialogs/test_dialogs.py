"""The start-up dialogs against a real bundled server: bad input caught before sending,
the server's refusals shown in the dialog, success closing it; each rendered to PNG."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from keyring.backends.fail import Keyring as NoKeyring
from PySide6.QtWidgets import QDialog

from aisha_desktop.client import ApiClient, MemoryTokenStore
from aisha_desktop.client.tokens import KeyringTokenStore
from aisha_desktop.dialogs import ConnectionDialog, FirstRunDialog, LoginDialog
from aisha_desktop.first_run import FirstRun, setup_open
from aisha_desktop.local_server import LocalServer
from aisha_desktop.settings import DesktopSettings
from aisha_desktop.signin import LoginForm, LoginRequest
from tests.desktop.dialogs.conftest import Loop, screenshot

pytestmark = pytest.mark.timeout(120)
PASSWORD = "Str0ng-pass!"


def fill(dialog: FirstRunDialog, **values: str) -> None:
    for name, value in values.items():
        dialog.inputs[name].setText(value)


def visible_errors(errors: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {name: label.text() for name, label in errors.items() if not label.isHidden()}


def test_first_run_wizard(qtbot, qloop: Loop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = LocalServer(tmp_path)
    url = qloop.run(server.start())
    api = ApiClient(url, token_store=MemoryTokenStore())
    try:
        dialog = FirstRunDialog(FirstRun(api), url)
        qtbot.addWidget(dialog)
        dialog.show()
        # bad input: nothing is sent
        fill(dialog, tenant_name="  ", email="not-an-email", password="short", password_again="x")
        dialog.submit()
        errors = visible_errors(dialog.errors)
        assert set(errors) == {"tenant_name", "email", "password"}
        assert "8 characters" in errors["password"]
        screenshot(dialog, "first-run-errors")
        fill(dialog, tenant_name="Acme", email="admin@acme.test", password=PASSWORD,
             password_again=PASSWORD + "x")  # fmt: skip
        dialog.submit()
        assert set(visible_errors(dialog.errors)) == {"password_again"}
        assert qloop.run(setup_open(url)), "the wizard sent something for bad input"

        # all fields fit: the superadmin and the tenant are created, the wizard closes
        fill(dialog, tenant_name="Acme Ltd", first_name="Ada", last_name="Admin",
             password_again=PASSWORD)  # fmt: skip
        screenshot(dialog, "first-run")
        dialog.submit()
        qloop.until(lambda: dialog.result() == QDialog.DialogCode.Accepted)
        assert dialog.setup.tenant is not None and dialog.setup.tenant["name"] == "Acme Ltd"
        assert not qloop.run(setup_open(url))

        # the server's refusal: a second wizard on the set-up server
        again = FirstRunDialog(FirstRun(ApiClient(url)), url)
        qtbot.addWidget(again)
        again.show()
        fill(again, tenant_name="Other", email="other@acme.test", password=PASSWORD,
             password_again=PASSWORD)  # fmt: skip
        again.submit()
        qloop.until(lambda: not again.error.isHidden())
        assert "set up already" in again.error.text()
        assert again.result() != QDialog.DialogCode.Accepted
        assert again.create_button.isEnabled()  # usable again after the answer
        screenshot(again, "first-run-server-error")
        qloop.run(again.setup.api.aclose())
    finally:
        qloop.run(api.aclose())
        qloop.run(server.stop())


def test_login_dialog(qtbot, qloop: Loop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = LocalServer(tmp_path)
    url = qloop.run(server.start())
    setup_api = ApiClient(url)
    api = ApiClient(url)
    try:
        from aisha_desktop.first_run import FirstRunForm

        qloop.run(
            FirstRun(setup_api).complete(
                FirstRunForm("Acme", "Ada", "Admin", "ada@acme.test", PASSWORD, PASSWORD)
            )
        )
        store = KeyringTokenStore(url, backend=NoKeyring())  # type: ignore[no-untyped-call]
        attempts: list[LoginForm] = []

        async def attempt(form: LoginForm):  # type: ignore[no-untyped-def]
            attempts.append(form)
            if not form.email:
                raise ValueError({"email": "Enter an email address"})
            return await api.login(form.email, form.password)

        request = LoginRequest(
            url=url, url_editable=True, email="ada@acme.test", remember=True,
            keyring_available=store.available, keyring_reason=store.reason,
            message="", attempt=attempt,
        )  # fmt: skip
        dialog = LoginDialog(request)
        qtbot.addWidget(dialog)
        dialog.show()
        # no keyring here: "remember me" is off, disabled, and the dialog says why
        assert not dialog.remember.isEnabled() and not dialog.remember.isChecked()
        assert not dialog.keyring_note.isHidden()
        assert "keyring" in dialog.keyring_note.text().lower()

        dialog.email.setText("")
        dialog.submit()
        qloop.until(lambda: not dialog.errors["email"].isHidden())
        assert dialog.errors["email"].text() == "Enter an email address"

        dialog.email.setText("ada@acme.test")
        dialog.password.setText("wrong-Passw0rd")
        dialog.submit()
        qloop.until(lambda: not dialog.error.isHidden())
        assert "invalid" in dialog.error.text().lower()
        assert dialog.result() != QDialog.DialogCode.Accepted
        assert dialog.sign_in.isEnabled() and not dialog.remember.isEnabled()
        screenshot(dialog, "login-error")

        dialog.password.setText(PASSWORD)
        dialog.submit()
        qloop.until(lambda: dialog.result() == QDialog.DialogCode.Accepted)
        assert dialog.session is not None and dialog.session.user.email == "ada@acme.test"
        assert attempts[-1].remember is False

        expired = LoginDialog(
            LoginRequest(
                url=url, url_editable=False, email="ada@acme.test", remember=True,
                keyring_available=True, keyring_reason=None,
                message="Your session ended. Sign in again; your unsaved edits are kept.",
                attempt=attempt,
            )
        )  # fmt: skip
        qtbot.addWidget(expired)
        expired.show()
        assert expired.url.isReadOnly() and expired.remember.isEnabled()
        assert "unsaved edits are kept" in expired.message.text()
        screenshot(expired, "login-session-ended")
    finally:
        qloop.run(setup_api.aclose())
        qloop.run(api.aclose())
        qloop.run(server.stop())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_dialog(qtbot, qloop: Loop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = LocalServer(tmp_path)
    url = qloop.run(server.start())
    try:
        dialog = ConnectionDialog(DesktopSettings())
        qtbot.addWidget(dialog)
        dialog.show()
        assert dialog.bundled.isChecked() and not dialog.url.isEnabled()
        screenshot(dialog, "connection-bundled")

        dialog.remote.setChecked(True)
        dialog.url.setText("ftp://files.example.org")
        dialog.submit()
        assert not dialog.url_error.isHidden() and "http" in dialog.url_error.text()
        assert dialog.result() != QDialog.DialogCode.Accepted

        dialog.url.setText(f"http://127.0.0.1:{free_port()}")
        dialog.run_test()
        qloop.until(lambda: "Cannot reach" in dialog.outcome.text())
        assert dialog.url_error.isHidden()

        dialog.url.setText(url)
        dialog.run_test()
        qloop.until(lambda: dialog.outcome.text().startswith("Connected"))
        assert "sqlite" in dialog.outcome.text().lower()
        screenshot(dialog, "connection-remote")
        dialog.submit()
        assert dialog.result() == QDialog.DialogCode.Accepted
        assert dialog.settings.server_mode == "remote" and dialog.settings.server_url == url
    finally:
        qloop.run(server.stop())
