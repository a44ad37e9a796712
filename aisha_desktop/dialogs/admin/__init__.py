"""Admin settings dialogs: entity labels, module settings and custom fields.

`open_admin_dialog(kind, api, tenant_id, parent)` builds one, shows it and starts loading;
admins edit, everyone else gets the same dialog read-only with a line saying why.
"""

from __future__ import annotations

from typing import Literal

from PySide6.QtWidgets import QWidget

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.base import ADMIN_ROLES, AdminDialog
from aisha_desktop.dialogs.admin.custom_fields import CustomFieldsDialog
from aisha_desktop.dialogs.admin.entity_labels import EntityLabelsDialog
from aisha_desktop.dialogs.admin.module_settings import ModuleSettingsDialog

AdminKind = Literal["entity_labels", "module_settings", "custom_fields"]
DIALOGS: dict[str, type[AdminDialog]] = {
    "entity_labels": EntityLabelsDialog,
    "module_settings": ModuleSettingsDialog,
    "custom_fields": CustomFieldsDialog,
}


def open_admin_dialog(
    kind: AdminKind, api: ApiClient, tenant_id: str, parent: QWidget | None = None
) -> AdminDialog:
    """Show the `kind` dialog for `tenant_id` (non-modal) and start loading it; await
    `dialog.wait()` for the load to finish.  Run on the qasync loop."""
    dialog = DIALOGS[kind](api, tenant_id, parent)
    dialog.show()
    dialog.start()
    return dialog


__all__ = [
    "ADMIN_ROLES",
    "DIALOGS",
    "AdminDialog",
    "AdminKind",
    "CustomFieldsDialog",
    "EntityLabelsDialog",
    "ModuleSettingsDialog",
    "open_admin_dialog",
]
