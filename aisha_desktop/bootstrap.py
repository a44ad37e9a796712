"""The desktop's composition root: builds the object graph once and hands it down.

settings -> bundled `LocalServer` or the remote URL -> `ApiClient` (tokens in the keyring
when "remember me") -> first run (empty bundled server) or sign-in -> tenant -> `Replica` +
`SyncEngine` -> `AppContext` for the main window.  Everything the user is asked goes through
`Prompts` (the dialogs, or a script for `--self-test`), so this module holds no Qt.

Session expiry: the client calls `on_session_expired` when the server ends the login; the
sign-in prompt opens again (once, however many requests failed) while the replica keeps every
unsaved edit and the engine waits `signed_out`; after the new sign-in the engine is kicked and
pushes them.  Signing in as somebody else there is refused: the replica is that user's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Protocol

from aisha_desktop.client import (
    ApiClient,
    ClientError,
    CurrentUser,
    KeyringTokenStore,
    MemoryTokenStore,
    Session,
    SessionExpired,
    Tokens,
)
from aisha_desktop.client.errors import AuthError
from aisha_desktop.context import AppContext
from aisha_desktop.first_run import FirstRun, email_problem, setup_open
from aisha_desktop.local_server import LocalServer
from aisha_desktop.replica import Replica
from aisha_desktop.settings import SETTINGS_FILE, DesktopSettings, user_data_dir
from aisha_desktop.signin import LoginForm, LoginRequest
from aisha_desktop.sync import SyncEngine

log = logging.getLogger("aisha.desktop")


class RememberingTokenStore:
    """Tokens in memory, and in the OS keyring too while `remember` is on (and a keyring
    exists).  Turning `remember` off forgets what the keyring holds at the next change."""

    def __init__(self, keyring: KeyringTokenStore, *, remember: bool) -> None:
        self.keyring = keyring
        self.remember = remember
        self._memory = MemoryTokenStore()

    @property
    def keyring_available(self) -> bool:
        return self.keyring.available

    @property
    def keyring_reason(self) -> str | None:
        return self.keyring.reason

    async def get(self) -> Tokens | None:
        tokens = await self._memory.get()
        if tokens is None and self.remember:
            tokens = await self.keyring.get()
        return tokens

    async def set(self, tokens: Tokens) -> None:
        await self._memory.set(tokens)
        if self.remember:
            await self.keyring.set(tokens)
        else:
            await self.keyring.clear()

    async def clear(self) -> None:
        await self._memory.clear()
        await self.keyring.clear()


class Prompts(Protocol):
    """The user's side of start-up (dialogs; a script in the self-test)."""

    async def first_run(self, setup: FirstRun, server_url: str) -> bool:
        """Run the first-run wizard on `setup`; False when the user gave up."""
        ...

    async def login(self, request: LoginRequest) -> Session | None:
        """Ask for a sign-in until `request.attempt` succeeds; None when the user gave up."""
        ...

    def status(self, text: str) -> None:
        """Say what start-up is doing now."""


class Cancelled(Exception):
    """The user closed a start-up dialog: the console quits without an error."""


class StartupError(Exception):
    """Start-up failed for a reason to show the user."""


class TenantSwitchFailed(StartupError):
    """The new tenant's replica could not be opened; `context` is the previous tenant's,
    opened again, to go on with."""

    def __init__(self, message: str, context: AppContext) -> None:
        super().__init__(message)
        self.context = context


