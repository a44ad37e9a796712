"""Routes of /api/accounts, /api/contacts, /api/leads, /api/opportunities, /api/activities and
/api/notes: create, get, list, PUT, PATCH, soft delete and restore; merging duplicate
accounts, contacts and leads (`POST /api/{entity}/{id}/merge`) and converting a lead
(`POST /api/leads/{id}/convert`).

The six resources share their handlers; each gets its own pydantic request models (generated
from one field table) so validation and the OpenAPI document name the real fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import Routes
from aisha_server.envelope import success
from aisha_server.errors import BadRequest, Invalid
from aisha_server.services.records import SPECS, EntitySpec, ListParams

routes = Routes()
# entity -> {"create": <Entity>Create, "update": <Entity>Patch}: sync pushes validate with these
BODIES: dict[str, dict[str, type[BaseModel]]] = {}

Short = Annotated[str, Field(max_length=300)]
Text = Annotated[str, Field(max_length=100_000)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]


def _as_utc(value: datetime) -> datetime:
    """A time without an offset ("2026-12-01", "2026-12-01T09:30") is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# a moment: an ISO date or date-time; without an offset it is UTC
Moment = Annotated[datetime, AfterValidator(_as_utc)]


def _web_address(value: str) -> str:
    """A website as typed: an http(s) URL, or a host name with or without a port and path
    ("acme.example", "acme.example/en").  Other schemes ("javascript:", "data:") and text
    that names no host are refused: clients open this value as a link."""
    text = value.strip()
    if not text:
        return text
    candidate = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(candidate)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
        web = parts.scheme.lower() in ("http", "https")
    except ValueError:
        host, web = "", False
    if not web or not ("." in host or host == "localhost") or any(c.isspace() for c in text):
        raise ValueError("must be a web address: an http(s) URL or a host name")
    return text


WebAddress = Annotated[str, Field(max_length=500), AfterValidator(_web_address)]

# The type of every writable field, shared by the six entities.
FIELD_TYPES: dict[str, Any] = {
    "name": Annotated[str, Field(min_length=1, max_length=300)],
    "type": Annotated[str, Field(max_length=50)],
    "industry": Annotated[str, Field(max_length=100)],
    "website": WebAddress,
    "email": Annotated[str, Field(max_length=320)],
    "phone": Annotated[str, Field(max_length=50)],
    "mobile": Annotated[str, Field(max_length=50)],
    "annual_revenue": Money,
    "employee_count": Annotated[int, Field(ge=0)],
    "address_1": Short,
    "address_2": Short,
    "city": Annotated[str, Field(max_length=100)],
    "state": Annotated[str, Field(max_length=100)],
    "zip": Annotated[str, Field(max_length=20)],
    "country": Annotated[str, Field(max_length=100)],
    "description": Text,
    "tags": Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)],
    "first_name": Annotated[str, Field(max_length=100)],
    "last_name": Annotated[str, Field(max_length=100)],
    "title": Annotated[str, Field(max_length=500)],
    "company": Short,
    "account_id": uuid.UUID,
    "contact_id": uuid.UUID,
    "lead_id": uuid.UUID,
    "lead_source": Annotated[str, Field(max_length=100)],
    "source": Annotated[str, Field(max_length=100)],
    "value": Money,
    "score": Annotated[int, Field(ge=0, le=1000)],
    "stage": Annotated[str, Field(max_length=50)],
    "amount": Money,
    "probability": Annotated[int, Field(ge=0, le=100)],
    "close_date": date,
    "subject": Annotated[str, Field(min_length=1, max_length=500)],
    "due_date": Moment,
    "completed_at": Moment,
    "related_type": Annotated[str, Field(max_length=50)],
    "related_id": uuid.UUID,
    "content": Annotated[str, Field(min_length=1, max_length=100_000)],
    "owner_id": uuid.UUID,
    "assigned_to": uuid.UUID,
    "department": Annotated[str, Field(max_length=100)],
    "status": Annotated[str, Field(max_length=50)],
    "metadata": dict[str, Any],
    "custom_fields": dict[str, Any],
}


def a_noun(noun: str) -> str:
    """ "an account", "a contact" (the entities' singulars)."""
    return f"{'an' if noun[:1] in tuple('aeiou') else 'a'} {noun}"


