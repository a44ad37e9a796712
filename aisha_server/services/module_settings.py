"""Per-tenant module enablement and settings (guide 4.4 "Module Settings")."""

from __future__ import annotations

from aisha_server.db.uow import Database


class ModuleSettingsService:
    def __init__(self, db: Database) -> None:
        self._db = db
