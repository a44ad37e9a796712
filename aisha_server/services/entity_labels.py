"""Per-tenant entity labels (guide 4.4 "Entity Label Customization")."""

from __future__ import annotations

from aisha_server.db.uow import Database


class EntityLabelService:
    def __init__(self, db: Database) -> None:
        self._db = db
