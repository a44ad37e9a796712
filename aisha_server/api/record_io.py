"""Routes of /api/{entity}/import, /export, /bulk-update and /bulk-delete for the six CRM
record entities (mounted before `records`, whose `/api/{entity}/{record_id}` would match)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.records import FIELD_TYPES, Moment, _body_model, list_selection
from aisha_server.api.routing import Routes, parse_model, raise_invalid, read_limited
from aisha_server.envelope import success
from aisha_server.errors import BadRequest, PayloadTooLarge
from aisha_server.services.record_io import (
    MAX_BULK_IDS,
    ExportParams,
    ImportOptions,
    export_record_columns,
)
from aisha_server.services.records import SPECS, EntitySpec, ListParams

routes = Routes()

OPTION_NAMES = (
    "mapping", "mode", "match", "dry_run", "on_error", "formula_escape", "background", "tenant_id",
    "confirm_duplicates",
)  # fmt: skip


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mapping: str | None = Field(
        None, max_length=20_000, description="JSON object: CSV column -> field (or cf.<name>)"
    )
    mode: Literal["create", "update", "upsert"] = "create"
    match: Literal["email", "phone", "id"] | None = None
    dry_run: bool = False
    on_error: Literal["rollback", "skip"] = "rollback"
    formula_escape: bool = Field(
        True,
        description="remove the quote that guards a formula-like cell ('=..., '@..., '+x...),"
        " as exports write them",
    )
    background: bool = Field(
        False,
        description="run as a job: answer 202 with it at once and poll GET /api/import-jobs/<id>"
        " for its progress and report",
    )
    confirm_duplicates: bool = Field(
        False,
        description="create new rows whose e-mail or phone is already a record's (or an earlier"
        " row's) anyway; without it such rows are errors naming the record",
    )
    tenant_id: str | None = None


class BulkDeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(..., min_length=1, max_length=MAX_BULK_IDS)
    tenant_id: str | None = None


def _import_options(raw: dict[str, str]) -> tuple[ImportOptions, str | None, bool]:
    query = parse_model(ImportQuery, raw, what="Invalid import options")
    mapping: dict[str, str] | None = None
    if query.mapping:
        try:
            decoded = orjson.loads(query.mapping)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"mapping is not JSON: {exc}", code="bad_mapping") from None
        if not isinstance(decoded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
        ):
            raise BadRequest(
                'mapping must be a JSON object of column -> field names, e.g. {"E-mail": "email"}',
                code="bad_mapping",
            )
        mapping = decoded
    options = ImportOptions(
        mapping=mapping,
        mode=query.mode,
        match=query.match,
        dry_run=query.dry_run,
        on_error=query.on_error,
        formula_unescape=query.formula_escape,
        confirm_duplicates=query.confirm_duplicates,
    )
    return options, query.tenant_id, query.background


async def _read_import(request: web.Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The CSV (multipart field "file" or a raw text/csv body) and the import options (query
    string, overridden by form fields)."""
    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"Upload too large (limit {limit} bytes)", code="upload_too_large")
    options = {k: request.query[k] for k in request.query}
    ctype = request.content_type
    if ctype == "multipart/form-data" and "boundary=" in request.headers.get("Content-Type", ""):
        reader = await request.multipart()
        data: bytes | None = None
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" or (part.name is None and part.filename):
                data = await read_limited(part.read_chunk, limit)
            elif part.name in OPTION_NAMES:
                value = await read_limited(part.read_chunk, 20_000)
                options[part.name] = value.decode("utf-8", "replace")
            else:
                await part.release()
        if data is None:
            raise BadRequest('No CSV file in the form; send it in the field "file"', code="no_file")
        return data, options
    if ctype in ("text/csv", "text/plain", "application/csv", "application/octet-stream", ""):
        return await read_limited(request.content.read, limit), options
    raise BadRequest(
        f"Unsupported content type {ctype!r}: send the CSV as multipart/form-data"
        ' (field "file") or as text/csv',
        code="unsupported_media_type",
    )


