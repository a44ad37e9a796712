"""Tenants: creation with default module settings, settings validation, slugs."""

from __future__ import annotations

from aisha_server.config import Settings
from aisha_server.db.uow import Database
from aisha_server.services.tenant_directory import TenantDirectory


class TenantService:
    def __init__(self, settings: Settings, db: Database, directory: TenantDirectory) -> None:
        self._settings = settings
        self._db = db
        self._directory = directory
