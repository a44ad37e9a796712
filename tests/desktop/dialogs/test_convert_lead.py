"""Lead conversion against a real server: the dialog starts from the lead and the tenant's
stages, bad input is caught before sending, the server's refusals (422 next to the field,
409 already converted, unreachable) show in the dialog with nothing converted, possible
duplicate contacts need an explicit "Convert anyway"; from the leads view the action is
offline-disabled with the reason, and a conversion ends on the new contact once sync brings
it.  Renders docs/screenshots/convert-lead*.png."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QLabel

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.convert_lead import ConvertLeadDialog
from aisha_desktop.sync import SyncEngine
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.dialogs.conftest import screenshot
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team

live = sync_fixtures.live  # the real server behind a proxy, and users of one tenant
team = sync_fixtures.team

pytestmark = pytest.mark.timeout(120)

LEAD = {
    "first_name": "Amara",
    "last_name": "Mensah",
    "email": "amara.mensah@fabrikam.example",
    "phone": "+1 212 555 0147",
    "title": "Operations Manager",
    "company": "Fabrikam Inc",
    "value": "48000",
    "source": "Trade show",
    "status": "qualified",
}


@pytest.fixture
def backend() -> str:
    # the dialog only sees the HTTP API; one database is enough for client-side behaviour
    return "sqlite"


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        await asyncio.sleep(0.02)


async def a_lead(api: ApiClient, **fields: Any) -> dict[str, Any]:
    return await api.create_record("leads", {**LEAD, **fields}, confirm_duplicate=True)


def dialog_for(
    api: ApiClient, lead: dict[str, Any], qtbot: Any, **options: Any
) -> ConvertLeadDialog:
    dialog = ConvertLeadDialog(api, lead, today=date(2026, 11, 25), **options)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def shown_errors(dialog: ConvertLeadDialog) -> dict[str, str]:
    return {k: v.text() for k, v in dialog.errors.items() if not v.isHidden()}


async def test_prefilled_and_converted_with_an_opportunity(
    live: Live,
    team: Team,
    qtbot: Any,
) -> None:
    api = await live.api(team.admin, direct=True)
    lead = await a_lead(api)
    dialog = dialog_for(api, lead, qtbot, stages=["prospect", "qualified", "proposal"])
    inputs = dialog.inputs
    assert inputs["contact.first_name"].text() == "Amara"
    assert inputs["contact.email"].text() == LEAD["email"]
    assert inputs["contact.title"].text() == "Operations Manager"
    assert inputs["account.name"].text() == "Fabrikam Inc"
    assert dialog.opportunity_box.isChecked()  # the lead has a value
    assert inputs["opportunity.name"].text() == "Fabrikam Inc opportunity"
    assert inputs["opportunity.amount"].text() == "48000"
    assert inputs["opportunity.close_date"].text() == "2026-12-25"
    assert [dialog.stage.itemData(i) for i in range(dialog.stage.count())] == [
        "prospect",
        "qualified",
        "proposal",
    ]
    dialog.stage.setCurrentIndex(1)
    inputs["opportunity.amount"].setText("52000.50")
    screenshot(dialog, "convert-lead")

    dialog.submit()
    await dialog.wait()
    assert dialog.result() == ConvertLeadDialog.DialogCode.Accepted, dialog.error.text()
    result = dialog.conversion
    assert result is not None and dialog.contact_id == str(result["contact"]["id"])
    contact = await api.get_record("contacts", result["contact"]["id"])
    assert (contact["first_name"], contact["email"]) == ("Amara", LEAD["email"])
    assert contact["account_id"] == result["account"]["id"]
    opportunity = await api.get_record("opportunities", result["opportunity"]["id"])
    assert opportunity["stage"] == "qualified" and float(opportunity["amount"]) == 52000.5
    assert str(opportunity["close_date"])[:10] == "2026-12-25"
    assert opportunity["contact_id"] == result["contact"]["id"]
    stored = await api.get_record("leads", lead["id"])
    assert stored["status"] == "converted"

    # converting again: the server's 409 in words, nothing changes
    again = dialog_for(api, lead, qtbot)
    again.opportunity_box.setChecked(False)
    again.submit()
    await again.wait()
    assert again.result() != ConvertLeadDialog.DialogCode.Accepted
    assert "already converted" in again.error.text()
    page = await api.list_records("contacts", q="Mensah")
    assert len(page.items) == 1


async def test_bad_input_is_caught_before_sending(live: Live, team: Team, qtbot: Any) -> None:
    api = await live.api(team.admin, direct=True)
    lead = await a_lead(api)
    dialog = dialog_for(api, lead, qtbot)
    dialog.inputs["contact.email"].setText("not-an-email")
    dialog.inputs["account.name"].setText("   ")
    dialog.inputs["opportunity.name"].setText("")
    dialog.inputs["opportunity.amount"].setText("lots")
    dialog.inputs["opportunity.close_date"].setText("31/12/2026")
    dialog.submit()
    await dialog.wait()
    errors = shown_errors(dialog)
    assert "not an email" in errors["contact.email"]
    assert "needs a name" in errors["account.name"]
    assert "required" in errors["opportunity.name"]
    assert "not a number" in errors["opportunity.amount"]
    assert "not a date" in errors["opportunity.close_date"]
    assert "nothing was sent" in dialog.error.text()
    screenshot(dialog, "convert-lead-errors")
    dialog.inputs["opportunity.amount"].setText("-5")
    dialog.submit()
    await dialog.wait()
    assert "negative" in shown_errors(dialog)["opportunity.amount"]
    assert (await api.get_record("leads", lead["id"]))["status"] == "qualified"

    # what the lead holds is shown as text
    odd = dialog_for(api, {**lead, "company": "<b>Bold</b> & Co"}, qtbot)
    intro = odd.findChildren(QLabel)[0].text()
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in intro

    # without the opportunity its fields are not checked (nor sent)
    for key, value in (("contact.email", LEAD["email"]), ("account.name", "Fabrikam")):
        dialog.inputs[key].setText(value)
    dialog.opportunity_box.setChecked(False)
    assert "opportunity" not in dialog.body() and dialog.problems() == {}


async def test_joining_an_existing_account(live: Live, team: Team, qtbot: Any) -> None:
    api = await live.api(team.admin, direct=True)
    existing = await api.create_record("accounts", {"name": "Fabrikam Inc"})
    other = await api.create_record("accounts", {"name": "Fabrikam Logistics"})
    lead = await a_lead(api)
    accounts = [(other["id"], "Fabrikam Logistics"), (existing["id"], "Fabrikam Inc")]
    dialog = dialog_for(api, lead, qtbot, accounts=accounts)
    # the one named like the lead's company is chosen: no second "Fabrikam Inc"
    assert dialog.existing_account == existing["id"]
    assert dialog.inputs["account.name"].isHidden()
    dialog.inputs["account.name"].setText("")  # not needed, not checked
    dialog.opportunity_box.setChecked(False)
    assert dialog.problems() == {} and dialog.body()["account_id"] == existing["id"]
    assert "account" not in dialog.body()
    screenshot(dialog, "convert-lead-existing-account")
    dialog.submit()
    await dialog.wait()
    assert dialog.conversion is not None, dialog.error.text()
    contact = await api.get_record("contacts", dialog.conversion["contact"]["id"])
    assert contact["account_id"] == existing["id"]
    assert len((await api.list_records("accounts", q="Fabrikam")).items) == 2

    # choosing "new" again asks for the name
    again = dialog_for(api, await a_lead(api, email="x@fabrikam.example"), qtbot, accounts=accounts)
    again.account_choice.setCurrentIndex(0)
    assert again.existing_account is None and not again.inputs["account.name"].isHidden()
    again.inputs["account.name"].setText("")
    assert "account.name" in again.problems()


async def test_server_validation_shows_next_to_the_field(
    live: Live,
    team: Team,
    qtbot: Any,
) -> None:
    # the replica's stage list is stale: the server refuses the stage with a 422
    api = await live.api(team.admin, direct=True)
    lead = await a_lead(api)
    dialog = dialog_for(api, lead, qtbot, stages=["discovery"])
    dialog.submit()
    await dialog.wait()
    assert dialog.result() != ConvertLeadDialog.DialogCode.Accepted
    errors = shown_errors(dialog)
    assert "opportunity.stage" in errors and "prospect" in errors["opportunity.stage"]
    assert "Nothing was converted" in dialog.error.text()
    assert (await api.get_record("leads", lead["id"]))["status"] == "qualified"
    assert not (await api.list_records("contacts", q="Mensah")).items


async def test_possible_duplicate_needs_an_explicit_confirm(
    live: Live,
    team: Team,
    qtbot: Any,
) -> None:
    api = await live.api(team.admin, direct=True)
    await api.create_record(
        "contacts", {"first_name": "Amara", "last_name": "Mensah-Old", "email": LEAD["email"]}
    )
    lead = await a_lead(api)
    dialog = dialog_for(api, lead, qtbot)
    dialog.opportunity_box.setChecked(False)
    dialog.submit()
    await dialog.wait()
    assert dialog.result() != ConvertLeadDialog.DialogCode.Accepted
    assert not dialog.duplicates.isHidden()
    text = dialog.duplicates_label.text()
    assert "Amara Mensah-Old" in text and LEAD["email"] in text and "same email" in text
    assert (await api.get_record("leads", lead["id"]))["status"] == "qualified"
    screenshot(dialog, "convert-lead-duplicate")

    # editing the form hides the warning: the next Convert asks the server again
    dialog.inputs["contact.title"].textEdited.emit("CFO")
    assert dialog.duplicates.isHidden()
    dialog.submit()
    await dialog.wait()
    assert not dialog.duplicates.isHidden()

    dialog.convert_anyway.click()
    await dialog.wait()
    assert dialog.result() == ConvertLeadDialog.DialogCode.Accepted, dialog.error.text()
    assert len((await api.list_records("contacts", q="Amara")).items) == 2
    assert dialog.conversion is not None and dialog.conversion["opportunity"] is None


async def test_a_refusal_is_shown(live: Live, team: Team, qtbot: Any) -> None:
    # an employee of another department: the admin's lead is not theirs to convert
    admin = await live.api(team.admin, direct=True)
    lead = await a_lead(admin)
    peer = await live.api(team.peer, direct=True)
    dialog = dialog_for(peer, lead, qtbot)
    dialog.submit()
    await dialog.wait()
    assert dialog.result() != ConvertLeadDialog.DialogCode.Accepted
    assert dialog.error.text() == "Lead not found. Nothing was converted."  # out of their reach
    assert (await admin.get_record("leads", lead["id"]))["status"] == "qualified"


async def test_unreachable_server_is_reported(live: Live, team: Team, qtbot: Any) -> None:
    api = await live.api(team.admin)  # through the proxy
    lead = await a_lead(api)
    dialog = dialog_for(api, lead, qtbot)
    await live.proxy.cut()
    dialog.submit()
    await dialog.wait()
    assert "Cannot reach the server" in dialog.error.text()
    assert dialog.convert_button.isEnabled()  # try again later
    await live.proxy.restore()
    direct = await live.api(team.admin, direct=True)
    assert (await direct.get_record("leads", lead["id"]))["status"] == "qualified"


@dataclasses.dataclass
class Console:
    replica: Any
    engine: SyncEngine
    server_url: str
    me: Any = None


async def test_leads_view_converts_and_shows_the_new_contact(
    live: Live,
    team: Team,
    qtbot: Any,
) -> None:
    api = await live.api(team.admin, direct=True)
    account = await api.create_record("accounts", {"name": "Fabrikam Inc"})
    lead = await a_lead(api)
    converted = await a_lead(api, email="old@fabrikam.example", last_name="Done")
    engine = await live.engine(team.admin)
    await engine.sync_now()
    win = MainWindow(Console(engine.replica, engine, live.proxy.url), search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    leads = win.open_entity("leads")
    await until(lambda: not leads.model.busy and leads.select_record(lead["id"]))
    button = leads.convert_button
    assert button.isVisible() and button.isEnabled(), button.toolTip()

    # offline: disabled, and the tooltip says why
    win.bridge.state_changed.emit(dataclasses.replace(engine.state, status="offline"))
    assert not button.isEnabled() and "server is unreachable" in button.toolTip()
    assert leads.convert_lead() is None and "server is unreachable" in leads.feedback.text()
    win.bridge.state_changed.emit(engine.state)
    assert button.isEnabled()

    # an unsynced edit of the lead: convert once it reached the server
    await engine.update("leads", lead["id"], {"title": "COO"})
    leads.revert()
    assert not button.isEnabled() and "not yet synced" in button.toolTip()
    await engine.sync_now()
    leads.revert()
    assert button.isEnabled()

    dialog = leads.convert_lead()
    assert dialog is not None and dialog.inputs["contact.title"].text() == "COO"
    assert dialog.existing_account == account["id"]  # found in the replica by the company
    dialog.opportunity_box.setChecked(False)
    dialog.submit()
    await dialog.wait()
    assert dialog.contact_id is not None
    contact_id = dialog.contact_id
    # the contacts view opens and selects the new contact once sync brings it
    contacts = win.views["contacts"]
    assert win.current_view is contacts
    assert contacts._awaited == contact_id
    await engine.sync_now()
    win.bridge.flush()
    await until(lambda: contacts.record_id == contact_id, what="the new contact selected")
    assert "Amara" in contacts.panel_title.text()
    await until(lambda: contacts._awaited is None)

    # the converted lead cannot be converted again
    win.open_entity("leads")
    await until(lambda: leads.select_record(converted["id"]))
    await api.request(
        "POST", f"/api/leads/{converted['id']}/convert", json={"confirm_duplicate": True}
    )
    await engine.sync_now()
    win.bridge.flush()
    await until(lambda: "already converted" in leads.convert_button.toolTip())
    assert not leads.convert_button.isEnabled()
    win.close()
