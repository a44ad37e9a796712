"""The OpenAPI document at /api-docs/openapi.json and the offline Swagger UI at /api-docs.

Besides the real routes, the app under test gets a small `probe` module with a nested body
model, a query model and a path parameter, so the generator is exercised whatever resource
modules exist yet.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, Field

from aisha_server.api.openapi import REF_TEMPLATE, downgrade_for_swagger_ui
from aisha_server.api.routing import Routes, endpoint_of
from aisha_server.app import create_app
from aisha_server.config import Settings
from aisha_server.envelope import success


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str | None = None


class ProbeCreate(BaseModel):
    name: str = Field(min_length=1, description="Display name")
    colour: Colour = Colour.RED
    address: Address
    tags: list[str] = []
    score: int | None = Field(default=None, gt=0)


class ProbeQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    q: str | None = None
    status: list[str] = []


class ProbeOut(BaseModel):
    id: uuid.UUID
    name: str


def _probe_routes() -> Routes:
    routes = Routes()

    @routes.post(
        "/api/probes",
        summary="Create a probe",
        tags=("probes",),
        body=ProbeCreate,
        response=ProbeOut,
        status=201,
        errors=(409,),
    )
    async def create_probe(request: web.Request, body: ProbeCreate) -> web.Response:
        return success({"id": str(uuid.uuid4()), "name": body.name}, status=201)

    @routes.get(
        "/api/probes/{probe_id}",
        summary="Get one probe",
        tags=("probes",),
        query=ProbeQuery,
        response=list[ProbeOut],
    )
    async def get_probe(request: web.Request, query: ProbeQuery) -> web.Response:
        return success([])

    @routes.get("/api/probes-public", summary="Public probe", tags=("probes",), auth=False)
    async def public_probe(request: web.Request) -> web.Response:
        return success({})

    return routes


@pytest.fixture
def app(settings: Settings) -> web.Application:
    application = create_app(settings)
    application.router.add_routes(_probe_routes().table)
    return application


async def _document(client: Any) -> dict[str, Any]:
    resp = await client.get("/api-docs/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return dict(await resp.json())


def _walk_refs(node: Any) -> list[str]:
    refs: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                refs.append(value)
            else:
                refs.extend(_walk_refs(value))
    elif isinstance(node, list):
        for item in node:
            refs.extend(_walk_refs(item))
    return refs


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def _inline(schema: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """`schema` with every $ref replaced by its target (recursion marked), so two schemas
    whose definitions are named differently still compare equal."""
    if isinstance(schema, list):
        return [_inline(s, defs, stack) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in stack:
            return {"recursive": defs[name].get("title", name)}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        merged = {**defs[name], **rest}
        return _inline(merged, defs, (*stack, name))
    return {k: _inline(v, defs, stack) for k, v in schema.items() if k != "$defs"}


def _model_schema(model: Any) -> Any:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    return _inline(schema, schema.get("$defs", {}))


def _declared_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.router.routes():
        endpoint = endpoint_of(route.handler)
        if endpoint is not None and route.method == endpoint.method:
            path = re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", route.resource.canonical)
            found.append((route.method, path, endpoint))
    return found


async def test_document_header_and_security_schemes(client: Any) -> None:
    from aisha_server import __version__

    doc = await _document(client)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "AiSHA API"
    assert doc["info"]["version"] == __version__
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["apiKeyAuth"]["type"] == "apiKey"
    assert schemes["apiKeyAuth"]["in"] == "header"
    assert schemes["apiKeyAuth"]["name"] == "X-API-Key"
    error = doc["components"]["schemas"]["Error"]
    assert set(error["properties"]) >= {"status", "message", "code", "details"}
    assert error["required"] == ["status", "message"]


async def test_every_declared_route_is_documented_with_its_method(
    client: Any, app: web.Application
) -> None:
    doc = await _document(client)
    declared = _declared_routes(app)
    assert len(declared) >= 8
    for method, path, _ in declared:
        assert path in doc["paths"], path
        assert method.lower() in doc["paths"][path], f"{method} {path}"
    # nothing is documented that the app does not serve
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert documented == {(m, p) for m, p, _ in declared}
    # and every route of the app is either documented or part of the docs UI itself
    for route in app.router.routes():
        if endpoint_of(route.handler) is None:
            assert route.resource is not None
            assert route.resource.canonical.startswith("/api-docs"), route


async def test_every_ref_resolves(client: Any) -> None:
    doc = await _document(client)
    refs = _walk_refs(doc)
    assert refs, "the document should use components"
    for ref in refs:
        _pointer(doc, ref)
    ui = downgrade_for_swagger_ui(doc)
    for ref in _walk_refs(ui):
        _pointer(ui, ref)


async def test_request_bodies_and_queries_are_the_validating_models(
    client: Any, app: web.Application
) -> None:
    doc = await _document(client)
    defs = doc["components"]["schemas"]
    with_body = 0
    for method, path, endpoint in _declared_routes(app):
        operation = doc["paths"][path][method.lower()]
        if endpoint.body is not None:
            with_body += 1
            content = operation["requestBody"]["content"]
            media = "multipart/form-data" if endpoint.multipart else "application/json"
            assert operation["requestBody"]["required"] is True
            documented = _inline(content[media]["schema"], defs)
            assert documented == _model_schema(endpoint.body), f"{method} {path}"
        elif endpoint.multipart:
            assert "multipart/form-data" in operation["requestBody"]["content"]
        else:
            assert "requestBody" not in operation, f"{method} {path}"
        if endpoint.query is not None:
            model = _model_schema(endpoint.query)
            params = {p["name"]: p for p in operation["parameters"] if p.get("in") == "query"}
            assert set(params) == set(model["properties"]), f"{method} {path}"
            for name, param in params.items():
                assert param["required"] == (name in model.get("required", []))
    assert with_body >= 1


async def test_probe_operation_details(client: Any) -> None:
    doc = await _document(client)
    create = doc["paths"]["/api/probes"]["post"]
    assert create["tags"] == ["probes"]
    assert create["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]
    assert create["x-api-key-scope"] == "create:probes"
    # nested models and enums are hoisted into components, referenced, not inlined
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = _pointer(doc, body_ref)
    assert body["properties"]["address"] == {"$ref": "#/components/schemas/Address"}
    assert "Colour" in doc["components"]["schemas"]
    assert body["required"] == ["name", "address"]
    # success envelope with the response model, the declared status, and the error envelope
    responses = create["responses"]
    assert set(responses) == {"201", "400", "401", "403", "409", "413", "422", "429"}
    ok = responses["201"]["content"]["application/json"]["schema"]
    assert ok["properties"]["status"] == {"type": "string", "enum": ["success"]}
    assert _pointer(doc, ok["properties"]["data"]["$ref"])["title"] == "ProbeOut"
    for code in ("400", "401", "403", "409", "422", "429"):
        target = _pointer(doc, responses[code]["$ref"])
        schema = target["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}

    get = doc["paths"]["/api/probes/{probe_id}"]["get"]
    params = {p.get("name"): p for p in get["parameters"] if "name" in p}
    assert params["probe_id"] == {
        "name": "probe_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert params["limit"]["in"] == "query"
    assert params["limit"]["required"] is False
    assert params["limit"]["schema"]["maximum"] == 500
    assert params["status"]["explode"] is True
    assert {"$ref": "#/components/parameters/TenantHeader"} in get["parameters"]
    assert "404" in get["responses"]
    assert "422" in get["responses"]
    data = get["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data["type"] == "array"

    public = doc["paths"]["/api/probes-public"]["get"]
    assert public["security"] == []
    assert "401" not in public["responses"]
    assert "parameters" not in public


async def test_system_routes_are_described_as_they_answer(client: Any) -> None:
    doc = await _document(client)
    health = doc["paths"]["/health"]["get"]
    schema = health["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["properties"]["status"] == {"type": "string", "enum": ["ok"]}
    assert health["security"] == []
    prometheus = doc["paths"]["/metrics"]["get"]
    assert "text/plain" in prometheus["responses"]["200"]["content"]
    assert prometheus["x-api-key-scope"] == "read:metrics"
    assert doc["paths"]["/api/system/diagnostics"]["post"]["security"]
    # the documented example really is what the server answers
    resp = await client.get("/health")
    assert set(await resp.json()) == set(schema["required"])


async def test_document_is_cached_and_stable(client: Any) -> None:
    first = await (await client.get("/api-docs/openapi.json")).read()
    second = await (await client.get("/api-docs/openapi.json")).read()
    assert first == second


async def test_optional_full_validation(client: Any) -> None:
    """With openapi-spec-validator installed, the document is validated against the
    official 3.1 schema too; the structural tests above run either way."""
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(await _document(client))


async def test_swagger_ui_view_is_openapi_30(client: Any) -> None:
    resp = await client.get("/api-docs/openapi-3.0.json")
    assert resp.status == 200
    ui = await resp.json()
    assert ui["openapi"] == "3.0.3"
    body = ui["components"]["schemas"]["ProbeCreate"]
    # 3.1's `anyOf [.., null]` became 3.0's nullable, numeric exclusiveMinimum the boolean form
    assert body["properties"]["score"]["nullable"] is True
    assert body["properties"]["score"]["type"] == "integer"
    assert body["properties"]["score"]["exclusiveMinimum"] is True
    assert body["properties"]["score"]["minimum"] == 0
    address = ui["components"]["schemas"]["Address"]
    assert address["properties"]["city"]["nullable"] is True
    assert "anyOf" not in str(address)


async def test_docs_page_is_html_with_local_assets_only(client: Any) -> None:
    resp = await client.get("/api-docs", allow_redirects=False)
    assert resp.status in (301, 302, 307, 308)
    assert resp.headers["Location"] == "/api-docs/"
    resp = await client.get("/api-docs")  # follows the redirect, no auth needed
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "SwaggerUIBundle" in page
    assert "openapi" in page
    links = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r'url: "([^"]+)"', page)
    assert links
    for link in links:
        assert not re.match(r"^(?:[a-z]+:)?//", link, re.IGNORECASE), link
        assert link.startswith("./"), link
    # every local asset the page names is served
    for link in links:
        asset = await client.get("/api-docs/" + link[2:])
        assert asset.status == 200, link


async def test_swagger_ui_javascript_is_served(client: Any) -> None:
    resp = await client.get("/api-docs/assets/swagger-ui-bundle.js")
    assert resp.status == 200
    assert "javascript" in resp.content_type
    assert len(await resp.read()) > 100_000
    missing = await client.get("/api-docs/assets/nope.js")
    assert missing.status == 404
    escape = await client.get("/api-docs/assets/../../../../etc/passwd")
    assert escape.status in (403, 404)
