"""Routes of /api/users (guide 2.5, 3.1, Appendix B "User Management")."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal, tenant_for
from aisha_server.api.routing import (
    ENDPOINT_ATTR,
    Handler,
    Routes,
    endpoint_of,
    parse_model,
    read_json,
    read_limited,
)
from aisha_server.auth.principal import Principal
from aisha_server.envelope import success
from aisha_server.errors import (
    BadRequest,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthorized,
)
from aisha_server.services.users import (
    ImportReport,
    NewUser,
    UserChanges,
    UserFilter,
    UserRecord,
)

routes = Routes()

TAGS = ("users",)


# -- contract ---------------------------------------------------------------------------------


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    first_name: str
    last_name: str
    role: str
    custom_roles: list[str]
    status: str = Field(description="active, invited (no password yet) or disabled")
    has_password: bool
    last_login_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class UserListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)
    q: str | None = Field(None, max_length=200, description="Email or name contains")
    role: str | None = Field(None, max_length=50)
    status: str | None = Field(None, max_length=20)
    tenant_id: str | None = Field(None, description="Superadmin: only this tenant's users")


class CreateUserBody(BaseModel):
    """Guide 3.1 Method 2; give exactly one of `password` and `send_invitation: true`."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    first_name: str = Field("", max_length=100)
    last_name: str = Field("", max_length=100)
    role: str = Field(max_length=50)
    tenant_id: str | None = Field(None, description="Required unless role is superadmin")
    send_invitation: bool = False
    password: str | None = Field(None, max_length=256, description="Initial password")
    custom_roles: list[str] = Field(default_factory=list)


class UpdateUserBody(BaseModel):
    """Admins change anything but the tenant; users change their own name and password."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    email: str | None = Field(None, max_length=320)
    role: str | None = Field(None, max_length=50)
    status: str | None = Field(None, description="active or disabled")
    custom_roles: list[str] | None = None
    tenant_id: str | None = Field(None, description="Must be the user's current tenant")
    password: str | None = Field(None, max_length=256)
    current_password: str | None = Field(
        None, max_length=256, description="Required when changing your own password"
    )


class InvitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    expires_at: datetime


class ImportRowOut(BaseModel):
    row: int
    email: str
    status: str
    id: uuid.UUID | None = None
    errors: list[str] = Field(default_factory=list)


class ImportOut(BaseModel):
    created: int
    rows: list[ImportRowOut]


class HeartbeatOut(BaseModel):
    last_seen_at: datetime


class DeletedOut(BaseModel):
    id: uuid.UUID
    deleted: bool


def _user(record: UserRecord) -> UserOut:
    return UserOut.model_validate(record)


def _report(report: ImportReport) -> ImportOut:
    return ImportOut(
        created=report.created,
        rows=[ImportRowOut.model_validate(r.as_dict()) for r in report.rows],
    )


def _user_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["user_id"])
    except ValueError:
        raise NotFound("User not found") from None


def _documents_body(model: type[BaseModel]) -> Callable[[Handler], Handler]:
    """For a handler that parses its body itself (after authenticating): puts the model back
    into the route's contract, so the OpenAPI document still describes the body."""

    def mark(handler: Handler) -> Handler:
        endpoint = endpoint_of(handler)
        assert endpoint is not None
        setattr(handler, ENDPOINT_ATTR, dataclasses.replace(endpoint, body=model))
        return handler

    return mark


# -- handlers ---------------------------------------------------------------------------------


@routes.get(
    "/api/users",
    summary="List users (admins: their tenant; superadmin: all or one tenant)",
    tags=TAGS,
    query=UserListQuery,
    response=list[UserOut],
    description="`data` is the page; `pagination` gives limit, offset and the total count.",
)
async def list_users(request: web.Request, query: UserListQuery) -> web.Response:
    tenant = await tenant_for(request, None, required=False)
    filters = UserFilter(
        q=query.q or None,
        role=query.role or None,
        status=query.status or None,
        limit=query.limit,
        offset=query.offset,
    )
    page = await request.app[keys.USER_SERVICE].list_users(principal(request), tenant, filters)
    return success(
        [_user(u) for u in page.items],
        pagination=page.pagination(),
    )


