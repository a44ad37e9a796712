"""`AppContext`: what the main window and its views get from `bootstrap()`.

One object, built once after sign-in and handed down through constructors (no globals):

- `settings`: the console's settings (`aisha_desktop.settings`) and where they are saved;
- `api`: the signed-in `ApiClient` (for what the replica does not hold: admin dialogs, health);
- `replica` and `engine`: the local data and the `SyncEngine` keeping it in step; views read
  the replica and write through the engine (`engine.create/update/delete`);
- `me` and `tenant_id`: who is signed in and the tenant the replica belongs to;
- `label(entity)`: the tenant's plural label of an entity (as relabelled by its admins);
- `server_url` and `bundled`: where the data lives (for the status bar and Settings);
- `switch(tenant_id)`: a superadmin's move to another tenant (`Bootstrap.switch_tenant`):
  this context's replica and engine close and the returned context holds the other's.

`aclose()` ends everything in reverse order of creation: the engine (after the step in
flight), the replica, the client, then the console's share of the bundled server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aisha_desktop.client import ApiClient, CurrentUser
from aisha_desktop.replica import Replica
from aisha_desktop.settings import DesktopSettings
from aisha_desktop.sync import SyncEngine

DEFAULT_LABELS = {
    "accounts": "Accounts",
    "contacts": "Contacts",
    "leads": "Leads",
    "opportunities": "Opportunities",
    "activities": "Activities",
    "notes": "Notes",
}


@dataclass
class AppContext:
    settings: DesktopSettings
    settings_path: Path
    api: ApiClient
    replica: Replica
    engine: SyncEngine
    me: CurrentUser
    tenant_id: str
    server_url: str
    bundled: bool
    switch: Callable[[str], Awaitable[AppContext]] | None = field(default=None, repr=False)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    def label(self, entity: str) -> str:
        """The plural label of `entity` in this tenant (its custom label when one is set)."""
        for row in self.replica.settings("entity_labels"):
            if row.get("entity_key") == entity and row.get("custom_label"):
                return str(row["custom_label"])
        return DEFAULT_LABELS.get(entity, entity.replace("_", " ").title())

    def save_settings(self, settings: DesktopSettings) -> None:
        self.settings = settings
        settings.save(self.settings_path)

    async def aclose(self) -> None:
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            await close()
