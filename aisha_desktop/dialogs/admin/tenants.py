"""Tenants (guide 4.2, superadmin only): every tenant with its status and regional
settings, creating one (name, optional slug, settings), editing the selected one's name and
settings, suspending and re-activating it.

The console offers this dialog to superadmins only; opened by anyone else it stays empty and
read-only (the server lists tenants to superadmins only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from aisha_desktop.client import ApiClient, Conflict
from aisha_desktop.client.models import parse_time
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.admin.tenant_settings import TenantSettingsForm
from aisha_desktop.dialogs.admin.widgets import FieldErrors, RecordList, when
from aisha_desktop.dialogs.common import field_errors

SUPERADMIN_ROLES = frozenset({"superadmin"})
READ_ONLY_NOTE = "Only superadmins manage tenants (you are signed in as {role})."
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_MAX = 200
SLUG_MAX = 100
STATUS_NAMES = {"active": "Active", "suspended": "Suspended", "archived": "Archived"}
COLUMNS = ("Name", "Slug", "Status", "Time zone", "Currency", "Created")


@dataclass(frozen=True, slots=True)
class TenantRow:
    id: str
    name: str
    slug: str
    status: str
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> TenantRow:
        settings = data.get("settings")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            slug=str(data.get("slug") or ""),
            status=str(data.get("status") or ""),
            settings=dict(settings) if isinstance(settings, dict) else {},
            created_at=parse_time(data, "created_at"),
        )


async def list_tenants(api: ApiClient) -> list[TenantRow]:
    """Every tenant the server holds (a superadmin's call), by name."""
    data = await api.request("GET", "/api/tenants", params={"limit": 500})
    return sorted((TenantRow.from_json(t) for t in data or []), key=lambda t: t.name.casefold())


def tenant_cells(t: TenantRow) -> tuple[str, ...]:
    return (
        t.name,
        t.slug,
        STATUS_NAMES.get(t.status, t.status),
        str(t.settings.get("timezone") or ""),
        str(t.settings.get("currency") or ""),
        when(t.created_at),
    )


def naming(tenant_id: str) -> dict[str, str]:
    """Headers for a call about `tenant_id`: the console's client names the tenant it works
    in on every call (a superadmin's X-Tenant-ID), and the server refuses a path naming
    another one."""
    return {"X-Tenant-ID": tenant_id}


def check_identity(name: str, slug: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if not name:
        found["name"] = "A name is required."
    elif len(name) > NAME_MAX:
        found["name"] = f"At most {NAME_MAX} characters."
    if slug and (len(slug) > SLUG_MAX or not SLUG.match(slug)):
        found["slug"] = "Lower-case letters, digits and single hyphens (e.g. acme-corp)."
    return found


class TenantsDialog(AdminDialog):
    title = "Tenants"
    editing_roles = SUPERADMIN_ROLES
    read_only_note = READ_ONLY_NOTE

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(820, 700)
        self.editing: TenantRow | None = None
        self.list = RecordList(COLUMNS, 0, tenant_cells, lambda t: t.status != "active")
        self.table = self.list.table
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.layout_.addWidget(self.table, 1)
        self.new_button = QPushButton("New tenant")
        self.suspend_button = QPushButton("Suspend…")
        self.activate_button = QPushButton("Activate")
        self.new_button.clicked.connect(self.new_tenant)
        self.suspend_button.clicked.connect(self.suspend_selected)
        self.activate_button.clicked.connect(self.activate_selected)
        row_actions = QHBoxLayout()
        row_actions.addWidget(self.new_button)
        row_actions.addStretch(1)
        row_actions.addWidget(self.activate_button)
        row_actions.addWidget(self.suspend_button)
        self.layout_.addLayout(row_actions)

        self.box = QGroupBox()
        form = QFormLayout(self.box)
        self.name = QLineEdit()
        self.name.setPlaceholderText("Acme Corporation")
        self.slug = QLineEdit()
        self.slug.setPlaceholderText("derived from the name when left empty")
        self.settings = TenantSettingsForm()
        # name and slug above the settings, in the same form (one column of labels)
        self.errors: FieldErrors = self.settings.errors
        self.errors.add_row("name", "Name", self.name, row=0)
        self.errors.add_row("slug", "Slug", self.slug, row=1)
        self.save_button = QPushButton()
        self.save_button.clicked.connect(self.save)
        form.addRow(self.settings)
        form.addRow("", self.save_button)
        self.layout_.addWidget(self.box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.editors += [
            self.name,
            self.slug,
            *self.settings.controls(),
            self.save_button,
            self.new_button,
            self.suspend_button,
            self.activate_button,
        ]
        self.finish_layout()
        self.new_tenant()

    # -- list -----------------------------------------------------------------------------
    async def fetch(self) -> None:
        if not self.can_edit:
            self.show_info("Only superadmins can see the tenants of this server.")
            return
        self.list.show(await list_tenants(self.api))
        self.apply_mode()

    @property
    def tenants(self) -> list[TenantRow]:
        return self.list.rows

    def selected(self) -> TenantRow | None:
        return self.list.selected()

    def select_tenant(self, tenant_id: str) -> TenantRow:
        tenant = self.list.select(lambda t: t.id == tenant_id)
        self.edit(tenant)  # also when the row was selected already (fresh values)
        return tenant

    def _selection_changed(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.edit(chosen)
        self.apply_mode()

    def apply_mode(self) -> None:
        super().apply_mode()
        chosen = self.selected()
        editable = self.can_edit and self.loaded and chosen is not None
        status = chosen.status if chosen is not None else ""
        self.suspend_button.setEnabled(editable and status == "active")
        self.activate_button.setEnabled(editable and status == "suspended")

    # -- create and edit ------------------------------------------------------------------
    def new_tenant(self) -> None:
        self.editing = None
        self.table.clearSelection()
        self.box.setTitle("New tenant")
        self.save_button.setText("Create tenant")
        self.name.clear()
        self.slug.clear()
        self.settings.set_values({})
        self.errors.show({})

    def edit(self, tenant: TenantRow) -> None:
        self.editing = tenant
        self.box.setTitle(f"Edit {tenant.name}")
        self.save_button.setText("Save changes")
        self.name.setText(tenant.name)
        self.slug.setText(tenant.slug)
        self.settings.set_values(tenant.settings)
        self.errors.show({})

    def save(self) -> None:
        self.clear_banners()
        name, slug = self.name.text().strip(), self.slug.text().strip()
        found = check_identity(name, slug) | self.settings.problems()
        self.errors.show(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; nothing was saved."))
            return
        before = self.editing
        if before is None:
            body: dict[str, Any] = {"name": name}
            if slug:
                body["slug"] = slug
            settings = {k: v for k, v in self.settings.values().items() if v}
            if settings:
                body["settings"] = settings
        else:
            body = {k: v for k, v in (("name", name), ("slug", slug)) if v != getattr(before, k)}
            changed = self.settings.changed()
            if changed:
                body["settings"] = changed
            if not body:
                self.show_info("Nothing to save: no field changed.")
                return
        self.run(self._save(before, body))

    async def _save(self, before: TenantRow | None, body: dict[str, Any]) -> None:
        if before is None:
            answer = await self.api.request("POST", "/api/tenants", json=body)
        else:
            answer = await self.api.request(
                "PUT", f"/api/tenants/{before.id}", json=body, headers=naming(before.id)
            )
        saved = TenantRow.from_json(answer)
        await self.fetch()
        self.select_tenant(saved.id)
        what = "Created" if before is None else "Saved"
        self.show_done(f"{what} {saved.name} ({saved.slug}).")

    def show_failure(self, exc: BaseException) -> None:
        found = field_errors(exc)
        if isinstance(exc, Conflict) and exc.code == "slug_taken":
            found = {"slug": exc.message}
        if found:
            found = {k.removeprefix("settings."): v for k, v in found.items()}
            self.errors.show(self.errors.known(found))
        super().show_failure(exc)

    # -- suspend / activate ---------------------------------------------------------------
    def suspend_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or not self.confirm(
            "Suspend tenant",
            f"Suspend {chosen.name}?\n\nIts users can no longer work in it until it is "
            "activated again; its data is kept.",
        ):
            return
        self.run(self._status(chosen, "suspended"))

    def activate_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.run(self._status(chosen, "active"))

    async def _status(self, chosen: TenantRow, status: str) -> None:
        await self.api.request(
            "PUT", f"/api/tenants/{chosen.id}", json={"status": status}, headers=naming(chosen.id)
        )
        await self.fetch()
        self.select_tenant(chosen.id)
        self.show_done(f"{chosen.name} is now {STATUS_NAMES[status].lower()}.")
