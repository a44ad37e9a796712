"""The tenants (superadmin), tenant settings and API keys dialogs, and editing a custom
field, against a real server: changes reach it, bad input is caught before sending, the
server's refusals (403, 409, 422) show in the dialog, non-admins get them read-only, and a new
API key is shown exactly once; rendered to docs/screenshots/admin-*.png."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QDate
from PySide6.QtGui import QGuiApplication

from aisha_desktop.dialogs.admin import (
    ApiKeysDialog,
    CustomFieldsDialog,
    TenantsDialog,
    TenantSettingsDialog,
    open_admin_dialog,
)
from aisha_desktop.dialogs.admin.api_keys import NewKey, check_new_key
from aisha_desktop.dialogs.admin.tenants import naming
from tests.desktop.dialogs.test_admin_dialogs import Confirmations, banner
from tests.desktop.dialogs.test_admin_users import shot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the dialogs only see the HTTP API


async def opened(kind: Any, live: Live, user: Any, tenant_id: Any, qtbot: Any) -> Any:  # noqa: F811
    api = await live.api(user, direct=True)
    api.tenant_id = str(tenant_id) if user.tenant_id is None else None
    dialog = open_admin_dialog(kind, api, str(tenant_id))
    qtbot.addWidget(dialog)
    await dialog.wait()
    assert dialog.error.isHidden(), dialog.error.text()
    return dialog


# -- tenant settings -------------------------------------------------------------------------


async def test_tenant_settings(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    dialog: TenantSettingsDialog = await opened(
        "tenant_settings", live, team.admin, team.tenant_id, qtbot
    )
    api = dialog.api
    form = dialog.form
    assert form.values() == {
        "timezone": "UTC",
        "currency": "USD",
        "date_format": "MM/DD/YYYY",
        "default_region": "",
    }
    assert dialog.name.text().startswith("Replica Co")
    dialog.save()
    assert "Nothing to save" in dialog.status.text()

    # bad input: refused before sending
    form.inputs["timezone"].setCurrentText("Mars/Olympus_Mons")
    form.inputs["currency"].setCurrentText("dollars")
    form.inputs["default_region"].setCurrentText("XX")
    dialog.save()
    assert "Unknown time zone" in form.errors.text("timezone")
    assert "three-letter" in form.errors.text("currency")
    assert "Unknown region" in form.errors.text("default_region")
    assert "nothing was saved" in banner(dialog)
    shot(dialog, "admin-tenant-settings-errors")
    stored = await api.request("GET", f"/api/tenants/{team.tenant_id}")
    assert stored["settings"]["timezone"] == "UTC"

    # the server's own check: a well-formed but unknown currency (422), shown at the field
    form.inputs["timezone"].setCurrentText("Europe/Berlin")
    form.inputs["currency"].setCurrentText("ABC")
    form.inputs["default_region"].setCurrentText("de")
    dialog.save()
    await dialog.wait()
    assert "unknown currency" in form.errors.text("currency")
    assert banner(dialog)
    stored = await api.request("GET", f"/api/tenants/{team.tenant_id}")
    assert stored["settings"]["timezone"] == "UTC"

    # good values: only the changes are sent, other settings are kept
    await api.request(
        "PUT", f"/api/tenants/{team.tenant_id}", json={"settings": {"fiscal_year_start": "04"}}
    )
    form.inputs["currency"].setCurrentText("eur")
    form.inputs["date_format"].setCurrentIndex(form.inputs["date_format"].findText("DD.MM.YYYY"))
    assert form.changed() == {
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "date_format": "DD.MM.YYYY",
        "default_region": "DE",
    }
    dialog.save()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    assert "Saved" in dialog.status.text()
    stored = await api.request("GET", f"/api/tenants/{team.tenant_id}")
    assert stored["settings"] == {
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "date_format": "DD.MM.YYYY",
        "default_region": "DE",
        "fiscal_year_start": "04",
    }
    assert form.changed() == {}
    shot(dialog, "admin-tenant-settings")


async def test_tenant_settings_read_only_for_an_employee(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    api = await live.api(team.employee, direct=True)
    dialog = open_admin_dialog("tenant_settings", api, str(team.tenant_id))
    qtbot.addWidget(dialog)
    await dialog.wait()
    assert not dialog.can_edit and "only administrators" in dialog.note.text()
    assert not any(e.isEnabled() for e in dialog.editors)


# -- tenants ---------------------------------------------------------------------------------


async def test_tenants(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    await make_tenant(live.app, "Northwind Traders", slug="northwind")
    await make_tenant(live.app, "Globex Retail", slug="globex", status="suspended")
    root = await make_user(live.app, role="superadmin", tenant_id=None)
    dialog: TenantsDialog = await opened("tenants", live, root, team.tenant_id, qtbot)
    api = dialog.api
    assert [t.name for t in dialog.tenants] == ["Globex Retail", "Northwind Traders", "Replica Co"]
    assert dialog.box.title() == "New tenant"

    # bad input: nothing sent
    dialog.name.setText("  ")
    dialog.slug.setText("Bad Slug")
    dialog.settings.inputs["timezone"].setCurrentText("Nowhere/Special")
    dialog.save()
    assert dialog.errors.text("name") == "A name is required."
    assert "hyphens" in dialog.errors.text("slug")
    assert "Unknown time zone" in dialog.settings.errors.text("timezone")
    assert len(await api.request("GET", "/api/tenants")) == 3

    # the server's refusal: the slug is taken (409), shown at the slug
    dialog.name.setText("Acme Corporation")
    dialog.slug.setText("northwind")
    dialog.settings.inputs["timezone"].setCurrentText("America/New_York")
    dialog.save()
    await dialog.wait()
    assert "northwind" in dialog.errors.text("slug") and banner(dialog)

    # create with settings
    dialog.slug.setText("acme-corp")
    dialog.save()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    acme = dialog.selected()
    assert acme is not None and (acme.name, acme.slug, acme.status) == (
        "Acme Corporation",
        "acme-corp",
        "active",
    )
    stored = await api.request("GET", f"/api/tenants/{acme.id}", headers=naming(acme.id))
    assert stored["settings"]["timezone"] == "America/New_York"
    assert dialog.box.title() == "Edit Acme Corporation"

    # edit the name and a setting: only those are sent
    dialog.name.setText("Acme Corp.")
    dialog.settings.inputs["currency"].setCurrentText("CAD")
    dialog.save()
    await dialog.wait()
    stored = await api.request("GET", f"/api/tenants/{acme.id}", headers=naming(acme.id))
    assert (stored["name"], stored["settings"]["currency"]) == ("Acme Corp.", "CAD")
    assert stored["settings"]["timezone"] == "America/New_York"

    # suspend (asked first) and activate
    dialog.confirm = asked = Confirmations()
    dialog.suspend_selected()
    await dialog.wait()
    assert "data is kept" in asked.asked[0]
    assert (await api.request("GET", f"/api/tenants/{acme.id}", headers=naming(acme.id)))[
        "status"
    ] == "suspended"
    assert dialog.activate_button.isEnabled() and not dialog.suspend_button.isEnabled()
    shot(dialog, "admin-tenants")
    dialog.activate_selected()
    await dialog.wait()
    assert (await api.request("GET", f"/api/tenants/{acme.id}", headers=naming(acme.id)))[
        "status"
    ] == "active"


async def test_tenants_only_for_superadmins(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    dialog: TenantsDialog = await opened("tenants", live, team.admin, team.tenant_id, qtbot)
    assert not dialog.can_edit and "Only superadmins" in dialog.note.text()
    assert dialog.tenants == [] and not any(e.isEnabled() for e in dialog.editors)
    # should it still send (a role changed meanwhile), the server's 403 is shown
    dialog.can_edit = True
    dialog.apply_mode()
    dialog.name.setText("Sneaky Ltd")
    dialog.save()
    await dialog.wait()
    assert "403 Forbidden" in banner(dialog)


# -- API keys --------------------------------------------------------------------------------


def test_new_key_checks() -> None:
    today = date(2026, 11, 25)
    assert check_new_key(NewKey("Zapier", ["read:contacts", "write:*", "*"], None), today) == {}
    found = check_new_key(NewKey("", ["read", "fly:contacts", "read:nothing"], today), today)
    assert set(found) == {"name", "permissions", "expires_at"}
    assert "“read” must look like" in found["permissions"]
    assert "unknown action" in found["permissions"] and "“nothing”" in found["permissions"]
    assert check_new_key(NewKey("x" * 201, [], None), today) == {
        "name": "At most 200 characters.",
        "permissions": "Give at least one permission, e.g. read:contacts.",
    }


async def test_api_keys(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    dialog: ApiKeysDialog = await opened("api_keys", live, team.admin, team.tenant_id, qtbot)
    api = dialog.api
    assert dialog.keys == [] and dialog.secret_box.isHidden()

    # bad input: nothing sent
    dialog.permissions.setText("read:contacts, delete")
    dialog.expires.setChecked(True)
    dialog.expires_on.setDate(QDate.currentDate())
    dialog.create_key()
    assert "required" in dialog.errors.text("name")
    assert "“delete” must look like" in dialog.errors.text("permissions")
    assert "future" in dialog.errors.text("expires_at")
    assert "no key was created" in banner(dialog)
    shot(dialog, "admin-api-keys-errors")
    assert await api.request("GET", "/api/api-keys") == []

    # create: the key is shown once, with the warning, and works
    dialog.name.setText("Website form")
    dialog.preset.activated.emit(dialog.preset.findText("Read contacts"))
    assert dialog.permissions.text() == "read:contacts"
    dialog.permissions.setText("read:contacts write:leads")
    dialog.expires_on.setDate(QDate.currentDate().addDays(90))
    dialog.create_key()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    secret = dialog.secret.text()
    assert secret and not dialog.secret_box.isHidden() and dialog.secret.isReadOnly()
    assert "shown only once" in dialog.secret_box.findChildren(type(dialog.note))[0].text()
    made = dialog.selected()
    assert made is not None and made.name == "Website form" and made.status == "active"
    assert secret.startswith(made.key_prefix) and secret != made.key_prefix
    assert made.expires_at is not None
    assert made.expires_at.date() - date.today() in (timedelta(days=89), timedelta(days=90))
    async with httpx.AsyncClient(base_url=live.url) as raw:
        answer = await raw.get("/api/contacts", headers={"X-API-Key": secret})
        assert answer.status_code == 200
        answer = await raw.post("/api/contacts", headers={"X-API-Key": secret},
                                json={"first_name": "No", "last_name": "Write"})  # fmt: skip
        assert answer.status_code == 403
    dialog.copy_secret()
    assert QGuiApplication.clipboard().text() == secret
    # nowhere else: the table and the server's list show the prefix only
    cells = [dialog.table.item(0, c).text() for c in range(dialog.table.columnCount())]
    assert secret not in " ".join(cells) and cells[1] == f"{made.key_prefix}…"
    assert secret not in str(await api.request("GET", "/api/api-keys"))
    shot(dialog, "admin-api-keys-new")

    # dismissed, it is gone; closing the dialog forgets it too
    dialog.forget_secret()
    assert dialog.secret.text() == "" and dialog.secret_box.isHidden()
    dialog.name.setText("Nightly export")
    dialog.permissions.setText("read:*")
    dialog.expires.setChecked(False)
    dialog.create_key()
    await dialog.wait()
    assert dialog.secret.text()
    dialog.reject()
    assert dialog.secret.text() == ""

    # revoke: asked first, then it stops working
    reopened: ApiKeysDialog = await opened("api_keys", live, team.admin, team.tenant_id, qtbot)
    assert [k.name for k in reopened.keys] == ["Nightly export", "Website form"]
    assert reopened.secret_box.isHidden() and reopened.secret.text() == ""
    website = next(i for i, k in enumerate(reopened.keys) if k.name == "Website form")
    reopened.table.selectRow(website)
    reopened.confirm = asked = Confirmations()
    reopened.revoke_selected()
    await reopened.wait()
    assert "stops working at once" in asked.asked[0]
    assert reopened.selected() is not None and reopened.selected().status == "revoked"
    assert not reopened.revoke_button.isEnabled()
    async with httpx.AsyncClient(base_url=live.url) as raw:
        answer = await raw.get("/api/contacts", headers={"X-API-Key": secret})
        assert answer.status_code == 401
    shot(reopened, "admin-api-keys")

    # the server's refusal: a key for a permission the server does not know (422), at the
    # field; the dialog's own check is bypassed to get there
    reopened.run(reopened._create(NewKey("Odd", ["read:contacts", "manage:users"], None)))
    await reopened.wait()
    assert "manage" in reopened.errors.text("permissions") and banner(reopened)


async def test_api_keys_read_only_for_an_employee(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    dialog: ApiKeysDialog = await opened("api_keys", live, team.employee, team.tenant_id, qtbot)
    assert not dialog.can_edit and not dialog.note.isHidden()
    assert not any(e.isEnabled() for e in dialog.editors)
    assert not dialog.expires_on.isEnabled()


# -- editing a custom field ------------------------------------------------------------------


async def test_edit_custom_field(live: Live, team: Team, qtbot: Any) -> None:  # noqa: F811
    admin = await live.api(team.admin, direct=True)
    for body in (
        {"entity": "contact", "field_name": "referral_source", "field_type": "select",
         "label": "Referral source", "options": ["Website", "Referral", "Event"]},
        {"entity": "contact", "field_name": "birthday", "field_type": "date",
         "label": "Birthday"},
    ):  # fmt: skip
        await admin.request("POST", "/api/custom-fields", json=body)
    dialog: CustomFieldsDialog = await opened(
        "custom_fields", live, team.admin, team.tenant_id, qtbot
    )
    assert not dialog.save_button.isEnabled()  # nothing selected
    dialog.select_field("referral_source")
    assert dialog.edit_label.text() == "Referral source" and dialog.save_button.isEnabled()
    assert dialog.edit_options.toPlainText() == "Website\nReferral\nEvent"
    assert not dialog.edit_options.isHidden()

    # bad input: nothing sent
    dialog.edit_options.setPlainText("Website\nwebsite")
    dialog.save_selected()
    assert "only once" in dialog.edit_errors["options"].text()
    dialog.edit_options.setPlainText("")
    dialog.save_selected()
    assert "at least one option" in dialog.edit_errors["options"].text()
    assert dialog.errors["options"].isHidden()  # the add form is left alone
    shot(dialog, "admin-custom-fields-edit-errors")

    # good: label, options and required change
    dialog.edit_label.setText("Lead source")
    dialog.edit_options.setPlainText("Website\nReferral\nTrade show\nPartner")
    dialog.edit_required.setChecked(True)
    dialog.save_selected()
    await dialog.wait()
    assert banner(dialog) == "", banner(dialog)
    stored = {f["field_name"]: f for f in await admin.request("GET", "/api/custom-fields")}
    assert stored["referral_source"]["label"] == "Lead source"
    assert stored["referral_source"]["options"] == ["Website", "Referral", "Trade show", "Partner"]
    assert stored["referral_source"]["is_required"]
    assert dialog.selected() is not None and dialog.selected().label == "Lead source"
    dialog.save_selected()
    assert "Nothing to save" in dialog.status.text()
    shot(dialog, "admin-custom-fields-edit")

    # a date field has no options to edit; an archived one is restored before editing
    dialog.select_field("birthday")
    assert dialog.edit_options.isHidden()
    dialog.confirm = Confirmations()
    dialog.archive_selected()
    await dialog.wait()
    assert not dialog.save_button.isEnabled() and not dialog.edit_label.isEnabled()

    # the server's own check, shown at the edit form (the dialog's is bypassed to get there)
    dialog.select_field("referral_source")
    chosen = dialog.selected()
    assert chosen is not None
    dialog.run(dialog._save_field(chosen, {"options": ["Web", "Web "]}))
    await dialog.wait()
    assert "unique" in dialog.edit_errors["options"].text() and banner(dialog)
    assert dialog.errors["options"].isHidden()
    stored = {f["field_name"]: f for f in await admin.request("GET", "/api/custom-fields")}
    assert stored["referral_source"]["options"] == ["Website", "Referral", "Trade show", "Partner"]
