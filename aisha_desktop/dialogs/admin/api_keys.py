"""API keys (guide 3.4): the tenant's keys (name, prefix, permissions, status, expiry, last
use; never the keys themselves), creating one with a name, permissions and an optional
expiry date (checked before sending), and revoking one.

The server returns a new key once, in the answer to its creation, and stores only a hash.
The dialog shows it once too: in a read-only field with a copy button under a warning, until
the admin dismisses it or closes the dialog; nothing keeps it anywhere else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from PySide6.QtCore import QDate
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.client.models import optional_text, parse_time
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.admin.widgets import FieldErrors, RecordList, when
from aisha_desktop.dialogs.common import field_errors

# what a key permission may name (the server's KEY_ACTIONS and RESOURCES)
ACTIONS = frozenset({"read", "create", "update", "delete", "export", "write", "*"})
RESOURCES = frozenset(
    {
        "accounts", "activities", "ai-campaigns", "contacts", "leads", "notes",
        "opportunities", "workflows", "ai", "api-keys", "care", "custom-fields", "employees",
        "entity-labels", "integrations", "metrics", "modules", "permissions", "reports",
        "sync", "system", "tenants", "users", "webhooks",
    }
)  # fmt: skip
PRESETS: tuple[tuple[str, str], ...] = (
    ("Presets…", ""),
    ("Read everything", "read:*"),
    ("Read contacts", "read:contacts"),
    ("Read and write CRM records", "write:contacts write:accounts write:leads "
     "write:opportunities write:activities write:notes"),
    ("Full access", "*"),
)  # fmt: skip
NAME_MAX = 200
COLUMNS = ("Name", "Key", "Permissions", "Status", "Expires", "Last used", "Created")
SECRET_WARNING = (
    "<b>Copy this key now: it is shown only once.</b> AiSHA stores only a fingerprint of it "
    "and cannot show it again. Keep it in your integration's secret store; if it is lost, "
    "revoke it and create a new one."
)


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: str
    name: str
    key_prefix: str
    permissions: tuple[str, ...]
    status: str
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: Any) -> ApiKeyRow:
        permissions = data.get("permissions")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            key_prefix=optional_text(data, "key_prefix") or "",
            permissions=tuple(str(p) for p in permissions) if isinstance(permissions, list) else (),
            status=str(data.get("status") or ""),
            expires_at=parse_time(data, "expires_at"),
            last_used_at=parse_time(data, "last_used_at"),
            created_at=parse_time(data, "created_at"),
        )


@dataclass(frozen=True, slots=True)
class NewKey:
    name: str
    permissions: list[str]
    expires_on: date | None


def key_cells(k: ApiKeyRow) -> tuple[str, ...]:
    return (
        k.name,
        f"{k.key_prefix}…" if k.key_prefix else "",
        ", ".join(k.permissions),
        k.status.capitalize(),
        when(k.expires_at, "never"),
        when(k.last_used_at, "never"),
        when(k.created_at),
    )


def parse_permissions(text: str) -> list[str]:
    """`"read:contacts, write:leads"` -> the permissions, in order, without repeats."""
    out: list[str] = []
    for part in text.replace(",", " ").split():
        if part not in out:
            out.append(part)
    return out


def permission_problem(value: str) -> str | None:
    if value == "*":
        return None
    action, sep, resource = value.partition(":")
    if not sep or not action or not resource:
        return f"“{value}” must look like action:resource (e.g. read:contacts) or *."
    if action not in ACTIONS:
        return f"“{value}”: unknown action; one of {', '.join(sorted(ACTIONS))}."
    if resource != "*" and resource not in RESOURCES:
        return f"“{value}”: unknown resource “{resource}”."
    return None


def check_new_key(new: NewKey, today: date) -> dict[str, str]:
    found: dict[str, str] = {}
    if not new.name:
        found["name"] = "A name is required (what the key is for)."
    elif len(new.name) > NAME_MAX:
        found["name"] = f"At most {NAME_MAX} characters."
    if not new.permissions:
        found["permissions"] = "Give at least one permission, e.g. read:contacts."
    else:
        problems = [p for p in map(permission_problem, new.permissions) if p]
        if problems:
            found["permissions"] = " ".join(problems)
    if new.expires_on is not None and new.expires_on <= today:
        found["expires_at"] = "The expiry date must be in the future."
    return found


class ApiKeysDialog(AdminDialog):
    title = "API keys"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(860, 620)
        self.list = RecordList(COLUMNS, 2, key_cells, lambda k: k.status != "active")
        self.table = self.list.table
        self.table.itemSelectionChanged.connect(self.apply_mode)
        self.layout_.addWidget(self.table, 1)
        self.revoke_button = QPushButton("Revoke…")
        self.revoke_button.clicked.connect(self.revoke_selected)
        row_actions = QHBoxLayout()
        row_actions.addStretch(1)
        row_actions.addWidget(self.revoke_button)
        self.layout_.addLayout(row_actions)

        self.secret_box = QGroupBox("New API key")
        self.secret_box.setStyleSheet(
            "QGroupBox { background: #fef7e0; border: 1px solid #f9d88a; border-radius: 4px; "
            "margin-top: 14px; padding: 8px; } QGroupBox::title { subcontrol-origin: margin; "
            "left: 8px; }"
        )
        secret_layout = QVBoxLayout(self.secret_box)
        warning = QLabel(SECRET_WARNING)
        warning.setWordWrap(True)
        self.secret = QLineEdit()
        self.secret.setReadOnly(True)
        self.secret.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy_secret)
        self.dismiss_button = QPushButton("I have copied it")
        self.dismiss_button.clicked.connect(self.forget_secret)
        secret_row = QHBoxLayout()
        secret_row.addWidget(self.secret, 1)
        secret_row.addWidget(self.copy_button)
        secret_row.addWidget(self.dismiss_button)
        secret_layout.addWidget(warning)
        secret_layout.addLayout(secret_row)
        self.secret_box.hide()
        self.layout_.addWidget(self.secret_box)

        box = QGroupBox("Create an API key")
        form = QFormLayout(box)
        self.errors = FieldErrors(form)
        self.name = QLineEdit()
        self.name.setPlaceholderText("Website form integration")
        self.permissions = QLineEdit()
        self.permissions.setPlaceholderText("read:contacts write:leads   (action:resource, or *)")
        self.preset = QComboBox()
        for label, value in PRESETS:
            self.preset.addItem(label, value)
        self.preset.activated.connect(self._preset_chosen)
        permission_row = QWidget()
        row = QHBoxLayout(permission_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.permissions, 1)
        row.addWidget(self.preset)
        self.expires = QCheckBox("Expires on")
        self.expires_on = QDateEdit(QDate.currentDate().addYears(1))
        self.expires_on.setCalendarPopup(True)
        self.expires_on.setDisplayFormat("yyyy-MM-dd")
        self.expires_on.setEnabled(False)
        self.expires.toggled.connect(self.expires_on.setEnabled)
        expiry_row = QWidget()
        row = QHBoxLayout(expiry_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.expires)
        row.addWidget(self.expires_on)
        row.addStretch(1)
        self.create_button = QPushButton("Create key")
        self.create_button.clicked.connect(self.create_key)
        self.errors.add_row("name", "Name", self.name)
        self.errors.add_row("permissions", "Permissions", permission_row)
        self.errors.add_row("expires_at", "Expiry", expiry_row)
        form.addRow("", self.create_button)
        self.layout_.addWidget(box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.finished.connect(lambda _code: self.forget_secret())
        self.editors += [
            self.name,
            self.permissions,
            self.preset,
            self.expires,
            self.create_button,
            self.revoke_button,
        ]
        self.finish_layout()

    # -- list -----------------------------------------------------------------------------
    async def fetch(self) -> None:
        data = await self.api.request("GET", "/api/api-keys", params={"tenant_id": self.tenant_id})
        self.list.show([ApiKeyRow.from_json(item) for item in data or []])
        self.apply_mode()

    @property
    def keys(self) -> list[ApiKeyRow]:
        return self.list.rows

    def selected(self) -> ApiKeyRow | None:
        return self.list.selected()

    def select_key(self, key_id: str) -> ApiKeyRow:
        return self.list.select(lambda k: k.id == key_id)

    def apply_mode(self) -> None:
        super().apply_mode()
        chosen = self.selected()
        editable = self.can_edit and self.loaded
        self.revoke_button.setEnabled(editable and chosen is not None and chosen.status == "active")
        self.expires_on.setEnabled(editable and self.expires.isChecked())

    # -- create ---------------------------------------------------------------------------
    def _preset_chosen(self, index: int) -> None:
        value = str(self.preset.itemData(index) or "")
        if value:
            self.permissions.setText(value)
        self.preset.setCurrentIndex(0)

    def new_key(self) -> NewKey:
        expires = self.expires_on.date().toPython() if self.expires.isChecked() else None
        assert expires is None or isinstance(expires, date)
        return NewKey(
            name=self.name.text().strip(),
            permissions=parse_permissions(self.permissions.text()),
            expires_on=expires,
        )

    def create_key(self) -> None:
        self.clear_banners()
        new = self.new_key()
        found = check_new_key(new, date.today())
        self.errors.show(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; no key was created."))
            return
        self.run(self._create(new))

    async def _create(self, new: NewKey) -> None:
        body: dict[str, Any] = {
            "name": new.name,
            "permissions": new.permissions,
            "tenant_id": self.tenant_id,
        }
        if new.expires_on is not None:  # the end of that day, local time
            local = datetime.combine(new.expires_on, time(23, 59, 59)).astimezone()
            body["expires_at"] = local.astimezone(UTC).isoformat()
        answer = await self.api.request("POST", "/api/api-keys", json=body)
        self.show_secret(str(answer["key"]), new.name)
        await self.fetch()
        self.select_key(str(answer["id"]))
        self.name.clear()
        self.permissions.clear()
        self.expires.setChecked(False)
        self.show_done(f"Created the key “{new.name}”. Copy it now: it is shown only once.")

    def show_failure(self, exc: BaseException) -> None:
        found = {k.split(".")[0]: v for k, v in field_errors(exc).items()}
        if found:
            self.errors.show(self.errors.known(found))
        super().show_failure(exc)

    # -- the key, once ----------------------------------------------------------------------
    def show_secret(self, key: str, name: str) -> None:
        self.secret_box.setTitle(f"New API key: {name}")
        self.secret.setText(key)
        self.secret_box.show()
        self.secret.setFocus()
        self.secret.selectAll()

    def copy_secret(self) -> None:
        QGuiApplication.clipboard().setText(self.secret.text())
        self.show_info("The key is on the clipboard.")

    def forget_secret(self) -> None:
        self.secret.clear()
        self.secret_box.hide()

    # -- revoke ---------------------------------------------------------------------------
    def revoke_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or not self.confirm(
            "Revoke API key",
            f"Revoke “{chosen.name}” ({chosen.key_prefix}…)?\n\n"
            "It stops working at once; integrations using it get 401 from now on. "
            "This cannot be undone.",
        ):
            return
        self.run(self._revoke(chosen))

    async def _revoke(self, chosen: ApiKeyRow) -> None:
        await self.api.request(
            "DELETE", f"/api/api-keys/{chosen.id}", params={"tenant_id": self.tenant_id}
        )
        await self.fetch()
        self.select_key(chosen.id)
        self.show_done(f"Revoked “{chosen.name}”: it no longer works.")
