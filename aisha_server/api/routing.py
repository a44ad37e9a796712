"""Route declarations that carry their own contract.

`Routes` wraps `web.RouteTableDef`.  A handler declares the pydantic models of its body,
query and response; the wrapper parses and validates input before the handler runs (so the
handler receives typed objects) and the OpenAPI document is generated from the same
declarations (`aisha_server.api.openapi`).  One contract, used twice.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from aisha_server import keys
from aisha_server.errors import BadRequest, Invalid, PayloadTooLarge

Handler = Callable[..., Awaitable[web.StreamResponse]]

# a path's `{name}` or `{name:regex}` parts
PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def plain_path(path: str) -> str:
    """A route's path as documented: `{name:regex}` parts shown as `{name}`."""
    return PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


@dataclass(frozen=True)
class Endpoint:
    """What a route promises; read by the OpenAPI generator and the auth middleware."""

    method: str
    path: str
    summary: str
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | Any | None = None
    status: int = 200
    auth: bool = True
    description: str = ""
    multipart: bool = False
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


ENDPOINT_ATTR = "__aisha_endpoint__"


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        details.append({"field": loc, "message": err["msg"], "type": err["type"]})
    return details


def raise_invalid(exc: ValidationError, *, what: str = "Validation failed") -> None:
    details = validation_details(exc)
    fields = ", ".join(sorted({d["field"] for d in details}))
    raise Invalid(f"{what}: {fields}", details=details) from None


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 that says what is wrong with it."""
    if not request.body_exists:
        raise BadRequest("Request body is required (JSON)", code="body_required")
    ctype = request.content_type
    if ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise BadRequest(
            f"Unsupported content type {ctype!r}; send application/json",
            code="unsupported_media_type",
        )
    # client_max_size admits uploads; a JSON body has the smaller AISHA_MAX_BODY_BYTES
    settings = request.config_dict.get(keys.SETTINGS)
    limit = settings.AISHA_MAX_BODY_BYTES if settings is not None else None
    if limit is not None and (request.content_length or 0) > limit:
        raise _too_large(limit)
    raw = await request.read()
    if limit is not None and len(raw) > limit:
        raise _too_large(limit)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Malformed JSON: {exc}", code="malformed_json") from None
    if b"\\u0000" in raw:  # cheap test first: NUL can only arrive escaped
        _refuse_nul(data, "body")
    return data


def _refuse_nul(value: Any, where: str) -> None:
    """PostgreSQL stores no NUL character in text or JSON: refuse it as bad input (a 422
    naming the field) rather than fail in the database."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid(
                f"Validation failed: {where}",
                details=[{"field": where, "message": "must not contain NUL characters"}],
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, f"{where}.{key}" if where != "body" else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{where}[{index}]")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Request body too large (limit {limit} bytes)", details={"limit_bytes": limit}
    )


async def read_limited(read: Any, limit: int) -> bytes:
    """Read an upload (`request.content.read` or a multipart part's `read_chunk`) up to
    `limit` bytes; beyond it a 413, without holding more than the limit in memory."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk: bytes = await read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"Upload too large (limit {limit} bytes)", code="upload_too_large"
            )
        chunks.append(chunk)


def parse_model(model: type[BaseModel], data: Any, *, what: str = "Validation failed") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_invalid(exc, what=what)


def _takes_many(annotation: Any) -> bool:
    """Whether a query field's type is a list (or a union/Annotated holding one)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return origin is not None and any(_takes_many(arg) for arg in typing.get_args(annotation))


@functools.cache
def _repeatable(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, info in model.model_fields.items()
        for key in (name, info.alias)
        if key is not None and _takes_many(info.annotation)
    )


def parse_query(model: type[BaseModel], request: web.Request) -> Any:
    data: dict[str, Any] = {}
    repeated: list[str] = []
    for key in request.query:
        if key in data:
            continue  # MultiDict iterates a repeated key once per value
        values = request.query.getall(key)
        for value in values:
            _refuse_nul(value, key)
        if len(values) > 1 and key not in _repeatable(model):
            repeated.append(key)
        data[key] = values if len(values) > 1 else values[0]
    if repeated:
        raise Invalid(
            f"Invalid query parameters: {', '.join(repeated)}",
            details=[
                {"field": key, "message": "given more than once; give it once",
                 "type": "repeated"}
                for key in repeated
            ],
        )  # fmt: skip
    return parse_model(model, data, what="Invalid query parameters")


class Routes:
    """A module's route table.  `routes.get(path, summary=..., query=Model, response=Model)`."""

    def __init__(self) -> None:
        self.table = web.RouteTableDef()
        self.endpoints: list[Endpoint] = []

    def _route(self, method: str, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            endpoint = Endpoint(method=method, path=plain_path(path), **meta)
            wrapped = _wrap(fn, endpoint)
            setattr(wrapped, ENDPOINT_ATTR, endpoint)
            self.table.route(method, path)(wrapped)
            self.endpoints.append(endpoint)
            return wrapped

        return decorate

    def get(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self._route("GET", path, **meta)

    def post(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self._route("POST", path, **meta)

    def put(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self._route("PUT", path, **meta)

    def patch(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self._route("PATCH", path, **meta)

    def delete(self, path: str, **meta: Any) -> Callable[[Handler], Handler]:
        return self._route("DELETE", path, **meta)


def _wrap(fn: Handler, endpoint: Endpoint) -> Handler:
    body_model = endpoint.body
    query_model = endpoint.query
    if body_model is None and query_model is None:
        return fn  # nothing to parse: no wrapper layer on the hot path

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if query_model is not None:
            kwargs["query"] = parse_query(query_model, request)
        if body_model is not None:
            kwargs["body"] = parse_model(body_model, await read_json(request))
        return await fn(request, **kwargs)

    return handler


def endpoint_of(handler: Any) -> Endpoint | None:
    return getattr(handler, ENDPOINT_ATTR, None)
