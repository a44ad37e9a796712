"""Routes of /api/auth (guide Appendix B "Authentication Endpoints", 3.4)."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aisha_server import keys
from aisha_server.api.context import principal
from aisha_server.api.routing import Routes, parse_model, read_json
from aisha_server.envelope import success
from aisha_server.services.auth import RESET_REQUESTED, CurrentPrincipal, IssuedTokens

routes = Routes()

_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")


def _email(value: str) -> str:
    # Deliberately lenient (no deliverability or TLD rules): it only has to find an account,
    # and accounts on e.g. `.local` directory domains must still be able to sign in.
    value = value.strip().lower()
    if not _EMAIL_SHAPE.match(value):
        raise ValueError("is not a valid email address")
    return value


EmailText = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]
Secret = Annotated[str, Field(min_length=1, max_length=512)]
# long enough for any passphrase, short enough that argon2 never chews on megabytes
Password = Annotated[str, Field(min_length=1, max_length=1024)]
Name = Annotated[str, Field(max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LoginBody(_Body):
    email: EmailText
    password: Password


class RefreshBody(_Body):
    refresh_token: Secret


class LogoutBody(_Body):
    all_sessions: bool = False


class ForgotPasswordBody(_Body):
    email: EmailText


class ResetPasswordBody(_Body):
    token: Secret
    password: Password


class AcceptInvitationBody(_Body):
    token: Secret
    password: Password
    first_name: Name | None = None
    last_name: Name | None = None


def _client(request: web.Request) -> tuple[str | None, str | None]:
    return request.remote, request.headers.get("User-Agent")


def _logged_in(issued: IssuedTokens) -> web.Response:
    # The guide's PowerShell reads `$response.token`, so the access token is also top level.
    return success(issued, token=issued.token)


@routes.post(
    "/api/auth/login",
    summary="User login: access token, refresh token and the user",
    tags=("auth",),
    auth=False,
    body=LoginBody,
    response=IssuedTokens,
    errors=(401, 403, 422, 429),
)
async def login(request: web.Request, body: LoginBody) -> web.Response:
    ip, agent = _client(request)
    issued = await request.app[keys.AUTH_SERVICE].login(
        body.email, body.password, ip_address=ip, user_agent=agent
    )
    return _logged_in(issued)


@routes.post(
    "/api/auth/refresh",
    summary="Exchange a refresh token for a new access token and a new refresh token",
    description="Refresh tokens rotate: each works once.  Presenting a spent one revokes the "
    "whole session (code `refresh_token_reused`).",
    tags=("auth",),
    auth=False,
    body=RefreshBody,
    response=IssuedTokens,
    errors=(401, 422),
)
async def refresh(request: web.Request, body: RefreshBody) -> web.Response:
    issued = await request.app[keys.AUTH_SERVICE].refresh(
        body.refresh_token, ip_address=request.remote
    )
    return _logged_in(issued)


@routes.post(
    "/api/auth/logout",
    summary="User logout: revoke this session, or every session with all_sessions=true",
    description='Optional JSON body `{"all_sessions": true}` ends every session of the user. '
    "API keys have no session to end (400).",
    tags=("auth",),
    errors=(400, 401),
)
async def logout(request: web.Request) -> web.Response:
    options = LogoutBody()
    if request.body_exists:
        options = parse_model(LogoutBody, await read_json(request))
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    revoked = await request.app[keys.AUTH_SERVICE].logout(
        principal(request), all_sessions=options.all_sessions, access_token=token
    )
    return success({"revoked_sessions": revoked}, message="Logged out")


@routes.post(
    "/api/auth/forgot-password",
    summary="Request a password reset link by email",
    description="Always answers the same, whether or not the email belongs to an account.",
    tags=("auth",),
    auth=False,
    body=ForgotPasswordBody,
    errors=(422, 429),
)
async def forgot_password(request: web.Request, body: ForgotPasswordBody) -> web.Response:
    await request.app[keys.AUTH_SERVICE].request_password_reset(
        body.email, ip_address=request.remote
    )
    return success(None, message=RESET_REQUESTED)


@routes.post(
    "/api/auth/reset-password",
    summary="Complete a password reset with the emailed token",
    tags=("auth",),
    auth=False,
    body=ResetPasswordBody,
    errors=(400, 422, 429),
)
async def reset_password(request: web.Request, body: ResetPasswordBody) -> web.Response:
    await request.app[keys.AUTH_SERVICE].reset_password(
        body.token, body.password, ip_address=request.remote
    )
    return success(None, message="Password has been reset. Please log in with the new password.")


@routes.post(
    "/api/auth/accept-invitation",
    summary="Accept an invitation: set the password, activate the account, log in",
    tags=("auth",),
    auth=False,
    body=AcceptInvitationBody,
    response=IssuedTokens,
    errors=(400, 403, 422, 429),
)
async def accept_invitation(request: web.Request, body: AcceptInvitationBody) -> web.Response:
    ip, agent = _client(request)
    issued = await request.app[keys.AUTH_SERVICE].accept_invitation(
        body.token,
        body.password,
        first_name=body.first_name.strip() if body.first_name else None,
        last_name=body.last_name.strip() if body.last_name else None,
        ip_address=ip,
        user_agent=agent,
    )
    return _logged_in(issued)


@routes.get(
    "/api/auth/me",
    summary="The current user, tenant, role and permissions",
    tags=("auth",),
    response=CurrentPrincipal,
    errors=(401,),
    extra={"any_api_key": True},  # any valid key may ask what it may do
)
async def me(request: web.Request) -> web.Response:
    return success(await request.app[keys.AUTH_SERVICE].me(principal(request)))