def _title(spec: EntitySpec) -> str:
    return spec.singular.capitalize()


def _body_model(spec: EntitySpec, kind: str) -> type[BaseModel]:
    """`<Entity>Create` (required fields required), `<Entity>Replace` (PUT) and
    `<Entity>Patch` (everything optional).  Unknown fields are refused (422)."""
    fields: dict[str, Any] = {"tenant_id": (str | None, None)}
    for name in spec.writable:
        annotation = FIELD_TYPES[name]
        if kind != "Patch" and name in spec.required:
            fields[name] = (annotation, ...)
        else:
            fields[name] = (annotation | None, None)
    model: type[BaseModel] = create_model(
        f"{_title(spec)}{kind}",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        **fields,
    )
    return model


def _query_model(spec: EntitySpec) -> type[BaseModel]:
    sorts = [f"-{s}" for s in spec.sortable] + list(spec.sortable)
    fields: dict[str, Any] = {
        "limit": (int, Field(50, ge=1, le=500)),
        "offset": (int, Field(0, ge=0, le=100_000)),
        "cursor": (str | None, Field(None, max_length=500, description="next_cursor of a page")),
        "sort": (str, Field("-updated_at", description=f"one of {sorts}")),
        "q": (
            str | None,
            Field(
                None,
                max_length=200,
                description="search: every word must start one of "
                + ", ".join(spec.prefix_search)
                + " (match=prefix), or occur in one of "
                + ", ".join(spec.search)
                + " (match=contains)",
            ),
        ),
        "match": (
            Literal["prefix", "contains"],
            Field("prefix", description="how q matches: start of a value (indexed) or anywhere"),
        ),
        "owner_id": (uuid.UUID | None, None),
        "assigned_to": (uuid.UUID | None, None),
        "created_from": (Moment | None, None),
        "created_to": (Moment | None, None),
        "updated_from": (Moment | None, None),
        "updated_to": (Moment | None, None),
        "deleted": (bool, Field(False, description="list deleted records (to restore them)")),
        "include_total": (bool, Field(False, description="also count the matches")),
        "tenant_id": (str | None, None),
    }
    for name in spec.filters:
        fields[name] = (FIELD_TYPES[name] | None, None)
    # extra="allow" only so `cf.<name>=value` custom-field filters get through; any other
    # unknown parameter is refused by the handler
    model: type[BaseModel] = create_model(
        f"{_title(spec)}ListQuery", __config__=ConfigDict(extra="allow"), **fields
    )
    return model


def custom_filters(query: BaseModel) -> dict[str, str]:
    """The `cf.<name>=value` custom-field filters of a list or export query (a model with
    extra="allow" for them); any other unknown parameter is refused."""
    extras = query.model_extra or {}
    unknown = sorted(k for k in extras if not k.startswith("cf.") or len(k) == 3)
    if unknown:
        raise Invalid(
            "Invalid query parameters: " + ", ".join(unknown),
            details=[{"field": k, "message": "unknown parameter"} for k in unknown],
        )
    custom = {k[3:]: v for k, v in extras.items()}
    if any(not isinstance(v, str) for v in custom.values()):
        raise Invalid("Invalid query parameters: a cf. filter takes one value")
    return custom


def list_selection(query: Any, filters: Sequence[str]) -> dict[str, Any]:
    """Which records a list or export query selects, as `ListParams` fields: search, the
    entity's `filters`, owner and assignee, date ranges and custom-field filters."""
    return {
        "q": query.q,
        "match": query.match,
        "equals": {f: getattr(query, f) for f in filters if getattr(query, f) is not None},
        "owner_id": query.owner_id,
        "assigned_to": query.assigned_to,
        "created_from": query.created_from,
        "created_to": query.created_to,
        "updated_from": query.updated_from,
        "updated_to": query.updated_to,
        "custom": custom_filters(query),
    }


class CreateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm_duplicate: bool = Field(
        False, description="create even though records with the same email or phone exist"
    )
    tenant_id: str | None = None


class GetQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_deleted: bool = Field(
        False, description="answer for a deleted record too (its deleted_at says when)"
    )
    tenant_id: str | None = None


class UpdateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm_duplicate: bool = Field(
        False,
        description="save even though other records have the e-mail or phone this change gives",
    )
    tenant_id: str | None = None


# A record's path segment.  The collection's own actions (export, import, bulk-update,
# bulk-delete) are not record ids: `PATCH /api/contacts/export` is then a 405 naming the
# methods that path has, not a 400 about an invalid id.
ITEM = "{record_id:(?!(?:export|import|bulk-update|bulk-delete)(?:/|$))[^/]+}"


def _record_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["record_id"])
    except ValueError:
        raise BadRequest("Invalid id: not a UUID", code="invalid_id") from None


def _mount(spec: EntitySpec) -> None:
    create_body = _body_model(spec, "Create")
    replace_body = _body_model(spec, "Replace")
    patch_body = _body_model(spec, "Patch")
    BODIES[spec.name] = {"create": create_body, "update": patch_body}
    list_query = _query_model(spec)
    base = f"/api/{spec.name}"
    item = f"{base}/{ITEM}"
    tags = (spec.name,)
    service_key = keys.RECORD_SERVICE
    filters = spec.filters

    @routes.get(base, summary=f"List {spec.name} (data scope applies)", tags=tags, query=list_query)
    async def list_records(request: web.Request, query: Any) -> web.Response:
        selection = list_selection(query, filters)
        tenant_id = await tenant_for(request, query.tenant_id)
        assert tenant_id is not None
        params = ListParams(
            limit=query.limit,
            offset=query.offset,
            cursor=query.cursor,
            sort=query.sort,
            deleted=query.deleted,
            include_total=query.include_total,
            **selection,
        )
        result = await request.app[service_key].list(
            principal(request), tenant_id, spec.name, params
        )
        pagination: dict[str, Any] = {
            "limit": result.page.limit,
            "offset": result.page.offset,
            "next_cursor": result.next_cursor,
        }
        if query.include_total:
            pagination["total"] = result.page.total
        return success(result.page.items, pagination=pagination)

    @routes.post(base, summary=f"Create {a_noun(spec.singular)}", tags=tags, body=create_body,
                 query=CreateQuery, status=201)  # fmt: skip
    async def create_record(request: web.Request, body: Any, query: CreateQuery) -> web.Response:
        tenant_id = await tenant_for(request, body.tenant_id)
        assert tenant_id is not None
        values = body.model_dump(exclude_unset=True, exclude={"tenant_id"})
        record = await request.app[service_key].create(
            principal(request), tenant_id, spec.name, values,
            confirm_duplicate=query.confirm_duplicate,
        )  # fmt: skip
        return success(record, status=201)

    @routes.get(item, summary=f"Get {a_noun(spec.singular)}", tags=tags, query=GetQuery)
    async def get_record(request: web.Request, query: GetQuery) -> web.Response:
        tenant_id = await tenant_for(request, query.tenant_id)
        assert tenant_id is not None
        record = await request.app[service_key].get(
            principal(request), tenant_id, spec.name, _record_id(request),
            include_deleted=query.include_deleted,
        )  # fmt: skip
        return success(record)

    async def _update(
        request: web.Request, body: Any, query: UpdateQuery, replace: bool
    ) -> web.Response:
        record_id = _record_id(request)
        tenant_id = await tenant_for(request, body.tenant_id)
        assert tenant_id is not None
        values = body.model_dump(exclude_unset=True, exclude={"tenant_id"})
        match = request.headers.get("If-Match")
        base_version = None
        if match:
            try:
                base_version = int(match.strip('W/"'))
            except ValueError:
                raise BadRequest("If-Match must be a record version number") from None
        record = await request.app[service_key].update(
            principal(request),
            tenant_id,
            spec.name,
            record_id,
            values,
            replace=replace,
            base_version=base_version,
            confirm_duplicate=query.confirm_duplicate,
        )
        return success(record)

    @routes.put(item, summary=f"Replace {a_noun(spec.singular)} (fields not given are cleared)",
                tags=tags, body=replace_body, query=UpdateQuery)  # fmt: skip
    async def replace_record(request: web.Request, body: Any, query: UpdateQuery) -> web.Response:
        return await _update(request, body, query, True)

    @routes.patch(item, summary=f"Change some fields of {a_noun(spec.singular)}", tags=tags,
                  body=patch_body, query=UpdateQuery)  # fmt: skip
    async def patch_record(request: web.Request, body: Any, query: UpdateQuery) -> web.Response:
        return await _update(request, body, query, False)

    @routes.delete(
        item, summary=f"Delete {a_noun(spec.singular)} (soft delete; restorable)", tags=tags
    )
    async def delete_record(request: web.Request) -> web.Response:
        tenant_id = await tenant_for(request)
        assert tenant_id is not None
        record = await request.app[service_key].delete(
            principal(request), tenant_id, spec.name, _record_id(request)
        )
        return success(record)

    @routes.post(f"{item}/restore", summary=f"Restore a deleted {spec.singular}", tags=tags,
                 extra={"action": "delete"})  # fmt: skip
    async def restore_record(request: web.Request) -> web.Response:
        tenant_id = await tenant_for(request)
        assert tenant_id is not None
        record = await request.app[service_key].restore(
            principal(request), tenant_id, spec.name, _record_id(request)
        )
        return success(record)


