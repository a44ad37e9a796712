"""Custom permissions and role grants (guide 3.2 "Custom Permissions")."""

from __future__ import annotations

from aisha_server.auth.gate import AuthGate
from aisha_server.db.uow import Database


class PermissionService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate
