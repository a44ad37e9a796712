"""Custom field definitions and the validation of their values (guide 4.4, 6.5)."""

from __future__ import annotations

from aisha_server.db.uow import Database


class CustomFieldService:
    def __init__(self, db: Database) -> None:
        self._db = db
