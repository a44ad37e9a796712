"""API keys (guide 3.4): created by admins, shown once, stored hashed, scoped and expiring."""

from __future__ import annotations

from aisha_server.auth.gate import AuthGate
from aisha_server.db.uow import Database


class ApiKeyService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate
