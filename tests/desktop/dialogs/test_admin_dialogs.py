"""The admin settings dialogs against a real server: an admin's changes reach the server,
bad input is caught before sending, the server's refusals show in the dialog, an employee
gets the dialogs read-only; each rendered to docs/screenshots/admin-*.png."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin import (
    AdminDialog,
    CustomFieldsDialog,
    EntityLabelsDialog,
    ModuleSettingsDialog,
    open_admin_dialog,
)
from tests.desktop.dialogs.conftest import screenshot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backend() -> str:
    # the dialogs only see the HTTP API; one database is enough for client-side behaviour
    return "sqlite"


class Confirmations:
    """Stands in for the modal question: records what was asked, answers as told."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append(text)
        return self.answer


async def opened(kind: Any, api: ApiClient, team: Team, qtbot: Any) -> Any:  # noqa: F811
    dialog = open_admin_dialog(kind, api, str(team.tenant_id))
    qtbot.addWidget(dialog)
    await dialog.wait()
    assert dialog.error.isHidden(), dialog.error.text()
    return dialog


def banner(dialog: AdminDialog) -> str:
    return "" if dialog.error.isHidden() else dialog.error.text()


# -- entity labels ---------------------------------------------------------------------------


async def test_entity_labels(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    api = await live.api(team.admin, direct=True)
    dialog: EntityLabelsDialog = await opened("entity_labels", api, team, qtbot)
    accounts = dialog.rows["accounts"]
    assert accounts.plural.text() == "Accounts" and accounts.plural.placeholderText() == "Accounts"
    assert dialog.save_button.isEnabled() and dialog.note.isHidden()

    # live preview
    accounts.plural.setText("Clients")
    accounts.singular.setText("Client")
    assert accounts.preview.text() == "New Client  ·  3 Clients"
    accounts.singular.clear()  # empty singular previews (and saves) the default
    assert accounts.preview.text() == "New Account  ·  3 Clients"
    accounts.singular.setText("Client")

    # bad input: an empty plural is refused before sending
    dialog.rows["leads"].plural.setText("   ")
    dialog.rows["contacts"].plural.setText("x" * 101)
    dialog.save()
    assert dialog.busy is not None and not dialog.busy.running
    assert "plural name is required" in dialog.rows["leads"].error.text()
    assert "100 characters" in dialog.rows["contacts"].error.text()
    assert "nothing was saved" in banner(dialog)
    screenshot(dialog, "admin-entity-labels-errors")
    stored = await api.request("GET", f"/api/entity-labels/{team.tenant_id}")
    assert stored["accounts"]["plural"] == "Accounts"

    # save sends the changed rows only
    dialog.rows["leads"].plural.setText("Leads")
    dialog.rows["contacts"].plural.setText("People")
    dialog.rows["contacts"].singular.setText("Person")
    dialog.save()
    await dialog.wait()
    assert banner(dialog) == ""
    assert "Saved" in dialog.status.text()
    stored = await api.request("GET", f"/api/entity-labels/{team.tenant_id}")
    assert (stored["accounts"]["plural"], stored["accounts"]["singular"]) == ("Clients", "Client")
    assert stored["contacts"]["singular"] == "Person"
    assert not stored["leads"]["customized"]
    screenshot(dialog, "admin-entity-labels")

    # reset one: asked first; "no" changes nothing
    dialog.confirm = refuse = Confirmations(answer=False)
    dialog.reset_one("accounts")
    assert refuse.asked and "“Clients” to the default “Accounts”" in refuse.asked[0]
    assert dialog.busy is not None and not dialog.busy.running
    dialog.confirm = agree = Confirmations()
    dialog.reset_one("accounts")
    await dialog.wait()
    assert agree.asked
    assert accounts.plural.text() == "Accounts"
    stored = await api.request("GET", f"/api/entity-labels/{team.tenant_id}")
    assert not stored["accounts"]["customized"] and stored["contacts"]["customized"]
    dialog.reset_all()
    await dialog.wait()
    assert dialog.rows["contacts"].plural.text() == "Contacts"
    stored = await api.request("GET", f"/api/entity-labels/{team.tenant_id}")
    assert not any(item["customized"] for item in stored.values())


async def test_entity_labels_server_refusal(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    # another tenant's labels: the server's 403 shows in the dialog
    api = await live.api(team.admin, direct=True)
    other = "00000000-0000-4000-8000-000000000001"
    dialog = open_admin_dialog("entity_labels", api, other)
    qtbot.addWidget(dialog)
    await dialog.wait()
    assert "403" in banner(dialog) and "refused" in banner(dialog)


# -- module settings -------------------------------------------------------------------------


async def test_module_settings(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    api = await live.api(team.admin, direct=True)
    dialog: ModuleSettingsDialog = await opened("module_settings", api, team, qtbot)
    page = dialog.select("opportunities")
    stages = page.editors["stages"]
    assert stages.items() == ["prospect", "qualified", "proposal", "negotiation", "closed"]
    voice = dialog.select("realtime_voice")
    ptt = voice.editors["ptt_enabled"]
    assert ptt.isChecked() and ptt.isEnabled()
    assert dialog.changes() == {}
    dialog.save()
    assert "Nothing to save" in dialog.status.text()

    # bad input: a duplicate and an empty stage are refused before sending
    stages.add("Prospect")
    dialog.save()
    assert "listed twice" in page.error.text() and "nothing was saved" in banner(dialog)
    assert dialog.pages.currentWidget() is page
    stages.list.takeItem(stages.list.count() - 1)
    stages.add("  ")
    dialog.save()
    assert "cannot be empty" in page.error.text()
    stages.list.takeItem(stages.list.count() - 1)

    # only changes are sent: a new stage, push-to-talk off, document processing enabled
    stages.add("won")
    stages.list.setCurrentRow(0)
    stages.shift(1)
    ptt.setChecked(False)
    dialog.set_enabled("document_processing", True)
    changes = dialog.changes()
    assert changes == {
        "opportunities": {
            "settings": {
                "stages": ["qualified", "prospect", "proposal", "negotiation", "closed", "won"]
            }
        },
        "document_processing": {"is_enabled": True},
        "realtime_voice": {"settings": {"ptt_enabled": False}},
    }
    dialog.save()
    await dialog.wait()
    dialog.select("opportunities")
    screenshot(dialog, "admin-module-settings")
    assert banner(dialog) == "" and "Saved" in dialog.status.text()
    stored = {m["module_name"]: m for m in await api.request("GET", "/api/module-settings")}
    assert stored["opportunities"]["settings"]["stages"][-1] == "won"
    assert stored["realtime_voice"]["settings"] == {
        "ptt_enabled": False,
        "auto_play_responses": True,
    }
    assert stored["document_processing"]["is_enabled"]
    assert dialog.changes() == {}  # the answers are the new baseline


async def test_module_settings_server_validation(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    api = await live.api(team.admin, direct=True)
    dialog: ModuleSettingsDialog = await opened("module_settings", api, team, qtbot)
    # the server's own check, shown at the module: stages equal once it strips them (the
    # dialog strips too, so only a body it never builds gets this far)
    dialog.select("workflows")
    dialog.run(dialog._save({"opportunities": {"settings": {"stages": ["new", "new "]}}}))
    await dialog.wait()
    assert dialog.pages.currentWidget() is dialog.page_by_name["opportunities"]
    assert "stages must be unique" in dialog.page_by_name["opportunities"].error.text()
    assert "Validation failed" in banner(dialog)


# -- custom fields ---------------------------------------------------------------------------


async def test_custom_fields(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    api = await live.api(team.admin, direct=True)
    await api.request(
        "POST",
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "birthday", "field_type": "date",
              "label": "Birthday"},
    )  # fmt: skip
    dialog: CustomFieldsDialog = await opened("custom_fields", api, team, qtbot)
    assert [f.field_name for f in dialog.fields] == ["birthday"]
    assert dialog.type.count() == 11 and dialog.options.isHidden()

    def add(name: str, kind: str, label: str = "", options: str = "") -> None:
        dialog.name.setText(name)
        dialog.label.setText(label)
        dialog.type.setCurrentIndex(dialog.type.findData(kind))
        dialog.options.setPlainText(options)
        dialog.add_field()

    # bad input: nothing is sent
    add("birthday", "text")
    assert "exists already" in dialog.errors["field_name"].text()
    add("Bad Name", "text")
    assert "Lower-case" in dialog.errors["field_name"].text()
    add("referral_source", "select", "Referral source")
    assert not dialog.options.isHidden()
    assert "at least one option" in dialog.errors["options"].text()
    add("referral_source", "multiselect", "Referral source", "Web\nweb")
    assert "only once" in dialog.errors["options"].text()
    assert dialog.busy is not None and not dialog.busy.running
    screenshot(dialog, "admin-custom-fields-errors")
    assert len(await api.request("GET", "/api/custom-fields")) == 1

    # add a choice field
    dialog.required.setChecked(True)
    add("referral_source", "select", "Referral source", "Website\nReferral\n\nEvent")
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    made = {f["field_name"]: f for f in await api.request("GET", "/api/custom-fields")}
    assert made["referral_source"]["options"] == ["Website", "Referral", "Event"]
    assert made["referral_source"]["is_required"]
    assert dialog.selected() is not None and dialog.selected().field_name == "referral_source"
    assert dialog.table.item(1, 4).text() == "Website, Referral, Event"

    # archive: the question says values are kept; the field stays listed as archived
    dialog.select_field("birthday")
    dialog.confirm = asked = Confirmations()
    dialog.archive_selected()
    await dialog.wait()
    assert "not deleted" in asked.asked[0] and "kept" in asked.asked[0]
    assert dialog.table.item(0, 5).text() == "Archived"
    assert dialog.restore_button.isEnabled() and not dialog.archive_button.isEnabled()
    live_fields = await api.request("GET", "/api/custom-fields")
    assert [f["field_name"] for f in live_fields] == ["referral_source"]
    screenshot(dialog, "admin-custom-fields")

    # the server's refusal: another console added the same name meanwhile (409)
    await api.request(
        "POST",
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "tier", "field_type": "text"},
    )
    add("tier", "text", "Tier")
    await dialog.wait()
    assert banner(dialog) and "tier" in banner(dialog).lower()

    # another entity has its own list
    dialog.entity.setCurrentIndex(dialog.entity.findData("account"))
    await dialog.wait()
    assert dialog.fields == [] and dialog.table.rowCount() == 0


# -- read-only for employees -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["entity_labels", "module_settings", "custom_fields"])
async def test_read_only_for_an_employee(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    kind: str,
) -> None:
    api = await live.api(team.employee, direct=True)
    dialog: AdminDialog = await opened(kind, api, team, qtbot)
    assert not dialog.can_edit
    assert not dialog.note.isHidden() and "only administrators" in dialog.note.text()
    assert "employee" in dialog.note.text()
    assert dialog.editors and not any(e.isEnabled() for e in dialog.editors)
    if isinstance(dialog, ModuleSettingsDialog):
        item = dialog.modules.item(0)
        assert not item.flags() & Qt.ItemFlag.ItemIsUserCheckable
    screenshot(dialog, f"admin-{kind.replace('_', '-')}-read-only")

    # a role taken away after opening: the dialog lets the admin try, the server says 403
    dialog.can_edit = True
    dialog.apply_mode()
    if isinstance(dialog, EntityLabelsDialog):
        dialog.rows["accounts"].plural.setText("Clients")
        dialog.save()
    elif isinstance(dialog, ModuleSettingsDialog):
        dialog.set_enabled("care", False)
        dialog.save()
    else:
        assert isinstance(dialog, CustomFieldsDialog)
        dialog.name.setText("tier")
        dialog.add_field()
    await dialog.wait()
    assert "403 Forbidden" in banner(dialog), banner(dialog)
