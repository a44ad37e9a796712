"""A superadmin's tenant switcher against a real server: the status bar lists the server's
tenants, choosing one asks the composition root to switch, and `Bootstrap.switch_tenant`
reopens the console on that tenant's replica (same sign-in), remembers the choice, and
leaves everything as it was when the server refuses; others get neither the switcher nor
the Tenants command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from keyring.backends.fail import Keyring as NoKeyring
from PySide6.QtWidgets import QApplication, QMessageBox

from aisha_desktop.__main__ import _closed, _switch_tenant
from aisha_desktop.bootstrap import Bootstrap
from aisha_desktop.client import ClientError, Session
from aisha_desktop.context import AppContext
from aisha_desktop.dialogs.admin import TenantsDialog, UsersDialog
from aisha_desktop.first_run import FirstRun
from aisha_desktop.settings import SETTINGS_FILE, DesktopSettings
from aisha_desktop.signin import LoginForm, LoginRequest
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures
from tests.factories import SeededUser, make_tenant, make_user

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the console only sees the HTTP API


class SignIn:
    """The start-up prompts of a remote console: sign in as `user`."""

    def __init__(self, live: Live, user: SeededUser) -> None:  # noqa: F811
        self.form = LoginForm(live.url, user.email, user.password, remember=False)

    def status(self, text: str) -> None:
        pass

    async def first_run(self, setup: FirstRun, server_url: str) -> bool:
        raise AssertionError("a remote server has no first run")

    async def login(self, request: LoginRequest) -> Session | None:
        return await request.attempt(self.form)


async def console(live: Live, user: SeededUser, data_dir: Path, tenant_id: str = "") -> Bootstrap:  # noqa: F811
    DesktopSettings().replace(
        server_mode="remote", server_url=live.url, tenant_id=tenant_id, remember_me=False
    ).save(data_dir / SETTINGS_FILE)
    return Bootstrap(
        data_dir,
        SignIn(live, user),
        keyring_backend=NoKeyring(),  # type: ignore[no-untyped-call]
        poll_interval=3600,
    )


def names(context: AppContext) -> set[str]:
    return {str(r.data.get("name")) for r in context.replica.query("accounts", limit=50).rows}


async def test_a_superadmin_switches_tenant(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await make_tenant(live.app, "Northwind Traders", slug="northwind")
    await make_tenant(live.app, "Globex Retail", slug="globex", status="suspended")
    root = await make_user(live.app, role="superadmin", tenant_id=None)
    admin = await live.api(team.admin, direct=True)
    await admin.create_record("accounts", {"name": "Alpha Ltd"})
    setup = await live.api(root, direct=True)
    setup.tenant_id = str(other.id)
    await setup.create_record("accounts", {"name": "Beta GmbH"})

    boot = await console(live, root, tmp_path / "desk", tenant_id=str(team.tenant_id))
    context = await boot.run()
    try:
        assert context.tenant_id == str(team.tenant_id) and context.switch is not None
        await context.engine.sync_now()
        assert names(context) == {"Alpha Ltd"}

        window = MainWindow(context)
        qtbot.addWidget(window)
        switcher = window.tenant_switcher
        assert switcher is not None
        await switcher.tasks.drain()
        listed = [switcher.itemText(i) for i in range(switcher.count())]
        assert listed == ["Globex Retail  (suspended)", "Northwind Traders", "Replica Co"]
        assert switcher.currentData() == str(team.tenant_id) and switcher.isEnabled()
        commands = {c.name for c in window.commands}
        assert {"Tenants…", "Switch tenant…", "Users and invitations…", "API keys…"} <= commands
        window.resize(1100, 520)
        window.show()
        window.open_entity("accounts")
        await window.views["accounts"].tasks.drain()
        QApplication.processEvents()
        shots = screenshot_dir()
        assert window.grab().save(str(shots / "main-window-tenant-switcher.png"))

        # choosing a tenant asks to switch (what `aisha`'s loop waits for); the combo keeps
        # naming this window's tenant
        requested: list[str] = []
        window.tenant_switch_requested.connect(requested.append)
        outcome = asyncio.ensure_future(_closed(window))
        await asyncio.sleep(0)
        switcher.activated.emit(switcher.findData(str(team.tenant_id)))  # the same: nothing
        switcher.activated.emit(switcher.findData(str(other.id)))
        assert requested == [str(other.id)] and await outcome == str(other.id)
        assert switcher.currentData() == str(team.tenant_id)

        # an edit not yet on the server: the switch asks first, and "No" stays
        [alpha] = context.replica.query("accounts", limit=5).rows
        context.replica.local_update("accounts", alpha.id, {"industry": "Retail"})
        asked: list[str] = []
        answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

        def question(_parent: Any, title: str, text: str) -> QMessageBox.StandardButton:
            asked.append(f"{title}: {text}")
            return answers.pop(0)

        monkeypatch.setattr(QMessageBox, "question", question)
        requested.clear()
        switcher.activated.emit(switcher.findData(str(other.id)))
        assert requested == [] and len(asked) == 1
        assert "1 edit made in Replica Co is not on the server yet" in asked[0]
        assert "It stays on this computer" in asked[0]
        switcher.activated.emit(switcher.findData(str(other.id)))
        assert requested == [str(other.id)] and len(asked) == 2
        await context.engine.sync_now()  # pushed: nothing to ask about any more
        assert context.replica.pending_count() == 0
        switcher.activated.emit(switcher.findData(str(other.id)))
        assert requested == [str(other.id)] * 2 and len(asked) == 2

        # a tenant made in the Tenants dialog (opened from the palette) shows in the switcher
        palette = window.open_palette()
        palette.query.setText("tenants")
        assert palette.visible_names() == ["Tenants…"]
        palette.run_current()
        tenants = window.findChild(TenantsDialog)
        assert tenants is not None
        await tenants.wait()
        tenants.name.setText("Initech")
        tenants.save()
        await tenants.wait()
        tenants.reject()
        await switcher.tasks.drain()
        assert switcher.findText("Initech") >= 0 and switcher.currentData() == str(team.tenant_id)

        # a refused switch (no such tenant) changes nothing
        with pytest.raises(ClientError):
            await context.switch("00000000-0000-4000-8000-00000000abcd")
        assert boot.context is context and context.api.tenant_id == str(team.tenant_id)
        await context.engine.sync_now()
        assert context.engine.state.status == "online"

        # the switch: a new window on a new context on the other tenant's replica, same
        # sign-in; the old window closes
        old = context
        context, reopened = await _switch_tenant(old, window, str(other.id))
        qtbot.addWidget(reopened)
        assert reopened is not window and not window.isVisible() and reopened.isVisible()
        assert context is not old and boot.context is context
        assert context.tenant_id == str(other.id) and context.api is old.api
        assert context.api.tenant_id == str(other.id)
        assert old.closers == []  # closing the old context leaves the client and server alone
        with pytest.raises(Exception, match="closed"):
            old.replica.query("accounts")
        await context.engine.sync_now()
        assert names(context) == {"Beta GmbH"}
        saved = DesktopSettings.load(tmp_path / "desk" / SETTINGS_FILE)
        assert saved.tenant_id == str(other.id)
        assert reopened.tenant_switcher is not None
        await reopened.tenant_switcher.tasks.drain()
        assert reopened.tenant_switcher.currentData() == str(other.id)
        reopened.close()

        # and back: the first tenant's replica still holds what it had
        assert context.switch is not None
        context = await context.switch(str(team.tenant_id))
        assert names(context) == {"Alpha Ltd"}
    finally:
        await context.aclose()


async def test_others_get_no_switcher(live: Live, team: Team, qtbot: Any, tmp_path: Path) -> None:  # noqa: F811
    boot = await console(live, team.admin, tmp_path / "admin")
    context = await boot.run()
    try:
        window = MainWindow(context)
        qtbot.addWidget(window)
        assert window.tenant_switcher is None
        commands = {c.name for c in window.commands}
        assert "Tenants…" not in commands and "Switch tenant…" not in commands
        assert {"Users and invitations…", "Employees…", "Tenant settings…"} <= commands
        palette = window.open_palette()
        palette.query.setText("users and inv")
        assert palette.visible_names() == ["Users and invitations…"]
        palette.run_current()
        dialog = window.findChild(UsersDialog)
        assert dialog is not None and dialog.tenant_id == str(team.tenant_id)
        await dialog.wait()
        assert dialog.can_edit and team.admin.email in {u.email for u in dialog.users}
        dialog.close()
        with pytest.raises(Exception, match="superadmin"):
            await context.switch("00000000-0000-4000-8000-00000000abcd")  # type: ignore[misc]
        window.close()
    finally:
        await context.aclose()