def _export_query(spec: EntitySpec) -> type[BaseModel]:
    columns = ", ".join(export_record_columns(spec))
    fields: dict[str, Any] = {
        "q": (str | None, Field(None, max_length=200, description="as on the list")),
        "match": (Literal["prefix", "contains"], Field("prefix", description="as on the list")),
        "owner_id": (uuid.UUID | None, None),
        "assigned_to": (uuid.UUID | None, None),
        "created_from": (Moment | None, None),
        "created_to": (Moment | None, None),
        "updated_from": (Moment | None, None),
        "updated_to": (Moment | None, None),
        "sort": (
            str | None,
            Field(
                None,
                max_length=100,
                description=f"as on the list: one of {list(spec.sortable)}, '-' first for"
                " descending; records with no value come last. Default: by id",
            ),
        ),
        "columns": (
            str | None,
            Field(
                None,
                max_length=4_000,
                description=f"comma-separated, in the order wanted: {columns}, and cf.<name> for"
                " custom fields. Default: all of them, then every live custom field",
            ),
        ),
        "tenant_id": (str | None, None),
        "formula_escape": (
            bool,
            Field(
                True,
                description="prefix cells a spreadsheet would run as formulas with a quote"
                " (OWASP CSV injection); false for machine round trips",
            ),
        ),
    }
    for name in spec.filters:
        fields[name] = (FIELD_TYPES[name] | None, None)
    # extra="allow" only so `cf.<name>=value` custom-field filters get through, as on the list
    model: type[BaseModel] = create_model(
        f"{spec.singular.capitalize()}ExportQuery", __config__=ConfigDict(extra="allow"), **fields
    )
    return model


def _bulk_update_body(spec: EntitySpec) -> type[BaseModel]:
    model: type[BaseModel] = create_model(
        f"{spec.singular.capitalize()}BulkUpdate",
        __config__=ConfigDict(extra="forbid"),
        ids=(list[uuid.UUID], Field(..., min_length=1, max_length=MAX_BULK_IDS)),
        changes=(dict[str, Any], ...),
        confirm_duplicates=(
            bool,
            Field(
                False,
                description="give the e-mail or phone even where another record has it (or "
                "several of these records would share it)",
            ),
        ),
        tenant_id=(str | None, None),
    )
    return model


_MODELS: dict[tuple[str, str], type[BaseModel]] = {}


def model_for(spec: EntitySpec, kind: str) -> type[BaseModel]:
    """The records API's request model (`Create`/`Patch`) of an entity, built once."""
    key = (spec.name, kind)
    if key not in _MODELS:
        _MODELS[key] = _body_model(spec, kind)
    return _MODELS[key]


