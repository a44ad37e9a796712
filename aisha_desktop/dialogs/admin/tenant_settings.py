"""Tenant settings (guide 4.4 "Tenant Settings API": `GET`/`PUT /api/tenants/{id}`): the
tenant's time zone, currency, date format and default phone region (used to read phone
numbers written without a country code), checked before sending; Save sends only what
changed.  Other settings keys the tenant holds are listed, untouched.  The tenant's name is a
superadmin's to change (the Tenants dialog), so here it is shown only."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Mapping
from typing import Any

import phonenumbers
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.base import AdminDialog, humanize
from aisha_desktop.dialogs.admin.widgets import FieldErrors
from aisha_desktop.dialogs.common import field_errors

# the server's DATE_FORMATS (aisha_server.services.tenants), in its order
DATE_FORMATS = ("MM/DD/YYYY", "DD/MM/YYYY", "YYYY-MM-DD", "DD.MM.YYYY", "DD-MM-YYYY", "YYYY/MM/DD")
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "CNY", "INR", "BRL", "MXN", "ZAR")
SETTINGS = ("timezone", "currency", "date_format", "default_region")
LABELS = {
    "timezone": "Time zone",
    "currency": "Currency",
    "date_format": "Date format",
    "default_region": "Default phone region",
}


@functools.cache
def timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def regions() -> tuple[str, ...]:
    return tuple(sorted(phonenumbers.SUPPORTED_REGIONS))


def settings_problems(values: Mapping[str, str]) -> dict[str, str]:
    """`{setting: problem}`: what the server would refuse, said before sending."""
    found: dict[str, str] = {}
    zone = values.get("timezone", "")
    if zone and zone not in timezones():
        found["timezone"] = f"Unknown time zone “{zone}”; pick one such as America/New_York."
    currency = values.get("currency", "")
    if currency and (len(currency) != 3 or not currency.isalpha()):
        found["currency"] = "A three-letter ISO 4217 code, such as USD or EUR."
    region = values.get("default_region", "")
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        found["default_region"] = f"Unknown region “{region}”; a two-letter code such as US."
    return found


def _editable_combo(items: tuple[str, ...], placeholder: str) -> QComboBox:
    combo = QComboBox()
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    combo.addItem("")
    combo.addItems(list(items))
    completer = combo.completer()
    line = combo.lineEdit()
    assert completer is not None and line is not None  # an editable combo has both
    completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    line.setPlaceholderText(placeholder)
    return combo


class TenantSettingsForm(QWidget):
    """The known settings of a tenant as inputs; used here and in the Tenants dialog."""

    def __init__(self) -> None:
        super().__init__()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.errors = FieldErrors(form)
        self.inputs: dict[str, QComboBox] = {
            "timezone": _editable_combo(timezones(), "America/New_York"),
            "currency": _editable_combo(CURRENCIES, "USD"),
            "date_format": QComboBox(),
            "default_region": _editable_combo(regions(), "US"),
        }
        self.inputs["date_format"].addItem("")
        self.inputs["date_format"].addItems(list(DATE_FORMATS))
        for key in SETTINGS:
            self.errors.add_row(key, LABELS[key], self.inputs[key])
        self.baseline: dict[str, str] = {}

    def set_values(self, settings: Mapping[str, Any]) -> None:
        self.baseline = {k: str(settings.get(k) or "") for k in SETTINGS}
        for key, value in self.baseline.items():
            combo = self.inputs[key]
            index = combo.findText(value)
            if combo.isEditable():
                combo.setCurrentText(value)
            elif index >= 0:
                combo.setCurrentIndex(index)
        self.errors.show({})

    def values(self) -> dict[str, str]:
        out = {k: self.inputs[k].currentText().strip() for k in SETTINGS}
        out["currency"] = out["currency"].upper()
        out["default_region"] = out["default_region"].upper()
        return out

    def changed(self) -> dict[str, str | None]:
        """What differs from the loaded values; an emptied setting is sent as null."""
        return {k: (v or None) for k, v in self.values().items() if v != self.baseline.get(k, "")}

    def problems(self) -> dict[str, str]:
        return settings_problems(self.values())

    def show_server_errors(self, exc: BaseException) -> None:
        found = {k.removeprefix("settings."): v for k, v in field_errors(exc).items()}
        if found:
            self.errors.show(self.errors.known(found))

    def controls(self) -> list[QWidget]:
        return list(self.inputs.values())


class TenantSettingsDialog(AdminDialog):
    title = "Tenant settings"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumWidth(520)
        self.tenant: dict[str, Any] = {}
        self.name = QLabel()
        self.name.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.layout_.addWidget(self.name)
        box = QGroupBox("Regional settings")
        box_layout = QFormLayout(box)
        self.form = TenantSettingsForm()
        box_layout.addRow(self.form)
        self.layout_.addWidget(box)
        self.others = QLabel()
        self.others.setWordWrap(True)
        self.others.setStyleSheet("color: #5f6368;")
        self.others.hide()
        self.layout_.addWidget(self.others)
        self.layout_.addStretch(1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = self.buttons.addButton("Save", QDialogButtonBox.ButtonRole.ApplyRole)
        self.save_button.clicked.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.editors += [*self.form.controls(), self.save_button]
        self.finish_layout()

    async def fetch(self) -> None:
        tenant = await self.api.request("GET", f"/api/tenants/{self.tenant_id}")
        self._show(tenant if isinstance(tenant, dict) else {})

    def _show(self, tenant: dict[str, Any]) -> None:
        self.tenant = tenant
        settings = tenant.get("settings") if isinstance(tenant.get("settings"), dict) else {}
        assert isinstance(settings, dict)
        self.name.setText(f"{tenant.get('name', '')}  ({tenant.get('slug', '')})")
        self.form.set_values(settings)
        others = {k: v for k, v in settings.items() if k not in SETTINGS}
        self.others.setText(
            "Other settings (kept as they are): "
            + "; ".join(f"{humanize(k)}: {v}" for k, v in sorted(others.items()))
        )
        self.others.setVisible(bool(others))

    def save(self) -> None:
        self.clear_banners()
        found = self.form.problems()
        self.form.errors.show(found)
        if found:
            self.show_failure(ValueError("Fix the marked settings; nothing was saved."))
            return
        changed = self.form.changed()
        if not changed:
            self.show_info("Nothing to save: no setting changed.")
            return
        self.run(self._save(changed))

    async def _save(self, changed: dict[str, str | None]) -> None:
        tenant = await self.api.request(
            "PUT", f"/api/tenants/{self.tenant_id}", json={"settings": changed}
        )
        self._show(tenant if isinstance(tenant, dict) else {})
        self.show_done("Saved: " + ", ".join(LABELS[k].lower() for k in changed) + ".")

    def show_failure(self, exc: BaseException) -> None:
        self.form.show_server_errors(exc)
        super().show_failure(exc)
