"""Employees: the tenant's people, linked to users by email (guide 3.3)."""

from __future__ import annotations

from aisha_server.auth.gate import AuthGate
from aisha_server.db.uow import Database


class EmployeeService:
    def __init__(self, db: Database, gate: AuthGate) -> None:
        self._db = db
        self._gate = gate