for _spec in SPECS.values():
    _mount(_spec)


def _overrides_model(spec: EntitySpec) -> type[BaseModel]:
    """Optional values of a record a lead conversion creates (unknown fields refused)."""
    fields: dict[str, Any] = {name: (FIELD_TYPES[name] | None, None) for name in spec.writable}
    model: type[BaseModel] = create_model(
        f"Converted{_title(spec)}",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        **fields,
    )
    return model


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duplicate_id: uuid.UUID = Field(description="the record merged into this one, then deleted")
    tenant_id: str | None = None


ConvertedAccount = _overrides_model(SPECS["accounts"])
ConvertedContact = _overrides_model(SPECS["contacts"])
ConvertedOpportunity = _overrides_model(SPECS["opportunities"])


class ConvertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: uuid.UUID | None = Field(None, description="link an existing account instead")
    account: ConvertedAccount | None = None  # type: ignore[valid-type]
    contact: ConvertedContact | None = None  # type: ignore[valid-type]
    opportunity: ConvertedOpportunity | None = Field(  # type: ignore[valid-type]
        None, description="omitted: no opportunity is created"
    )
    confirm_duplicate: bool = Field(
        False, description="convert even though contacts with the same email or phone exist"
    )
    tenant_id: str | None = None


def _given(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(exclude_unset=True)


def _mount_lifecycle(spec: EntitySpec) -> None:
    item = f"/api/{spec.name}/{ITEM}"

    @routes.post(f"{item}/merge", tags=(spec.name,), body=MergeBody, extra={"action": "update"},
                 summary=f"Merge a duplicate {spec.singular} into this one (the duplicate's "
                 "activities, notes and links move here; it is then deleted)")  # fmt: skip
    async def merge_records(request: web.Request, body: MergeBody) -> web.Response:
        record_id = _record_id(request)
        tenant_id = await tenant_for(request, body.tenant_id)
        assert tenant_id is not None
        merged = await request.app[keys.RECORD_SERVICE].merge(
            principal(request), tenant_id, spec.name, record_id, body.duplicate_id
        )
        return success(merged)


for _name in ("accounts", "contacts", "leads"):
    _mount_lifecycle(SPECS[_name])


@routes.post(f"/api/leads/{ITEM}/convert", tags=("leads",), body=ConvertBody,
             extra={"action": "update"}, summary="Convert a lead into a contact, an account and "
             "optionally an opportunity (all or nothing)")  # fmt: skip
async def convert_lead(request: web.Request, body: ConvertBody) -> web.Response:
    lead_id = _record_id(request)
    tenant_id = await tenant_for(request, body.tenant_id)
    assert tenant_id is not None
    result = await request.app[keys.RECORD_SERVICE].convert_lead(
        principal(request),
        tenant_id,
        lead_id,
        contact=_given(body.contact),
        account=_given(body.account),
        account_id=body.account_id,
        opportunity=_given(body.opportunity),
        confirm_duplicate=body.confirm_duplicate,
    )
    return success(result, status=201)
