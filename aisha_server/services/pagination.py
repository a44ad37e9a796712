"""One page of a list, as every listing service returns it, and the opaque keyset cursors
lists hand back (`next_cursor`): the last row's sort values, base64url of a JSON array."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from aisha_server.errors import BadRequest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    def pagination(self) -> dict[str, int]:
        """The `pagination` member of a list answer, beside `data`."""
        return {"limit": self.limit, "offset": self.offset, "total": self.total}


def encode_cursor(values: Sequence[Any]) -> str:
    """A keyset cursor holding `values` (the last row's sort value(s) and id)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values), default=str)).decode().rstrip("=")


def decode_cursor(cursor: str, size: int = 2) -> list[Any]:
    """The values of a cursor made by `encode_cursor`; a 400 `invalid_cursor` for anything
    else (a client's typo, a cursor of another list)."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("Invalid cursor", code="invalid_cursor") from None
    if not isinstance(decoded, list) or len(decoded) != size:
        raise BadRequest("Invalid cursor", code="invalid_cursor")
    return decoded


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """A cursor of a newest-first list on (timestamp, id)."""
    stamp, row_id = decode_cursor(cursor)
    try:
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, uuid.UUID(row_id)
    except (ValueError, TypeError):
        raise BadRequest("Invalid cursor", code="invalid_cursor") from None