async def _caller_or_bootstrap(request: web.Request) -> Principal | None:
    """The authenticated caller, or None when the request carries no credentials at all."""
    header = request.headers.get("Authorization", "")
    api_key = request.headers.get("X-API-Key", "").strip()
    if not header and not api_key:
        return None
    gate = request.app[keys.AUTH_GATE]
    if header[:7].lower() == "bearer " and header[7:].strip():
        who = await gate.principal_for_token(header[7:].strip())
    elif api_key:
        who = await gate.principal_for_api_key(api_key)
        if not who.key_allows("create", "users"):
            raise PermissionDenied("API key lacks permission create:users", code="api_key_scope")
    else:
        raise Unauthorized("Authentication required", code="auth_required")
    request[keys.PRINCIPAL] = who
    named = request.headers.get("X-Tenant-ID") or request.query.get("tenant_id")
    if named:  # what the tenant middleware does for authenticated routes
        resolved = await tenant_for(request, named)
        if resolved is not None:
            request[keys.REQUESTED_TENANT] = resolved
    return who


@_documents_body(CreateUserBody)
@routes.post(
    "/api/users",
    summary="Create a user (with a password or an invitation)",
    description=(
        "Admins create users in their tenant, a superadmin anywhere.  Give exactly one of "
        "`password` (guide 2.5 Option 2) and `send_invitation: true` (guide 3.1: status "
        "`invited`, invitation mail valid 7 days).\n\n"
        "First-run bootstrap: while the users table is empty this endpoint also accepts a "
        "request without credentials, and then only creates a superadmin with a password "
        "(guide 2.5 Option 2).  Once any user exists an unauthenticated request gets 401."
    ),
    tags=TAGS,
    auth=False,
    response=UserOut,
    status=201,
    errors=(401, 403, 409),
)
async def create_user(request: web.Request) -> web.Response:
    """Create a user.

    The route is declared `auth=False` only for the first-run bootstrap of guide 2.5
    Option 2: with no users in the database, an unauthenticated POST may create the first
    superadmin (the service re-checks emptiness inside the inserting transaction, so two racing
    bootstraps cannot both win).  Whenever credentials are present they are verified here
    exactly as the auth middleware would; without credentials and with any user present the
    answer is 401.  The body is parsed after that, so an anonymous caller learns nothing.
    """
    who = await _caller_or_bootstrap(request)
    service = request.app[keys.USER_SERVICE]
    if who is None and not await service.bootstrap_open():
        raise Unauthorized("Authentication required", code="auth_required")
    body: CreateUserBody = parse_model(CreateUserBody, await read_json(request))
    tenant = None if who is None else await tenant_for(request, body.tenant_id, required=False)
    if who is None and body.tenant_id:
        raise Invalid("The first user is a superadmin and has no tenant; omit tenant_id")
    new = NewUser(
        email=body.email,
        role=body.role,
        first_name=body.first_name,
        last_name=body.last_name,
        tenant_id=tenant,
        password=body.password,
        send_invitation=body.send_invitation,
        custom_roles=body.custom_roles,
    )
    record = await service.create_user(who, new)
    return success(_user(record), status=201)


@routes.post(
    "/api/users/heartbeat",
    summary="Update presence (last_seen_at = now)",
    tags=TAGS,
    response=HeartbeatOut,
    extra={"action": "read"},
)
async def heartbeat(request: web.Request) -> web.Response:
    seen = await request.app[keys.USER_SERVICE].heartbeat(principal(request))
    return success(HeartbeatOut(last_seen_at=seen))


@routes.post(
    "/api/users/sync-from-auth",
    summary="Sync from auth: the caller's own user record, fresh from the database",
    description=(
        "In AiSHA the users table is the authentication store (there is no separate auth "
        "provider to copy from), so syncing means re-reading the caller's own record; "
        "clients call it after login to refresh role, status and names."
    ),
    tags=TAGS,
    response=UserOut,
    extra={"action": "read"},
)
async def sync_from_auth(request: web.Request) -> web.Response:
    record = await request.app[keys.USER_SERVICE].sync_from_auth(principal(request))
    return success(_user(record))


