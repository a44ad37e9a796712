"""The superadmin's tenant switcher in the main window's status bar: the server's tenants in
a combo (suspended ones marked), the one the console works in selected.  Choosing another
emits `switch_requested(tenant_id)`; the composition root then reopens the console on that
tenant's replica (`Bootstrap.switch_tenant`), since a replica and its sync engine belong to
one tenant."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin import TenantRow, list_tenants
from aisha_desktop.dialogs.common import describe
from aisha_desktop.views.tasks import TaskKeeper


class TenantSwitcher(QComboBox):
    switch_requested = Signal(str)  # the tenant id to reopen the console on

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tenant_switcher")
        self.api = api
        self.tenant_id = tenant_id
        self.tenants: list[TenantRow] = []
        self.tasks = TaskKeeper(self._failed)
        self.setMinimumContentsLength(18)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setToolTip("Tenant: switch to work in another tenant (superadmin)")
        self.addItem("Loading tenants…", "")
        self.setEnabled(False)
        self.activated.connect(self._chosen)

    def start(self) -> None:
        """Load the tenants (on the running loop); `tasks.drain()` waits for it."""
        self.tasks.spawn(self.load())

    async def load(self) -> None:
        self.tenants = await list_tenants(self.api)
        self.clear()
        for tenant in self.tenants:
            mark = "" if tenant.status == "active" else f"  ({tenant.status})"
            self.addItem(f"{tenant.name}{mark}", tenant.id)
        self.setCurrentIndex(max(self.findData(self.tenant_id), 0))
        self.setEnabled(len(self.tenants) > 1)

    def _failed(self, error: BaseException) -> None:
        self.clear()
        self.addItem("Tenants unavailable", "")
        self.setToolTip(f"Could not list the tenants: {describe(error)}")
        self.setEnabled(False)

    def _chosen(self, index: int) -> None:
        chosen = str(self.itemData(index) or "")
        if chosen and chosen != self.tenant_id:
            # the combo keeps naming the tenant this window works in: a new window opens on
            # the chosen one (or, should that fail, this one stays as it is)
            self.setCurrentIndex(max(self.findData(self.tenant_id), 0))
            self.switch_requested.emit(chosen)
