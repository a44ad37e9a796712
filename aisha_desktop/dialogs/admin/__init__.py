"""Admin settings dialogs: users and invitations, employees, tenants (superadmin), API keys,
tenant settings, entity labels, module settings and custom fields.

`open_admin_dialog(kind, api, tenant_id, parent)` builds one, shows it and starts loading;
admins edit, everyone else gets the same dialog read-only with a line saying why (the
Tenants dialog: superadmins edit, and the console offers it to nobody else).
"""

from __future__ import annotations

from typing import Literal

from PySide6.QtWidgets import QWidget

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.api_keys import ApiKeysDialog
from aisha_desktop.dialogs.admin.base import ADMIN_ROLES, AdminDialog
from aisha_desktop.dialogs.admin.custom_fields import CustomFieldsDialog
from aisha_desktop.dialogs.admin.employees import EmployeesDialog
from aisha_desktop.dialogs.admin.entity_labels import EntityLabelsDialog
from aisha_desktop.dialogs.admin.module_settings import ModuleSettingsDialog
from aisha_desktop.dialogs.admin.tenant_settings import TenantSettingsDialog
from aisha_desktop.dialogs.admin.tenants import TenantRow, TenantsDialog, list_tenants
from aisha_desktop.dialogs.admin.users import UsersDialog

AdminKind = Literal[
    "users",
    "employees",
    "tenants",
    "api_keys",
    "tenant_settings",
    "entity_labels",
    "module_settings",
    "custom_fields",
]
DIALOGS: dict[str, type[AdminDialog]] = {
    "users": UsersDialog,
    "employees": EmployeesDialog,
    "tenants": TenantsDialog,
    "api_keys": ApiKeysDialog,
    "tenant_settings": TenantSettingsDialog,
    "entity_labels": EntityLabelsDialog,
    "module_settings": ModuleSettingsDialog,
    "custom_fields": CustomFieldsDialog,
}
SUPERADMIN_ONLY = frozenset({"tenants"})


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
    "SUPERADMIN_ONLY",
    "AdminDialog",
    "AdminKind",
    "ApiKeysDialog",
    "CustomFieldsDialog",
    "EmployeesDialog",
    "EntityLabelsDialog",
    "ModuleSettingsDialog",
    "TenantRow",
    "TenantSettingsDialog",
    "TenantsDialog",
    "UsersDialog",
    "list_tenants",
    "open_admin_dialog",
]
