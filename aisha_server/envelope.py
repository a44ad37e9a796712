"""The API envelope: `{"status":"success","data":...}` and `{"status":"error","message":...}`."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json"


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):  # e.g. asyncpg's own UUID type, which orjson refuses
        return str(value)
    if isinstance(value, Decimal):  # money: a string keeps every digit ("12000.50")
        return str(value)
    # pydantic models and anything else with a JSON form
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(payload), status=status, content_type=JSON_CONTENT_TYPE, headers=headers
    )


def success(data: Any = None, *, status: int = 200, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"status": "success", "data": data}
    body.update(extra)
    return json_response(body, status=status)


def error_body(
    message: str, *, code: str | None = None, details: Any = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message}
    if code is not None:
        body["code"] = code
    if details is not None:
        body["details"] = details
    body.update(extra)
    return body


def error(
    message: str,
    *,
    status: int,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    return json_response(
        error_body(message, code=code, details=details, **extra), status=status, headers=headers
    )