class Bootstrap:
    """Builds one `AppContext` in `data_dir` (settings, bundled server, replicas)."""

    def __init__(
        self,
        data_dir: Path,
        prompts: Prompts,
        *,
        keyring_backend: Any = None,
        poll_interval: float = 30.0,
        local: LocalServer | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.prompts = prompts
        self.settings_path = self.data_dir / SETTINGS_FILE
        self.settings = DesktopSettings.load(self.settings_path)
        # the bundled server, when `main` already began starting it (`LocalServer.prestart`)
        self.local: LocalServer | None = local
        self.api: ApiClient | None = None
        self.store: RememberingTokenStore | None = None
        self.context: AppContext | None = None
        self._keyring_backend = keyring_backend
        self._poll_interval = poll_interval
        self._relogin: asyncio.Task[None] | None = None

    # -- the client --------------------------------------------------------------------------
    def _client(self, url: str) -> ApiClient:
        self.store = RememberingTokenStore(
            KeyringTokenStore(url, backend=self._keyring_backend),
            remember=self.settings.remember_me,
        )
        return ApiClient(
            url,
            token_store=self.store,
            on_session_expired=self._session_expired,
        )

    async def _use_url(self, url: str) -> ApiClient:
        if self.api is not None and self.api.base_url == url.rstrip("/"):
            return self.api
        if self.api is not None:
            await self.api.aclose()
        self.api = None
        try:
            self.api = self._client(url)
        except ValueError as exc:
            raise ValueError({"url": str(exc)}) from None
        return self.api

    # -- start-up ----------------------------------------------------------------------------
    async def run(self) -> AppContext:
        """Start up to a signed-in context; raises `Cancelled` or `StartupError`."""
        try:
            return await self._run()
        except BaseException:
            await self.aclose()
            raise

    async def _run(self) -> AppContext:
        bundled = self.settings.server_mode == "bundled"
        url = self.settings.server_url
        if bundled:
            self.prompts.status("Starting the local server...")
            if self.local is None:
                self.local = LocalServer(self.data_dir / "server")
            url = await self.local.start()
        api = await self._use_url(url) if url else None
        if bundled and api is not None and await setup_open(api.base_url):
            self.prompts.status("Setting up the first organisation...")
            setup = FirstRun(api)
            if not await self.prompts.first_run(setup, api.base_url):
                raise Cancelled()
            assert setup.tenant is not None
            self.settings = self.settings.replace(tenant_id=str(setup.tenant["id"]))
            self._save()
        elif api is None or not await self._restored(api):
            session = await self.prompts.login(self._login_request(editable=not bundled))
            if session is None:
                raise Cancelled()
        api = self.api
        assert api is not None
        self.prompts.status("Opening your data...")
        me = await api.me()
        tenant_id = await self._tenant(api, me)
        return await self._open_tenant(api, me, tenant_id, bundled=bundled)

    async def _open_tenant(
        self, api: ApiClient, me: CurrentUser, tenant_id: str, *, bundled: bool
    ) -> AppContext:
        """The tenant's replica and a started sync engine on it, in a new context."""
        user_id = me.user.id if me.user is not None else ""
        replica = await asyncio.to_thread(
            Replica.open, self.data_dir / "replicas", api.base_url, tenant_id, user_id
        )
        engine = SyncEngine(api, replica, poll_interval=self._poll_interval)
        context = AppContext(
            settings=self.settings,
            settings_path=self.settings_path,
            api=api,
            replica=replica,
            engine=engine,
            me=me,
            tenant_id=tenant_id,
            server_url=api.base_url,
            bundled=bundled,
            switch=self.switch_tenant,
        )
        context.closers.append(self.aclose)  # client, then the server
        context.closers.append(lambda: asyncio.to_thread(replica.close))
        context.closers.append(lambda: engine.stop(grace=5))
        self.context = context
        await engine.start()
        return context

    async def switch_tenant(self, tenant_id: str) -> AppContext:
        """A superadmin's tenant switch: the current replica and engine close (edits not yet
        sent stay in that replica's outbox for the next visit) and `tenant_id`'s open, on the
        same sign-in and server.  The tenant is checked first, so a refused switch (403, 404,
        offline: `ClientError`) leaves the current context as it was; should opening the new
        replica fail, the previous tenant's is opened again (`TenantSwitchFailed.context`)."""
        old = self.context
        if old is None:
            raise StartupError("Nothing to switch from: the console is not open")
        if old.me.role != "superadmin":
            raise StartupError("Only a superadmin works in more than one tenant")
        api = old.api
        await api.request("GET", f"/api/tenants/{tenant_id}", headers={"X-Tenant-ID": tenant_id})
        await old.engine.stop(grace=5)
        await asyncio.to_thread(old.replica.close)
        old.closers.clear()  # the client and the server go on, with the new context
        self.settings = self.settings.replace(tenant_id=tenant_id)
        self._save()
        api.tenant_id = tenant_id
        try:
            return await self._open_tenant(api, old.me, tenant_id, bundled=old.bundled)
        except Exception as exc:
            api.tenant_id = old.tenant_id
            self.settings = self.settings.replace(tenant_id=old.tenant_id)
            back = await self._open_tenant(api, old.me, old.tenant_id, bundled=old.bundled)
            self._save()
            raise TenantSwitchFailed(f"Could not open the tenant's data: {exc}", back) from exc

    async def _restored(self, api: ApiClient) -> bool:
        """Signed in with the tokens the keyring kept from an earlier run."""
        if not await api.restore_session():
            return False
        try:
            await api.me()
        except AuthError:
            return False
        return True

    async def _tenant(self, api: ApiClient, me: CurrentUser) -> str:
        if me.tenant_id:
            return me.tenant_id
        # a superadmin: the tenant it worked in last, else the first one
        tenants = await api.request("GET", "/api/tenants", params={"limit": 500})
        ids = [str(t["id"]) for t in tenants or [] if isinstance(t, dict) and "id" in t]
        if not ids:
            raise StartupError(
                "This server has no tenant yet. Create one (aisha-server create-tenant) "
                "and start again."
            )
        chosen = self.settings.tenant_id if self.settings.tenant_id in ids else ids[0]
        if chosen != self.settings.tenant_id:
            self.settings = self.settings.replace(tenant_id=chosen)
            self._save()
        api.tenant_id = chosen
        return chosen

    def _save(self) -> None:
        if self.context is not None:
            self.context.save_settings(self.settings)
        else:
            self.settings.save(self.settings_path)

    # -- sign-in -----------------------------------------------------------------------------
    def _login_request(self, *, editable: bool, message: str = "") -> LoginRequest:
        store = self.store
        return LoginRequest(
            url=self.api.base_url if self.api is not None else self.settings.server_url,
            url_editable=editable,
            email=self.settings.last_email,
            remember=self.settings.remember_me and (store is None or store.keyring_available),
            keyring_available=store.keyring_available if store is not None else True,
            keyring_reason=store.keyring_reason if store is not None else None,
            message=message,
            attempt=self._attempt,
        )

    async def _attempt(self, form: LoginForm) -> Session:
        problems: dict[str, str] = {}
        if (problem := email_problem(form.email)) is not None:
            problems["email"] = problem
        if not form.password:
            problems["password"] = "Enter your password"
        if not form.url.strip():
            problems["url"] = "Enter the server's URL"
        if problems:
            raise ValueError(problems)
        context = self.context
        api = self.api if context is not None else await self._use_url(form.url.strip())
        assert api is not None and self.store is not None
        self.store.remember = form.remember and self.store.keyring_available
        session = await api.login(form.email.strip(), form.password)
        owner = context.me.user if context is not None else None
        if owner is not None and session.user.id != owner.id:
            await api.logout()
            raise ValueError(
                {
                    "email": f"Sign in as {owner.email} to keep working on this "
                    "replica (quit to change user)"
                }
            )
        self.settings = self.settings.replace(
            last_email=form.email.strip(),
            remember_me=form.remember,
            server_url=self.settings.server_url
            if self.settings.server_mode == "bundled"
            else api.base_url,
        )
        self._save()
        return session

    async def _session_expired(self, error: SessionExpired) -> None:
        """The client's `on_session_expired`: ask to sign in again, once at a time."""
        if self.context is None or (self._relogin is not None and not self._relogin.done()):
            return
        self._relogin = asyncio.get_running_loop().create_task(self._sign_in_again(error))

    async def _sign_in_again(self, error: SessionExpired) -> None:
        message = (
            f"Your session ended ({error.message}). Sign in again; your unsaved edits are kept."
        )
        session = await self.prompts.login(self._login_request(editable=False, message=message))
        if session is not None and self.context is not None:
            self.context.engine.kick()

    async def aclose(self) -> None:
        relogin, self._relogin = self._relogin, None
        if relogin is not None and not relogin.done():
            relogin.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relogin
        api, self.api = self.api, None
        if api is not None:
            await api.aclose()
        local, self.local = self.local, None
        if local is not None:
            await local.stop()


async def bootstrap(data_dir: Path, prompts: Prompts, **options: Any) -> AppContext:
    """Build the signed-in `AppContext` (see `Bootstrap`)."""
    return await Bootstrap(data_dir, prompts, **options).run()


__all__ = [
    "Bootstrap",
    "Cancelled",
    "ClientError",
    "LoginForm",
    "LoginRequest",
    "Prompts",
    "StartupError",
    "TenantSwitchFailed",
    "bootstrap",
    "user_data_dir",
]
