"""Who is calling and for which tenant: the two questions every handler asks first."""

from __future__ import annotations

import uuid

from aiohttp import web

from aisha_server import keys
from aisha_server.auth.principal import Principal
from aisha_server.errors import TENANT_ACCESS_DENIED, BadRequest, DomainError, PermissionDenied


def principal(request: web.Request) -> Principal:
    return request[keys.PRINCIPAL]


async def tenant_for(
    request: web.Request, named: str | uuid.UUID | None = None, *, required: bool = True
) -> uuid.UUID | None:
    """The tenant a request acts on.

    A tenant user's tenant comes from their token; naming another one (query, header or
    body) is the guide's 403 "Access denied: Invalid tenant".  A superadmin names one with
    `tenant_id` (query or body) or `X-Tenant-ID`; slugs resolve to UUIDs here.
    """
    who = principal(request)
    from_edge = request.get(keys.REQUESTED_TENANT)
    resolved: uuid.UUID | None = from_edge
    if named is not None and str(named).strip():
        text = str(named).strip()
        directory = request.app[keys.TENANT_DIRECTORY]
        if who.is_superadmin:
            resolved_body = await directory.resolve(text)
        elif who.tenant_id is not None and text.lower() == str(who.tenant_id):
            resolved_body = who.tenant_id
        else:
            try:
                resolved_body = await directory.resolve(text)
            except DomainError:
                raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied") from None
            if resolved_body != who.tenant_id:
                raise PermissionDenied(TENANT_ACCESS_DENIED, code="tenant_access_denied")
        if resolved is not None and resolved != resolved_body:
            raise BadRequest("tenant_id in the body and in the query/header disagree")
        resolved = resolved_body
    if resolved is None and not who.is_superadmin:
        resolved = who.tenant_id
    if resolved is None and required:
        raise BadRequest(
            "tenant_id is required (query, body or X-Tenant-ID header)", code="tenant_required"
        )
    return resolved
