"""The users-and-invitations and employees dialogs against a real server (invitation mail
to a real SMTP sink): an admin's invitations, role and status changes reach the server, bad
input is caught before sending, the server's refusals (409, 422, 403) show in the dialog,
and an employee gets the dialogs read-only; rendered to docs/screenshots/admin-*.png."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from aisha_desktop.dialogs.admin import EmployeesDialog, UsersDialog, open_admin_dialog
from aisha_desktop.dialogs.admin.users import Invitation
from tests.conftest import SmtpSink
from tests.desktop.dialogs.conftest import screenshot
from tests.desktop.dialogs.test_admin_dialogs import Confirmations, banner
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures
from tests.factories import make_user

pytestmark = pytest.mark.timeout(120)

PEOPLE = (
    ("Amara", "Okafor", "manager", "Sales"),
    ("Lukas", "Brenner", "employee", "Sales"),
    ("Mei", "Tanaka", "employee", "Support"),
    ("Rafael", "Ortiz", "support", "Support"),
)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the dialogs only see the HTTP API


@pytest.fixture
def settings_overrides(smtp_settings: dict[str, Any]) -> dict[str, Any]:
    return smtp_settings


async def people(live: Live, team: Team) -> None:  # noqa: F811
    for first, last, role, department in PEOPLE:
        await make_user(
            live.app,
            role=role,
            tenant_id=team.tenant_id,
            email=f"{first}.{last}@northwind.example".lower(),
            first_name=first,
            last_name=last,
            department=department,
        )


def shot(dialog: Any, name: str) -> None:
    """Render after the pending layout requests (an error label shown or hidden since)."""
    QApplication.processEvents()
    screenshot(dialog, name)


async def opened(kind: Any, live: Live, user: Any, team: Team, qtbot: Any) -> Any:  # noqa: F811
    api = await live.api(user, direct=True)
    dialog = open_admin_dialog(kind, api, str(team.tenant_id))
    qtbot.addWidget(dialog)
    await dialog.wait()
    assert dialog.error.isHidden(), dialog.error.text()
    return dialog


# -- users and invitations -------------------------------------------------------------------


async def test_users_invite_resend_revoke(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    smtp_sink: SmtpSink,
) -> None:
    await people(live, team)
    dialog: UsersDialog = await opened("users", live, team.admin, team, qtbot)
    api = dialog.api
    emails = {u.email for u in dialog.users}
    assert {team.admin.email, "amara.okafor@northwind.example"} <= emails
    assert dialog.table.rowCount() == len(dialog.users) == 8
    row = next(i for i, u in enumerate(dialog.users) if u.email.startswith("amara"))
    assert [dialog.table.item(row, c).text() for c in range(4)] == [
        "Amara Okafor",
        "amara.okafor@northwind.example",
        "Manager",
        "Active",
    ]

    # the filter narrows the list as one types (every word, any column)
    dialog.list.filter.setText("northwind EMPLOYEE")
    assert [u.name for u in dialog.list.visible()] == ["Lukas Brenner", "Mei Tanaka"]
    dialog.list.filter.setText("read-only")
    assert [u.name for u in dialog.list.visible()] == ["Rafael Ortiz"]
    dialog.list.filter.clear()
    assert len(dialog.list.visible()) == 8

    def invite(
        email: str, first: str = "Jane", last: str = "Smith", role: str = "employee"
    ) -> None:
        dialog.email.setText(email)
        dialog.first_name.setText(first)
        dialog.last_name.setText(last)
        dialog.new_role.setCurrentIndex(dialog.new_role.findData(role))
        dialog.invite()

    # bad input is refused before sending: nothing reaches the server, no mail goes out
    invite("not-an-email", first="", role="")
    assert "@" in dialog.errors.text("email") or "email" in dialog.errors.text("email").lower()
    assert dialog.errors.text("first_name") == "Required."
    assert dialog.errors.text("role") == "Choose a role."
    assert "no invitation was sent" in banner(dialog)
    invite("AMARA.okafor@northwind.example")
    assert "exists already" in dialog.errors.text("email")
    assert dialog.busy is not None and not dialog.busy.running
    shot(dialog, "admin-users-errors")
    assert len(await api.request("GET", "/api/users")) == 8
    assert smtp_sink.messages == []

    # a good invitation: the user is listed as invited and the mail goes out
    invite("jane.smith@northwind.example", role="manager")
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    assert "Invitation sent to jane.smith@northwind.example as Manager" in dialog.status.text()
    jane = dialog.selected()
    assert jane is not None and (jane.email, jane.role, jane.status) == (
        "jane.smith@northwind.example",
        "manager",
        "invited",
    )
    mails = await smtp_sink.wait_for(1)
    assert mails[0]["To"] == "jane.smith@northwind.example"
    assert dialog.email.text() == "" and dialog.new_role.currentData() == ""
    assert dialog.resend_button.isEnabled() and dialog.revoke_button.isEnabled()
    assert not dialog.deactivate_button.isEnabled()  # nothing to deactivate yet

    # resend: a second mail; the first link stops working (the server's doing)
    dialog.resend_selected()
    await dialog.wait()
    assert "Invitation sent again to jane.smith@northwind.example" in dialog.status.text()
    assert "valid until" in dialog.status.text()
    await smtp_sink.wait_for(2)
    shot(dialog, "admin-users")

    # the server's refusal: another console invited the same address meanwhile (409)
    await api.request(
        "POST",
        "/api/users",
        json={"email": "omar.haddad@northwind.example", "role": "employee",
              "tenant_id": str(team.tenant_id), "send_invitation": True},
    )  # fmt: skip
    invite("omar.haddad@northwind.example", first="Omar", last="Haddad")
    await dialog.wait()
    assert "409" not in banner(dialog) and "already" in banner(dialog).lower()
    assert "already" in dialog.errors.text("email").lower()

    # the server's own check (422) at the field: a role it does not know (the dialog's
    # check is bypassed to get there)
    dialog.run(dialog._invite(Invitation("kim.lee@northwind.example", "Kim", "Lee", "pilot")))
    await dialog.wait()
    assert dialog.errors.text("role") == "unknown role" and "Unknown role" in banner(dialog)
    assert "kim.lee@northwind.example" not in {u.email for u in dialog.users}

    # revoke: asked first (a "no" sends nothing), then the invited user is gone
    dialog.select_user("jane.smith@northwind.example")
    dialog.confirm = refuse = Confirmations(answer=False)
    dialog.revoke_selected()
    assert refuse.asked and "stops working" in refuse.asked[0]
    assert dialog.busy is not None and not dialog.busy.running
    dialog.confirm = Confirmations()
    dialog.revoke_selected()
    await dialog.wait()
    assert banner(dialog) == ""
    assert "jane.smith@northwind.example" not in {u.email for u in dialog.users}
    stored = await api.request("GET", "/api/users", params={"q": "jane.smith"})
    assert stored == []


async def test_users_role_and_status(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    await people(live, team)
    dialog: UsersDialog = await opened("users", live, team.admin, team, qtbot)
    api = dialog.api

    # one's own row: role and status are not offered
    dialog.select_user(team.admin.email)
    assert not dialog.role_button.isEnabled() and not dialog.deactivate_button.isEnabled()

    lukas = dialog.select_user("lukas.brenner@northwind.example")
    assert dialog.role_choice.currentData() == "employee"
    dialog.role_choice.setCurrentIndex(dialog.role_choice.findData("manager"))
    dialog.change_role()
    await dialog.wait()
    assert banner(dialog) == "" and "is now Manager" in dialog.status.text()
    stored = await api.request("GET", f"/api/users/{lukas.id}")
    assert stored["role"] == "manager"

    # deactivate (asked first), then the server has the user disabled; reactivate
    dialog.confirm = asked = Confirmations()
    dialog.deactivate_selected()
    await dialog.wait()
    assert "signed out everywhere" in asked.asked[0]
    assert (await api.request("GET", f"/api/users/{lukas.id}"))["status"] == "disabled"
    assert dialog.selected() is not None and dialog.selected().status == "disabled"
    assert dialog.table.item(dialog.users.index(dialog.selected()), 3).text() == "Deactivated"
    assert dialog.reactivate_button.isEnabled() and not dialog.role_button.isEnabled()
    dialog.reactivate_selected()
    await dialog.wait()
    assert (await api.request("GET", f"/api/users/{lukas.id}"))["status"] == "active"

    # the server's refusal: an admin may not hand out superadmin (403), shown in words
    dialog.run(dialog._update(lukas, {"role": "superadmin"}, "never"))
    await dialog.wait()
    assert "403 Forbidden" in banner(dialog) and "superadmin" in banner(dialog)
    assert (await api.request("GET", f"/api/users/{lukas.id}"))["role"] == "manager"


async def test_users_read_only_for_an_employee(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    dialog: UsersDialog = await opened("users", live, team.employee, team, qtbot)
    assert not dialog.can_edit and "only administrators" in dialog.note.text()
    assert dialog.users == [] and dialog.table.rowCount() == 0
    assert "Only administrators" in dialog.status.text()
    assert not any(e.isEnabled() for e in dialog.editors)


# -- employees -------------------------------------------------------------------------------


async def test_employees(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    await people(live, team)
    api_admin = await live.api(team.admin, direct=True)
    await api_admin.request(
        "POST",
        "/api/users",
        json={"email": "priya.shah@northwind.example", "first_name": "Priya",
              "last_name": "Shah", "role": "employee", "tenant_id": str(team.tenant_id),
              "password": "Long-enough-pass-1"},
    )  # fmt: skip
    dialog: EmployeesDialog = await opened("employees", live, team.admin, team, qtbot)
    api = dialog.api
    assert len(dialog.employees) == 8 and dialog.box.title() == "New employee"
    # the logins offered: users of the tenant without an employee record
    offered = [dialog.login.itemData(i) for i in range(dialog.login.count())]
    assert offered == ["", "priya.shah@northwind.example"]

    def fill(**values: str) -> None:
        for key, text in values.items():
            dialog.inputs[key].setText(text)

    dialog.list.filter.setText("sales")
    assert {e.name for e in dialog.list.visible()} == {"Amara Okafor", "Lukas Brenner"}
    dialog.list.filter.clear()

    # bad input: nothing sent
    fill(first_name="", email="not-an-email", phone="5" * 51)
    dialog.save()
    assert "first name is required" in dialog.errors.text("first_name")
    assert dialog.errors.text("email") and "50 characters" in dialog.errors.text("phone")
    assert "nothing was saved" in banner(dialog)
    shot(dialog, "admin-employees-errors")
    assert len(await api.request("GET", "/api/employees")) == 8

    # a new employee without a login
    fill(first_name="Sofia", last_name="Lindqvist", email="sofia.l@northwind.example",
         department="Marketing", title="Campaign Manager", phone="+1-555-0142")  # fmt: skip
    dialog.save()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    sofia = dialog.selected()
    assert sofia is not None and sofia.name == "Sofia Lindqvist" and sofia.user_id is None
    assert dialog.box.title() == "Edit Sofia Lindqvist"

    # a new employee linked to a login: the email follows the user
    dialog.new_employee()
    fill(first_name="Priya", last_name="Shah", department="Sales", title="SDR")
    dialog.login.setCurrentIndex(dialog.login.findData("priya.shah@northwind.example"))
    assert dialog.inputs["email"].text() == "priya.shah@northwind.example"
    assert not dialog.inputs["email"].isEnabled()
    dialog.save()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    priya = dialog.selected()
    assert priya is not None and priya.user_id is not None
    assert priya.email == "priya.shah@northwind.example"

    # edit sends what changed
    dialog.select_employee(sofia.id)
    assert dialog.inputs["title"].text() == "Campaign Manager"
    dialog.inputs["title"].setText("Head of Marketing")
    assert dialog.body(dialog.values()) == {"title": "Head of Marketing"}
    dialog.save()
    await dialog.wait()
    stored = await api.request("GET", f"/api/employees/{sofia.id}")
    assert stored["title"] == "Head of Marketing" and stored["department"] == "Marketing"
    dialog.save()
    assert "Nothing to save" in dialog.status.text()
    shot(dialog, "admin-employees")

    # the server's refusal: the email belongs to another employee (409)
    dialog.select_employee(sofia.id)
    dialog.inputs["email"].setText("amara.okafor@northwind.example")
    dialog.save()
    await dialog.wait()
    assert banner(dialog) and dialog.errors.text("email")
    assert (await api.request("GET", f"/api/employees/{sofia.id}"))["email"] == (
        "sofia.l@northwind.example"
    )

    # the server's own check (422) at the field: a login the tenant does not have
    dialog.new_employee()
    dialog.run(dialog._save({"first_name": "Ghost", "user_email": "nobody@northwind.example",
                             "tenant_id": str(team.tenant_id)}))  # fmt: skip
    await dialog.wait()
    assert dialog.errors.text("user_email") and banner(dialog)
    assert len(await api.request("GET", "/api/employees")) == 10

    # deactivate: asked, then inactive (kept, greyed)
    dialog.select_employee(sofia.id)
    dialog.confirm = asked = Confirmations()
    dialog.deactivate_selected()
    await dialog.wait()
    assert "kept" in asked.asked[0]
    assert (await api.request("GET", f"/api/employees/{sofia.id}"))["status"] == "inactive"
    assert not dialog.deactivate_button.isEnabled()


async def test_employees_read_only_for_an_employee(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    dialog: EmployeesDialog = await opened("employees", live, team.employee, team, qtbot)
    assert not dialog.can_edit and not dialog.note.isHidden()
    # an employee sees its own record only (data scope), and cannot change it here
    assert [e.email for e in dialog.employees] == [team.employee.email]
    assert not any(e.isEnabled() for e in dialog.editors)
    shot(dialog, "admin-employees-read-only")
