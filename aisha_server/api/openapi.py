"""The OpenAPI 3.1 document, generated from the routes' own `Endpoint` declarations.

The pydantic models that validate a request body or query string are the ones described
here, so the document cannot drift from what the server accepts.  The document is built on
the first request for it (every module has mounted its routes by then) and cached on the
application.

Swagger UI 4 (the release bundled by `swagger-ui-bundle`) only renders OpenAPI 3.0, so
`downgrade_for_swagger_ui` derives a 3.0 view of the same document for the UI; the 3.1
document stays the contract.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from aisha_server import __version__
from aisha_server.api.routing import PATH_PARAM, Endpoint, endpoint_of, plain_path
from aisha_server.middlewares import RATE_LIMIT_EXEMPT, _api_key_action

OPENAPI_VERSION = "3.1.0"
TITLE = "AiSHA API"
REF_TEMPLATE = "#/components/schemas/{model}"
DESCRIPTION = (
    'REST API of the AiSHA server.  Every success is `{"status":"success","data":...}`; '
    'every error is `{"status":"error","message":...}` with a `code` and, for '
    "validation errors, `details`.  Authenticate with a bearer JWT from `POST /api/auth/login` "
    "or with an API key in `X-API-Key`.  A superadmin names the tenant to act on with the "
    "`X-Tenant-ID` header (UUID or slug)."
)

ERROR_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, missing body, unsupported content type)",
    401: "Authentication required, or the token / API key is invalid or expired",
    403: "Not allowed for this role, tenant or API key scope",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "Validation failed; `details` lists each field",
    429: "Too many requests; retry after `retryAfter` seconds",
    503: "Service unavailable",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "required": ["status", "message"],
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "message": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable error code"},
        "details": {
            "description": "Per-field problems for validation errors",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
        "retryAfter": {"type": "integer", "description": "Seconds to wait (429 only)"},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Access token from POST /api/auth/login",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "API key; limited to its scoped permissions",
    },
}

TENANT_HEADER: dict[str, Any] = {
    "name": "X-Tenant-ID",
    "in": "header",
    "required": False,
    "description": "Tenant to act on (UUID or slug).  Superadmins may name any tenant; "
    "other users only their own (403 `Access denied: Invalid tenant`).",
    "schema": {"type": "string"},
}


@dataclass
class OpenApiCache:
    """The rendered document, built once per application on first request."""

    document: bytes | None = None
    swagger_ui_document: bytes | None = None

    def openapi_json(self, app: web.Application) -> bytes:
        if self.document is None:
            self.document = orjson.dumps(build_document(app))
        return self.document

    def swagger_ui_json(self, app: web.Application) -> bytes:
        if self.swagger_ui_document is None:
            self.swagger_ui_document = orjson.dumps(
                downgrade_for_swagger_ui(orjson.loads(self.openapi_json(app)))
            )
        return self.swagger_ui_document


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str  # OpenAPI form: regex parts of `{name:regex}` removed
    path_params: tuple[str, ...]
    endpoint: Endpoint
    handler_name: str


def documented_operations(app: web.Application) -> list[_Operation]:
    """Every route of `app` (sub-applications included) that carries `Endpoint` metadata."""
    operations: list[_Operation] = []
    seen: set[tuple[str, str]] = set()
    for route in app.router.routes():
        endpoint = endpoint_of(route.handler)
        # aiohttp adds a HEAD route beside every GET; only the declared method is documented
        if endpoint is None or route.resource is None or route.method != endpoint.method:
            continue
        canonical = route.resource.canonical
        path = plain_path(canonical)
        key = (route.method.upper(), path)
        if key in seen:
            continue
        seen.add(key)
        name = getattr(route.handler, "__name__", "handler")
        module = getattr(route.handler, "__module__", "").rsplit(".", 1)[-1]
        operations.append(
            _Operation(
                method=route.method.upper(),
                path=path,
                path_params=tuple(PATH_PARAM.findall(canonical)),
                endpoint=endpoint,
                handler_name=f"{module}_{name}" if module else name,
            )
        )
    return operations


def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def _is_schema_literal(value: Any) -> bool:
    return isinstance(value, dict)


def build_document(app: web.Application) -> dict[str, Any]:
    operations = documented_operations(app)

    # All models in one pass, so pydantic gives clashing names distinct component keys.
    inputs: list[tuple[tuple[str, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for op in operations:
        ep = op.endpoint
        ident = f"{op.method} {op.path}"
        if ep.body is not None:
            inputs.append(((ident, "body"), "validation", _adapter(ep.body)))
        if ep.query is not None:
            inputs.append(((ident, "query"), "validation", _adapter(ep.query)))
        if ep.response is not None and not _is_schema_literal(ep.response):
            inputs.append(((ident, "response"), "serialization", _adapter(ep.response)))
    key_map: dict[Any, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    if inputs:
        key_map, defs = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        schemas.update(defs.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    operation_ids: set[str] = set()
    for op in operations:
        ep = op.endpoint
        ident = f"{op.method} {op.path}"
        tags.update(ep.tags)
        operation: dict[str, Any] = {
            "operationId": _unique(op.handler_name, operation_ids),
            "summary": ep.summary,
        }
        if ep.tags:
            operation["tags"] = list(ep.tags)
        if ep.description:
            operation["description"] = ep.description

        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in op.path_params
        ]
        if ep.query is not None:
            parameters.extend(_query_parameters(key_map[(ident, "query"), "validation"], schemas))
        if ep.auth:
            parameters.append({"$ref": "#/components/parameters/TenantHeader"})
        if parameters:
            operation["parameters"] = parameters

        body_schema = key_map[(ident, "body"), "validation"] if ep.body is not None else None
        if ep.multipart:
            form = body_schema or {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "contentMediaType": "application/octet-stream"}
                },
            }
            operation["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": form}},
            }
        elif body_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }

        operation["responses"] = _responses(op, ident, key_map)
        if ep.auth:
            operation["security"] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
            operation["x-api-key-scope"] = _api_key_scope(op)
        else:
            operation["security"] = []
        for name, value in ep.extra.items():
            if name.startswith("x-"):
                operation[name] = value
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": __version__, "description": DESCRIPTION},
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                str(code): {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, text in ERROR_DESCRIPTIONS.items()
            },
            "parameters": {"TenantHeader": TENANT_HEADER},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _api_key_scope(op: _Operation) -> str:
    """The permission an API key needs, computed exactly as `middlewares.authenticate` does."""
    ep = op.endpoint
    if ep.extra.get("any_api_key"):
        return "any"
    resource = ep.extra.get("resource") or (ep.tags[0] if ep.tags else "api")
    action = ep.extra.get("action") or _api_key_action(op.method)
    return f"{action}:{resource}"


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        target = schemas.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, dict):
            return target
    return schema


def _query_parameters(schema: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    model = _resolve(schema, schemas)
    required = set(model.get("required", []))
    params = []
    for name, prop in model.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        if "description" in prop:
            param["description"] = prop["description"]
        if _is_array(prop, schemas):
            param["style"], param["explode"] = "form", True
        params.append(param)
    return params


def _is_array(prop: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if _resolve(prop, schemas).get("type") == "array":
        return True
    return any(_is_array(alt, schemas) for alt in prop.get("anyOf", []))


def _responses(op: _Operation, ident: str, key_map: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    ep = op.endpoint
    if ep.response is None:
        data: dict[str, Any] = {"description": "Response data"}
    elif isinstance(ep.response, dict):
        data = copy.deepcopy(ep.response)
    else:
        data = key_map[(ident, "response"), "serialization"]
    # extra={"envelope": False}: the handler answers with the bare body (health, documents);
    # extra={"content_type": ...}: a non-JSON answer such as Prometheus text
    content_type = ep.extra.get("content_type", "application/json")
    if content_type != "application/json":
        schema: dict[str, Any] = {"type": "string"}
    elif ep.extra.get("envelope") is False:
        schema = data
    else:
        schema = {
            "type": "object",
            "required": ["status", "data"],
            "properties": {"status": {"type": "string", "enum": ["success"]}, "data": data},
        }
    responses: dict[str, Any] = {
        str(ep.status): {
            "description": ep.summary or "Success",
            "content": {content_type: {"schema": schema}},
        }
    }
    errors: set[int] = set(ep.errors)
    if ep.body is not None or ep.multipart:
        errors.update((400, 413, 422))
    if ep.query is not None:
        errors.add(422)
    if ep.auth:
        errors.update((401, 403))
    if op.path_params:
        errors.add(404)
    if not op.path.startswith(RATE_LIMIT_EXEMPT):
        errors.add(429)
    for code in sorted(errors):
        ref = (
            {"$ref": f"#/components/responses/{code}"}
            if code in ERROR_DESCRIPTIONS
            else {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        )
        responses[str(code)] = ref
    return responses


# -- Swagger UI 4 compatibility view ------------------------------------------------------------


def downgrade_for_swagger_ui(document: dict[str, Any]) -> dict[str, Any]:
    """The same API as OpenAPI 3.0.3, for Swagger UI 4 (which refuses to render 3.1).

    Only the JSON Schema differences the generator produces are translated: `null` in
    `anyOf`/`type` becomes `nullable`, `const` becomes a one-value `enum`, `examples` becomes
    `example`, numeric `exclusiveMinimum/Maximum` become the 3.0 boolean form, and
    `contentMediaType` uploads become `format: binary`.
    """
    doc = _downgrade(copy.deepcopy(document))
    assert isinstance(doc, dict)
    doc["openapi"] = "3.0.3"
    return doc


# keys whose value maps arbitrary names (field names, paths, status codes) to objects: the
# map itself is not a schema, so a field called `const` or `type` is left alone
_NAMED_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "$defs",
        "schemas",
        "paths",
        "responses",
        "content",
        "parameters",
        "securitySchemes",
        "headers",
        "dependentSchemas",
    }
)


def _downgrade(node: Any, *, named_map: bool = False) -> Any:
    if isinstance(node, list):
        return [_downgrade(item) for item in node]
    if not isinstance(node, dict):
        return node
    if named_map:
        return {k: _downgrade(v) for k, v in node.items()}
    node = {k: _downgrade(v, named_map=k in _NAMED_MAPS) for k, v in node.items()}
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and any(alt == {"type": "null"} for alt in any_of):
        rest = [alt for alt in any_of if alt != {"type": "null"}]
        node.pop("anyOf")
        if len(rest) == 1 and "$ref" not in rest[0]:
            node.update({k: v for k, v in rest[0].items() if k not in node})
        elif len(rest) == 1:
            node["allOf"] = rest
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    kind = node.get("type")
    if isinstance(kind, list):
        non_null = [t for t in kind if t != "null"]
        if len(non_null) != len(kind):
            node["nullable"] = True
        node["type"] = non_null[0] if len(non_null) == 1 else "string"
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("examples"), list):
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[plain] = value
            node[bound] = True
    if node.pop("contentMediaType", None) is not None:
        node["format"] = "binary"
    return node