def _mount(spec: EntitySpec) -> None:
    base = f"/api/{spec.name}"
    tags = (spec.name,)
    patch_model = model_for(spec, "Patch")
    export_query = _export_query(spec)
    filters = spec.filters

    @routes.post(
        f"{base}/import",
        summary=f"Import {spec.name} from CSV",
        description=(
            'multipart/form-data (field "file" plus optional option fields) or a raw text/csv '
            "body with the options in the query string: mapping (JSON column -> field; "
            "default: columns named like fields, cf.<name> for custom fields), mode "
            "create|update|upsert, match email|phone|id, dry_run, on_error rollback|skip, "
            "formula_escape (default true: a quote that guards a formula-like cell, as exports "
            "write them, is removed), confirm_duplicates (create rows whose e-mail or phone is "
            "already a record's anyway; without it they are errors), background (answer 202 "
            "with a job at once and follow it at "
            "GET /api/import-jobs/<id>: progress, then the report or the error; DELETE "
            "cancels it and nothing is written). "
            "Tags and multiselect values are separated by ';'. Empty cells leave a field "
            "unset (update: unchanged). At most 200,000 rows and AISHA_MAX_UPLOAD_BYTES."
        ),
        tags=tags,
        multipart=True,
        extra={"action": "create"},
    )
    async def import_records(request: web.Request) -> web.Response:
        data, raw = await _read_import(request, request.app[keys.SETTINGS].AISHA_MAX_UPLOAD_BYTES)
        options, named, background = _import_options(raw)
        tenant_id = await tenant_for(request, named)
        assert tenant_id is not None
        service = request.app[keys.RECORD_IO_SERVICE]
        who = principal(request)
        if background:
            # refusals that need no reading of the file come now, not from the job
            await service.check_import(who, tenant_id, spec.name, options)
            job = request.app[keys.IMPORT_JOBS].start(
                who,
                tenant_id,
                spec.name,
                options.dry_run,
                lambda progress: service.import_csv(
                    who, tenant_id, spec.name, data, options, progress
                ),
            )
            return success(job.as_dict(), status=202)
        report = await service.import_csv(who, tenant_id, spec.name, data, options)
        status = 200 if options.dry_run else 201
        return success(report.as_dict(), status=status)

    @routes.get(
        f"{base}/export",
        summary=f"Export {spec.name} as CSV (data scope and list filters apply)",
        tags=tags,
        query=export_query,
        extra={"action": "export"},
    )
    async def export_records(request: web.Request, query: Any) -> web.StreamResponse:
        tenant_id = await tenant_for(request, query.tenant_id)
        assert tenant_id is not None
        service = request.app[keys.RECORD_IO_SERVICE]
        who = principal(request)
        columns = None
        if query.columns is not None:
            text = query.columns.strip()
            columns = tuple(c.strip() for c in text.split(",")) if text else ()
        params = ExportParams(
            selection=ListParams(**list_selection(query, filters)),
            sort=query.sort,
            columns=columns,
            formula_escape=query.formula_escape,
        )
        plan = await service.export_plan(who, tenant_id, spec.name, params)
        chunks = service.export_batches(plan)
        first = await anext(chunks)  # filter errors surface before the 200 is sent
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{spec.name}.csv"',
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    @routes.post(
        f"{base}/bulk-update",
        summary=f"Change the same fields of up to {MAX_BULK_IDS} {spec.name}",
        description="Each id gets the rules of a PATCH; all of them run in one transaction and "
        "each id succeeds or fails on its own (per-record results).",
        tags=tags,
        body=_bulk_update_body(spec),
        extra={"action": "update"},
    )
    async def bulk_update(request: web.Request, body: Any) -> web.Response:
        try:
            changes = patch_model.model_validate(body.changes).model_dump(
                exclude_unset=True, exclude={"tenant_id"}
            )
        except ValidationError as exc:
            raise_invalid(exc)
        if not changes:
            raise BadRequest("changes: name at least one field", code="no_changes")
        tenant_id = await tenant_for(request, body.tenant_id)
        assert tenant_id is not None
        results = await request.app[keys.RECORD_IO_SERVICE].bulk_update(
            principal(request), tenant_id, spec.name, body.ids, changes,
            confirm_duplicates=body.confirm_duplicates,
        )  # fmt: skip
        return success(_summary(results, "updated"))

    @routes.post(
        f"{base}/bulk-delete",
        summary=f"Soft-delete up to {MAX_BULK_IDS} {spec.name}",
        description="Each id gets the rules of a DELETE, in one transaction (per-record results).",
        tags=tags,
        body=BulkDeleteBody,
        extra={"action": "delete"},
    )
    async def bulk_delete(request: web.Request, body: Any) -> web.Response:
        tenant_id = await tenant_for(request, body.tenant_id)
        assert tenant_id is not None
        results = await request.app[keys.RECORD_IO_SERVICE].bulk_delete(
            principal(request), tenant_id, spec.name, body.ids
        )
        return success(_summary(results, "deleted"))


def _summary(results: list[Any], done: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {
        "results": [r.as_dict() for r in results],
        "totals": {"requested": len(results), done: counts.get(done, 0), **counts},
    }


for _spec in SPECS.values():
    _mount(_spec)


def _job_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["job_id"])
    except ValueError:
        raise BadRequest("Invalid id: not a UUID", code="invalid_id") from None


@routes.get(
    "/api/import-jobs/{job_id}",
    summary="A background import: its progress, then its report or error (its starter only)",
    tags=("imports",),
    errors=(404,),
)
async def import_job(request: web.Request) -> web.Response:
    job = request.app[keys.IMPORT_JOBS].get(principal(request), _job_id(request))
    return success(job.as_dict())


@routes.delete(
    "/api/import-jobs/{job_id}",
    summary="Cancel a running background import: nothing of it is written",
    tags=("imports",),
    errors=(404,),
)
async def cancel_import_job(request: web.Request) -> web.Response:
    job = await request.app[keys.IMPORT_JOBS].cancel(principal(request), _job_id(request))
    return success(job.as_dict())
