"""First run of an empty server (Qt-free): create the first superadmin and tenant.

While a server has no user at all, `POST /api/users` without credentials creates the first
superadmin (docs/api.md "First run").  `setup_open()` asks whether that is still the case
without creating anything: an anonymous request with an empty body is refused with 401 once
any user exists, and fails validation (400/422) while none does.  `FirstRun.complete()`
creates the superadmin, signs in and creates the first tenant; it can be repeated after a
failure (a tenant name the server refused, say) without creating the user twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from email_validator import EmailNotValidError, validate_email

from aisha_desktop.client import ApiClient, ClientError, OfflineError, Session
from aisha_desktop.client.errors import error_from_response

MIN_PASSWORD = 8
MAX_PASSWORD = 256
USERS = "/api/users"
TENANTS = "/api/tenants"


def email_problem(value: str) -> str | None:
    """Why `value` is not an email the server accepts (same library, same options)."""
    if not value.strip():
        return "Enter an email address"
    try:
        validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def password_problem(password: str) -> str | None:
    """The server's password rule, checked before sending."""
    if len(password) < MIN_PASSWORD:
        return f"At least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"At most {MAX_PASSWORD} characters"
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        return "Mix at least three of: lower case, upper case, digits, symbols"
    return None


@dataclass(frozen=True, slots=True)
class FirstRunForm:
    tenant_name: str
    first_name: str
    last_name: str
    email: str
    password: str
    password_again: str

    def problems(self) -> dict[str, str]:
        """`{field: message}` for every field that would be refused; empty when all fit."""
        found: dict[str, str] = {}
        name = self.tenant_name.strip()
        if not name:
            found["tenant_name"] = "Enter the organisation's name"
        elif len(name) > 200:
            found["tenant_name"] = "At most 200 characters"
        if len(self.first_name) > 100:
            found["first_name"] = "At most 100 characters"
        if len(self.last_name) > 100:
            found["last_name"] = "At most 100 characters"
        if (problem := email_problem(self.email)) is not None:
            found["email"] = problem
        if (problem := password_problem(self.password)) is not None:
            found["password"] = problem
        elif self.password != self.password_again:
            found["password_again"] = "The passwords do not match"
        return found


async def setup_open(base_url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> bool:
    """True while the server has no user (the first-run wizard is due)."""
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=15) as http:
        try:
            response = await http.post(USERS, content=b"{}", headers=_JSON)
        except httpx.HTTPError as exc:
            raise OfflineError(f"The server at {base_url} cannot be reached: {exc}") from exc
    if response.status_code in (400, 422):
        return True
    if response.status_code == 401:
        return False
    raise _error(response)


_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def _error(response: httpx.Response) -> ClientError:
    try:
        body: Any = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    return error_from_response(
        response.status_code, response.headers, body, reason=response.reason_phrase
    )


class FirstRun:
    """Sets up an empty server through `api` (not yet signed in)."""

    def __init__(
        self, api: ApiClient, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.api = api
        self._transport = transport
        self.user_created = False
        self.session: Session | None = None
        self.tenant: dict[str, Any] | None = None

    async def complete(self, form: FirstRunForm) -> dict[str, Any]:
        """Create the superadmin (once), sign in, create the tenant; returns the tenant.
        Raises `ValueError` with the form's problems, or the server's `ClientError`."""
        problems = form.problems()
        if problems:
            raise ValueError(problems)
        if not self.user_created:
            await self._create_superadmin(form)
            self.user_created = True
        if self.session is None:
            self.session = await self.api.login(form.email.strip(), form.password)
        if self.tenant is None:
            data = await self.api.request("POST", TENANTS, json={"name": form.tenant_name.strip()})
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                raise ClientError("The server's answer holds no tenant")
            self.tenant = data
        return self.tenant

    async def _create_superadmin(self, form: FirstRunForm) -> None:
        body = {
            "email": form.email.strip(),
            "password": form.password,
            "role": "superadmin",
            "first_name": form.first_name.strip(),
            "last_name": form.last_name.strip(),
        }
        async with httpx.AsyncClient(
            base_url=self.api.base_url, transport=self._transport, timeout=30
        ) as http:
            try:
                response = await http.post(USERS, content=orjson.dumps(body), headers=_JSON)
            except httpx.HTTPError as exc:
                raise OfflineError(
                    f"The server at {self.api.base_url} cannot be reached: {exc}"
                ) from exc
        if response.status_code == 401:
            raise error_from_response(
                401,
                response.headers,
                {
                    "message": "This server is set up already: sign in instead",
                    "code": "setup_closed",
                },
            )
        if response.status_code >= 400:
            raise _error(response)