async def _read_upload(request: web.Request, limit: int) -> bytes:
    """The CSV from a multipart field "file" or a raw text/csv body, at most `limit` bytes."""
    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"Upload too large (limit {limit} bytes)", code="upload_too_large")
    ctype = request.content_type
    boundary = "boundary=" in request.headers.get("Content-Type", "")
    if ctype == "multipart/form-data" and boundary:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" or (part.name is None and part.filename):
                return await read_limited(part.read_chunk, limit)
            await part.release()
        raise BadRequest('No CSV file in the form; send it in the field "file"', code="no_file")
    if ctype in (
        "multipart/form-data",
        "text/csv",
        "text/plain",
        "application/csv",
        "application/octet-stream",
        "",
    ):
        # Invoke-RestMethod -InFile sends the raw file even with a multipart content type
        return await read_limited(request.content.read, limit)
    raise BadRequest(
        f"Unsupported content type {ctype!r}: send the CSV as multipart/form-data"
        ' (field "file") or as text/csv',
        code="unsupported_media_type",
    )


@routes.post(
    "/api/users/bulk-import",
    summary="Import users from CSV (all rows or none)",
    description=(
        "CSV columns `email,first_name,last_name,role,tenant_id` (tenant_id blank: the "
        "admin's own tenant, or the tenant named by X-Tenant-ID).  Sent as multipart/form-data "
        "field `file` or as a raw text/csv body.  Every row is validated first; if any row is "
        "bad nothing is stored and the 422 `details` list each row's errors.  Otherwise every "
        "user is created in one transaction with status `invited` and mailed an invitation.  "
        "At most 5,000 rows and AISHA_MAX_UPLOAD_BYTES."
    ),
    tags=TAGS,
    multipart=True,
    response=ImportOut,
    status=201,
    extra={"action": "create"},
)
async def bulk_import(request: web.Request) -> web.Response:
    who = principal(request)
    service = request.app[keys.USER_SERVICE]
    service.require_admin(who, "Importing users")
    data = await _read_upload(request, request.app[keys.SETTINGS].AISHA_MAX_UPLOAD_BYTES)
    tenant = await tenant_for(request, None, required=False)
    report = await service.bulk_import(who, tenant, data)
    return success(_report(report), status=201)


@routes.get(
    "/api/users/{user_id}",
    summary="Get a user (admins: their tenant; anyone: themselves)",
    tags=TAGS,
    response=UserOut,
)
async def get_user(request: web.Request) -> web.Response:
    record = await request.app[keys.USER_SERVICE].get_user(principal(request), _user_id(request))
    return success(_user(record))


@routes.put(
    "/api/users/{user_id}",
    summary="Update a user",
    description=(
        "Admins: names, email, role, status (`disabled` revokes every session), custom_roles "
        "and password.  Anyone: their own first/last name, and their password with "
        "`current_password`."
    ),
    tags=TAGS,
    body=UpdateUserBody,
    response=UserOut,
    errors=(409,),
)
async def update_user(request: web.Request, body: UpdateUserBody) -> web.Response:
    tenant = None
    if body.tenant_id is not None:
        tenant = await tenant_for(request, body.tenant_id)
    changes = UserChanges(
        first_name=body.first_name,
        last_name=body.last_name,
        email=body.email,
        role=body.role,
        status=body.status,
        custom_roles=body.custom_roles,
        tenant_id=tenant,
        password=body.password,
        current_password=body.current_password,
    )
    record = await request.app[keys.USER_SERVICE].update_user(
        principal(request), _user_id(request), changes
    )
    return success(_user(record))


@routes.delete(
    "/api/users/{user_id}",
    summary="Delete a user (soft delete; sessions revoked)",
    tags=TAGS,
    response=DeletedOut,
)
async def delete_user(request: web.Request) -> web.Response:
    record = await request.app[keys.USER_SERVICE].delete_user(principal(request), _user_id(request))
    return success(DeletedOut(id=record.id, deleted=True))


@routes.post(
    "/api/users/{user_id}/invite",
    summary="Send the invitation again (earlier links stop working)",
    tags=TAGS,
    response=InvitationOut,
    errors=(409,),
)
async def resend_invitation(request: web.Request) -> web.Response:
    record = await request.app[keys.USER_SERVICE].resend_invitation(
        principal(request), _user_id(request)
    )
    return success(InvitationOut.model_validate(record))
