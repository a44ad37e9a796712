"""Database look-ups for the user and employee tests (what a request left behind)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import select

from aisha_server import keys
from aisha_server.db.models import User


async def user_row(app: web.Application, user_id: uuid.UUID) -> User | None:
    return await app[keys.DB].run(lambda s: s.get(User, user_id), system=True, write=False)


async def user_by_email(app: web.Application, email: str) -> User | None:
    return await app[keys.DB].run(
        lambda s: s.scalar(select(User).where(User.email == email)), system=True, write=False
    )


async def rows(app: web.Application, stmt: Any) -> list[Any]:
    return await app[keys.DB].run(lambda s: list(s.scalars(stmt).all()), system=True, write=False)
