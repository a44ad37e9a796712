"""Resolves what a request calls a tenant (UUID or slug) to its UUID, at the edge (guide 4.1)."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aisha_server.db.models import Tenant
from aisha_server.db.uow import Database
from aisha_server.errors import NotFound


class TenantDirectory:
    def __init__(self, db: Database, *, ttl: float = 30.0) -> None:
        self._db = db
        self._ttl = ttl
        self._cache: dict[str, tuple[float, uuid.UUID | None]] = {}

    async def resolve(self, ref: str) -> uuid.UUID:
        """UUID of the live tenant named by `ref` (UUID or slug); NotFound otherwise."""
        ref = ref.strip()
        now = time.monotonic()
        hit = self._cache.get(ref)
        if hit is not None and now - hit[0] <= self._ttl:
            found = hit[1]
        else:
            found = await self._db.run(
                lambda s: self._lookup(s, ref), system=True, write=False, quick=True
            )
            self._cache[ref] = (now, found)
            if len(self._cache) > 10_000:
                self._cache.clear()
        if found is None:
            raise NotFound(f"Tenant not found: {ref}", code="tenant_not_found")
        return found

    @staticmethod
    def _lookup(session: Session, ref: str) -> uuid.UUID | None:
        try:
            as_uuid: uuid.UUID | None = uuid.UUID(ref)
        except ValueError:
            as_uuid = None
        condition = Tenant.slug == ref.lower()
        if as_uuid is not None:
            condition = or_(Tenant.id == as_uuid, condition)
        return session.scalar(
            select(Tenant.id).where(condition, Tenant.deleted_at.is_(None)).limit(1)
        )

    def forget(self) -> None:
        self._cache.clear()
