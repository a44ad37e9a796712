"""`ApiClient`: the desktop's one way to talk to an AiSHA server.

It owns an `httpx.AsyncClient`, the login's tokens and their renewal.  Every call returns the
envelope's `data` (or a typed view of it) or raises a `ClientError`; nothing of httpx leaks.

Token renewal is single-flight: when requests fail with an expired or invalid access token,
one refresh runs (shielded, so a caller's cancellation cannot lose the rotated refresh token
half-way), every failed request waits for it and is retried once with the new token.  A
refresh the server refuses ends the session: the tokens are cleared, `on_session_expired`
is called once, and the waiting requests raise `SessionExpired`.  Nothing loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self

import httpx
import orjson

from aisha_desktop.client.csv_io import (
    IMPORT_POLL,
    IMPORT_POLL_MAX,
    IMPORT_TIMEOUT,
    ExportProgress,
    ExportProgressCallback,
    ExportResult,
    ImportCheckProgress,
    ImportJobState,
    ImportMode,
    ImportRejected,
    ImportReport,
    MatchKey,
    MultipartUpload,
    OnError,
    RecordCounter,
    UploadProgress,
    header_of,
)
from aisha_desktop.client.errors import (
    ApiError,
    AuthError,
    ClientError,
    OfflineError,
    RateLimited,
    SessionExpired,
    UnexpectedResponse,
    ValidationError,
    error_from_response,
)
from aisha_desktop.client.models import (
    Change,
    ChangesPage,
    CurrentUser,
    Page,
    PushResult,
    Session,
    SyncConflict,
    User,
    optional_int,
    optional_text,
    parse_time,
)
from aisha_desktop.client.tokens import MemoryTokenStore, Tokens, TokenStore

if TYPE_CHECKING:
    from aisha_desktop.client.stream import ChangeStream

log = logging.getLogger("aisha.desktop.client")

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "AiSHA-Desktop/0.1"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"
ME = "/api/auth/me"
SYNC_CHANGES = "/api/sync/changes"
SYNC_PUSH = "/api/sync/push"
SYNC_CONFLICTS = "/api/sync/conflicts"
SYNC_STREAM = "/api/sync/stream"
MAX_PUSH = 1000  # the server's limit of mutations per push

# 401 codes that say the login itself is over (refreshing cannot help); any other 401 on an
# authenticated request (token_expired, invalid_token, ...) is worth one refresh.
SESSION_OVER = frozenset(
    {
        "session_revoked",
        "session_expired",
        "invalid_session",
        "account_missing",
        "account_disabled",
        "tenant_inactive",
        "invalid_role",
    }
)

_ENTITY = re.compile(r"^[a-z][a-z_]{0,62}$")

SessionExpiredCallback = Callable[[SessionExpired], Awaitable[None] | None]
Json = Mapping[str, Any]
RecordId = str | uuid.UUID


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # money travels as a string, every digit kept
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"unsupported query parameter value: {type(value).__name__}")


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query pairs: None values are left out, lists repeat the name."""
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            pairs.extend((name, _query_text(v)) for v in value)
        else:
            pairs.append((name, _query_text(value)))
    return pairs


def _checked_path(path: str) -> str:
    # A full URL would send the bearer token to whatever host it names.
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError(f"path must be a server-relative path starting with '/': {path!r}")
    return path


def _job_state(answer: Any) -> ImportJobState:
    try:
        return ImportJobState.from_json(answer)
    except ValueError as exc:
        raise UnexpectedResponse(
            f"The server's import job makes no sense: {exc}", status=200
        ) from None


def _page(body: Mapping[str, Any], not_a_list: str) -> Page:
    """A listing answer's items and pagination (the cursor to follow, when there is one)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise UnexpectedResponse(not_a_list, status=200)
    pagination = body.get("pagination")
    paging: Json = pagination if isinstance(pagination, Mapping) else {}
    return Page(
        items=[dict(item) for item in data if isinstance(item, Mapping)],
        next_cursor=optional_text(paging, "next_cursor"),
        limit=optional_int(paging, "limit"),
        offset=optional_int(paging, "offset"),
        total=optional_int(paging, "total"),
    )


def _entity_path(entity: str) -> str:
    if not _ENTITY.match(entity):
        raise ValueError(f"not an entity name: {entity!r}")
    return f"/api/{entity}"


def _record_path(entity: str, record_id: RecordId) -> str:
    try:
        canonical = uuid.UUID(str(record_id))
    except ValueError:
        raise ValueError(f"not a record id (UUID): {record_id!r}") from None
    return f"{_entity_path(entity)}/{canonical}"


def _tokens_from(data: Json) -> tuple[Tokens, Session]:
    access, refresh = data.get("token"), data.get("refresh_token")
    user = data.get("user")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise UnexpectedResponse(
            "The server's login answer has no tokens", status=200, body=dict(data)
        )
    session_id = optional_text(data, "session_id") or ""
    tokens = Tokens(
        access_token=access,
        refresh_token=refresh,
        access_expires_at=parse_time(data, "expires_at"),
        refresh_expires_at=parse_time(data, "refresh_expires_at"),
        session_id=session_id or None,
    )
    session = Session(
        user=User.from_json(user if isinstance(user, Mapping) else {}),
        session_id=session_id,
        expires_at=tokens.access_expires_at,
        refresh_expires_at=tokens.refresh_expires_at,
    )
    return tokens, session


TENANT_HEADER = "X-Tenant-ID"


class ApiClient:
    """Async client of one AiSHA server.  Use as `async with ApiClient(url) as api:`."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        token_store: TokenStore | None = None,
        on_session_expired: SessionExpiredCallback | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"server URL must be http(s)://host[:port]: {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._store: TokenStore = token_store if token_store is not None else MemoryTokenStore()
        self._on_session_expired = on_session_expired
        self._tokens: Tokens | None = None
        self._session: Session | None = None
        self._loaded = False
        self._load_lock = asyncio.Lock()
        # the tenant a superadmin works in: sent as X-Tenant-ID with every authenticated call
        # (tenant users need none: their token names their tenant)
        self.tenant_id: str | None = None
        self._refreshing: asyncio.Task[Tokens] | None = None

    # -- lifetime --------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections.  A refresh in flight is let finish first, so its rotated
        refresh token is stored rather than lost."""
        task = self._refreshing
        if task is not None:
            await asyncio.wait({task})
        await self._http.aclose()

    # -- state -----------------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        """The login (user, session, expiries) as of the last login or refresh."""
        return self._session

    @property
    def is_authenticated(self) -> bool:
        """True while the client holds tokens (they may still turn out to be expired)."""
        return self._tokens is not None

    async def restore_session(self) -> bool:
        """Load tokens kept by the token store from an earlier run; True if there were any.
        Nothing is asked of the server: the next call (e.g. `me()`) proves them."""
        return await self._current_tokens() is not None

    # -- system ----------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """`GET /health`: `{"status": "ok", "timestamp": ...}` (no envelope)."""
        response = await self._send("GET", "/health")
        if response.status_code >= 400:
            raise self._error(response)
        body = self._decoded(response)
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise UnexpectedResponse(
                "The server's health answer is not ok", status=response.status_code
            )
        return body

    async def status(self) -> Any:
        """`GET /api/status`: version, database, workers."""
        return (await self._call("GET", "/api/status", auth=False))["data"]

    # -- auth ------------------------------------------------------------------------------
    async def login(self, email: str, password: str) -> Session:
        body = await self._call(
            "POST", LOGIN, json={"email": email, "password": password}, auth=False
        )
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise UnexpectedResponse("The server's login answer has no data", status=200)
        tokens, session = _tokens_from(data)
        await self._adopt(tokens, session)
        return session

    async def refresh(self) -> Session:
        """Renew the tokens now (normally this happens by itself on a 401)."""
        tokens = await self._current_tokens()
        if tokens is None:
            raise SessionExpired("Not signed in", status=401, code="not_signed_in")
        await self._refreshed(tokens.access_token, notify=True)
        assert self._session is not None  # set by the refresh
        return self._session

    async def logout(self, *, all_sessions: bool = False) -> int:
        """End the session on the server (or every session of the user) and forget the
        tokens; returns how many sessions the server revoked.  The tokens are forgotten even
        when the server cannot be reached (then `OfflineError` is raised afterwards)."""
        if await self._current_tokens() is None:
            return 0
        try:
            body = await self._call(
                "POST", LOGOUT, json={"all_sessions": all_sessions}, notify=False
            )
        except AuthError:
            return 0  # the session was over already
        finally:
            await self._forget()
        data = body.get("data")
        revoked = data.get("revoked_sessions") if isinstance(data, Mapping) else None
        return revoked if isinstance(revoked, int) else 0

    async def me(self) -> CurrentUser:
        data = await self.request("GET", ME)
        if not isinstance(data, Mapping):
            raise UnexpectedResponse("The server's /me answer has no data", status=200)
        return CurrentUser.from_json(data)

    # -- generic ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """An authenticated call; returns the envelope's `data`."""
        return (await self._call(method, path, json=json, params=params, headers=headers)).get(
            "data"
        )

    # -- records ---------------------------------------------------------------------------
    async def list_records(self, entity: str, **params: Any) -> Page:
        """A page of `entity` (`limit`, `cursor`, `sort`, `q`, filters, `cf.<name>` via
        `**{"cf.tier": "gold"}` ...); follow `Page.next_cursor` for the next."""
        body = await self._call("GET", _entity_path(entity), params=params)
        return _page(body, "A record list answer holds no list")

    async def timeline(
        self, entity: str, record_id: RecordId, *, limit: int, cursor: str | None = None
    ) -> Page:
        """A page of a record's timeline, newest first; follow `Page.next_cursor` for older
        entries (entries of one moment are told apart by the cursor, unlike a time)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        body = await self._call("GET", f"{_record_path(entity, record_id)}/timeline", params=params)
        return _page(body, "The server's answer is not a timeline")

    async def get_record(self, entity: str, record_id: RecordId) -> dict[str, Any]:
        return self._record(await self.request("GET", _record_path(entity, record_id)))

    async def create_record(
        self, entity: str, fields: Json, *, confirm_duplicate: bool = False
    ) -> dict[str, Any]:
        """Create; a likely duplicate raises `PossibleDuplicates` unless `confirm_duplicate`."""
        params = {"confirm_duplicate": True} if confirm_duplicate else None
        return self._record(
            await self.request("POST", _entity_path(entity), json=fields, params=params)
        )

    async def update_record(
        self, entity: str, record_id: RecordId, fields: Json, *, version: int | None = None
    ) -> dict[str, Any]:
        """PATCH the given fields.  With `version` (the one the edit is based on) the server
        refuses with `VersionConflict` when the record has moved on."""
        headers = {"If-Match": f'"{int(version)}"'} if version is not None else None
        return self._record(
            await self.request(
                "PATCH", _record_path(entity, record_id), json=fields, headers=headers
            )
        )

    async def delete_record(self, entity: str, record_id: RecordId) -> dict[str, Any]:
        """Soft delete; returns the deleted record (restorable)."""
        return self._record(await self.request("DELETE", _record_path(entity, record_id)))

    async def restore_record(self, entity: str, record_id: RecordId) -> dict[str, Any]:
        path = f"{_record_path(entity, record_id)}/restore"
        return self._record(await self.request("POST", path))

    async def merge_records(
        self, entity: str, record_id: RecordId, duplicate_id: RecordId
    ) -> dict[str, Any]:
        """Merge `duplicate_id` into `record_id` (accounts, contacts, leads): the server's
        answer, `{"record": ..., "merged_id": ..., "repointed": {"activities": n, ...}}`."""
        path = f"{_record_path(entity, record_id)}/merge"
        duplicate = str(uuid.UUID(str(duplicate_id)))  # ValueError before anything is sent
        data = await self.request("POST", path, json={"duplicate_id": duplicate})
        if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
            raise UnexpectedResponse("The server's answer is not a merge result", status=200)
        return data

    # -- CSV import and export --------------------------------------------------------------
    async def import_csv(
        self,
        entity: str,
        data: bytes,
        *,
        mapping: Mapping[str, str] | None = None,
        mode: ImportMode = "create",
        match: MatchKey | None = None,
        dry_run: bool = False,
        on_error: OnError = "rollback",
        confirm_duplicates: bool = False,
        filename: str = "import.csv",
        progress: UploadProgress | None = None,
        checking: ImportCheckProgress | None = None,
    ) -> ImportReport:
        """`POST /api/<entity>/import` of a CSV file (multipart, sent in slices: `progress`
        gets (bytes sent, total)), run by the server as a background job that is then
        followed until it ends (`checking` gets each state: rows checked of rows in the
        file).  `mapping`: CSV column -> field or `cf.<name>` (None: the server matches
        columns named like fields).  With `on_error="rollback"` (the server's default) a file
        with a bad row writes nothing and raises `ImportRejected` (its `report` lists the bad
        rows); `"skip"` writes the good rows and reports the bad ones.  New rows whose
        e-mail or phone is already a record's (or an earlier row's) are errors unless
        `confirm_duplicates`.

        Cancelling the awaiting task closes the connection during the upload (an upload cut
        short imports nothing) and cancels the job after it (the server rolls it back; the
        job's last state, told to `checking`, says whether the cancel came in time)."""
        fields = {
            "mode": mode,
            "dry_run": "true" if dry_run else "false",
            "on_error": on_error,
            "background": "true",
        }
        if confirm_duplicates:
            fields["confirm_duplicates"] = "true"
        if match is not None:
            fields["match"] = match
        if mapping is not None:
            fields["mapping"] = orjson.dumps(dict(mapping)).decode()
        upload = MultipartUpload(fields, data, filename)
        headers = {"Content-Type": upload.content_type, "Content-Length": str(upload.size)}
        path = f"{_entity_path(entity)}/import"
        response = await self._stream(
            "POST",
            path,
            headers=headers,
            body=lambda: upload.body(progress),
            read_timeout=IMPORT_TIMEOUT,
        )
        job = _job_state(await self._read_data(response, "POST", path))
        ended = await self._follow_import(job, checking)
        if ended.get("status") == "done":
            try:  # a report of 200,000 rows takes a while to read: not on the GUI's thread
                return await asyncio.to_thread(ImportReport.from_json, ended.get("report"))
            except ValueError as exc:
                raise UnexpectedResponse(str(exc), status=200) from None
        error = ended.get("error")
        if ended.get("status") == "failed" and isinstance(error, Mapping):
            status = error.get("status")
            failure = error_from_response(status if isinstance(status, int) else 500, {}, error)
            if isinstance(failure, ValidationError) and failure.code == "import_rejected":
                raise ImportRejected(failure, mode=mode, dry_run=dry_run)
            raise failure
        raise ClientError(
            f"The import was {ended.get('status', 'stopped')} on the server; nothing was written"
        )

    async def _follow_import(
        self, job: ImportJobState, checking: ImportCheckProgress | None
    ) -> Mapping[str, Any]:
        """Look at a background import until it ends; its last answer (with its report or
        error).  Cancelled, it cancels the job on the server before it stops."""
        path = f"/api/import-jobs/{job.id}"
        delay = IMPORT_POLL
        try:
            while True:
                if checking is not None:
                    checking(job)
                await asyncio.sleep(delay)
                # looks grow sparser (a long import polls ~30 times a minute, well inside the
                # server's rate limit, which sync shares); a 429 only delays the next look
                delay = min(delay * 1.5, IMPORT_POLL_MAX)
                try:
                    response = await self._stream("GET", path, read_timeout=IMPORT_TIMEOUT)
                except RateLimited as limited:
                    delay = max(delay, limited.retry_after or IMPORT_POLL_MAX)
                    continue
                answer = await self._read_data(response, "GET", path)
                job = _job_state(answer)
                if job.status != "running":
                    if checking is not None:
                        checking(job)
                    ended: Mapping[str, Any] = answer
                    return ended
        except asyncio.CancelledError:
            # the server rolls the job back; the DELETE answers once it has stopped
            with contextlib.suppress(Exception):
                final = await asyncio.shield(self.request("DELETE", path))
                if checking is not None:
                    checking(_job_state(final))
            raise

    async def _read_data(self, response: httpx.Response, method: str, path: str) -> Any:
        """An unread answer's envelope `data`, decoded off the GUI's thread (import reports
        run to megabytes)."""
        try:
            with self._transport_errors(method, path):
                await response.aread()
        finally:
            await response.aclose()
        try:
            return await asyncio.to_thread(lambda: self._envelope(response).get("data"))
        except ValueError as exc:
            raise UnexpectedResponse(str(exc), status=response.status_code) from None

    async def export_csv(
        self,
        entity: str,
        destination: Path | str,
        *,
        params: Mapping[str, Any] | None = None,
        progress: ExportProgressCallback | None = None,
    ) -> ExportResult:
        """Stream `GET /api/<entity>/export` (`params`: q, match, filters, sort and columns,
        as the server takes them) into `destination`.  The file is written as
        `<destination>.part` and renamed when complete; a failure or a cancel removes it, so no
        partial export is left behind."""
        target = Path(destination)
        partial = target.with_name(target.name + ".part")
        path = f"{_entity_path(entity)}/export"
        counter = RecordCounter()
        written = 0
        head = b""  # the stream's start, until its header line is complete

        async def write(handle: BinaryIO, data: bytes) -> None:
            nonlocal written
            if data:
                await asyncio.to_thread(handle.write, data)
                written += len(data)

        response = await self._stream("GET", path, query=_query(params))
        try:
            try:
                handle = await asyncio.to_thread(partial.open, "wb")
                try:
                    with self._transport_errors("GET", path):
                        async for chunk in response.aiter_bytes():
                            if b"\n" not in head:
                                head += chunk
                            counter.feed(chunk)
                            await write(handle, chunk)
                            if progress is not None:
                                progress(ExportProgress(written, max(counter.records - 1, 0)))
                finally:
                    await asyncio.to_thread(handle.close)
            finally:
                await response.aclose()
            rows = max(counter.records - 1, 0)
            if progress is not None:
                progress(ExportProgress(written, rows))
            # the last point a cancel (one asked for from that report included) can stop
            # the export; from here the file is renamed into place and the call returns with
            # no await between, so a cancelled export never leaves a file, nor a finished one
            # a cancelled task
            await asyncio.sleep(0)
            partial.replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        chosen = header_of(head)
        return ExportResult(target, rows, written, chosen)

    # -- sync ------------------------------------------------------------------------------
    async def pull_changes(self, since: str | None, limit: int = 500) -> ChangesPage:
        """One page of the change feed after `since` (None starts a snapshot).  A cursor the
        server no longer covers raises `ResyncRequired`."""
        data = await self.request("GET", SYNC_CHANGES, params={"since": since, "limit": limit})
        if not isinstance(data, Mapping) or not isinstance(data.get("changes"), list):
            raise UnexpectedResponse("The server's change page holds no changes", status=200)
        cursor = data.get("cursor")
        if not isinstance(cursor, str) or not cursor:
            raise UnexpectedResponse("The server's change page holds no cursor", status=200)
        try:
            changes = [Change.from_json(c) for c in data["changes"] if isinstance(c, Mapping)]
        except ValueError as exc:
            raise UnexpectedResponse(str(exc), status=200) from None
        return ChangesPage(
            changes=changes,
            cursor=cursor,
            has_more=data.get("has_more") is True,
            snapshot=data.get("snapshot") is True,
        )

    async def push(self, client_id: str, mutations: Sequence[Json]) -> list[PushResult]:
        """Apply mutations (`{mutation_id, entity_type, id, op, base_version, fields}`) in
        order; one result each.  Retrying with the same `client_id` and mutation ids after a
        lost answer applies nothing twice."""
        if len(mutations) > MAX_PUSH:
            raise ValueError(f"at most {MAX_PUSH} mutations per push")
        data = await self.request(
            "POST", SYNC_PUSH, json={"client_id": client_id, "mutations": list(mutations)}
        )
        results = data.get("results") if isinstance(data, Mapping) else None
        if not isinstance(results, list) or len(results) != len(mutations):
            raise UnexpectedResponse("The server's push answer does not match the push", status=200)
        try:
            return [PushResult.from_json(r) for r in results if isinstance(r, Mapping)]
        except ValueError as exc:
            raise UnexpectedResponse(str(exc), status=200) from None

    async def conflicts(
        self, *, include_resolved: bool = False, everyone: bool = False
    ) -> list[SyncConflict]:
        """The caller's open conflicts (`everyone`: all users', administrators only)."""
        params = {"include_resolved": include_resolved or None, "all": everyone or None}
        data = await self.request("GET", SYNC_CONFLICTS, params=params)
        if not isinstance(data, list):
            raise UnexpectedResponse("The server's conflict list holds no list", status=200)
        return [SyncConflict.from_json(c) for c in data if isinstance(c, Mapping)]

    async def resolve_conflict(
        self, conflict_id: RecordId, resolution: str, value: Any = None
    ) -> SyncConflict:
        """Resolve with "keep_server", "take_mine" or "custom" (then `value`); the answer's
        `record` is the record afterwards."""
        if resolution not in ("keep_server", "take_mine", "custom"):
            raise ValueError(f"not a resolution: {resolution!r}")
        path = f"{SYNC_CONFLICTS}/{uuid.UUID(str(conflict_id))}/resolve"
        body: dict[str, Any] = {"resolution": resolution}
        if resolution == "custom":
            body["value"] = value
        return SyncConflict.from_json(self._record(await self.request("POST", path, json=body)))

    def change_stream(self, *, heartbeat: float = 15.0) -> ChangeStream:
        """`async with api.change_stream() as stream: async for seq in stream:` - the tenant's
        change-feed head whenever it moves (first the current one).  Losing the connection
        raises `OfflineError`."""
        from aisha_desktop.client.stream import ChangeStream  # aiohttp only when streaming

        return ChangeStream(self, heartbeat=heartbeat)

    async def bearer_token(self) -> str:
        """The current access token (for the stream's handshake)."""
        tokens = await self._current_tokens()
        if tokens is None:
            raise AuthError("Not signed in", status=401, code="not_signed_in")
        return tokens.access_token

    async def renewed_token(self, refused: str) -> str:
        """An access token newer than `refused`, through the same single-flight refresh as
        HTTP calls; raises `SessionExpired` when the login is over."""
        return (await self._refreshed(refused, notify=True)).access_token

    @staticmethod
    def _record(data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise UnexpectedResponse("The server's answer holds no record", status=200)
        return dict(data)

    # -- the request pipeline --------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        notify: bool = True,
    ) -> dict[str, Any]:
        """One API call; the whole success envelope.  `auth` calls carry the bearer token
        and get one refresh-and-retry on an expired token."""
        path = _checked_path(path)
        content = None if json is None else orjson.dumps(json, default=_json_default)
        query = _query(params)
        if not auth:
            response = await self._send(method, path, content=content, query=query, headers=headers)
            return self._envelope(response)
        tokens = await self._current_tokens()
        if tokens is None:
            raise AuthError("Not signed in", status=401, code="not_signed_in")
        response = await self._send(
            method, path, content=content, query=query, headers=headers, bearer=tokens.access_token
        )
        if response.status_code == 401:
            refused = self._error(response)
            if refused.code in SESSION_OVER:
                raise await self._expire(refused, tokens, notify=notify)
            tokens = await self._refreshed(tokens.access_token, notify=notify)
            response = await self._send(
                method,
                path,
                content=content,
                query=query,
                headers=headers,
                bearer=tokens.access_token,
            )
        return self._envelope(response)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
    ) -> httpx.Response:
        sent: dict[str, str] = dict(headers or {})
        if content is not None:
            sent["Content-Type"] = "application/json"
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
            if self.tenant_id and not path.startswith("/api/auth/"):
                sent.setdefault(TENANT_HEADER, self.tenant_id)
        with self._transport_errors(method, path):
            return await self._http.request(
                method, path, content=content, params=list(query), headers=sent
            )

    @contextlib.contextmanager
    def _transport_errors(self, method: str, path: str) -> Iterator[None]:
        """httpx's failures as the client's errors."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise OfflineError(
                f"The server at {self.base_url} did not answer in time ({method} {path})"
            ) from exc
        except httpx.TransportError as exc:
            raise OfflineError(f"The server at {self.base_url} cannot be reached: {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ClientError(f"{method} {path} failed: {exc}") from exc

    async def _stream(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Callable[[], AsyncIterator[bytes]] | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """An authenticated call whose answer is left unread (the caller reads and closes
        it); an error answer is read and raised.  One refresh-and-retry on an expired token,
        with the body made anew by `body()`."""
        path = _checked_path(path)
        tokens = await self._current_tokens()
        if tokens is None:
            raise AuthError("Not signed in", status=401, code="not_signed_in")
        response = await self._open(
            method, path, query, headers, body, tokens.access_token, read_timeout
        )
        if response.status_code == 401:
            refused = await self._refusal(method, path, response)
            if refused.code in SESSION_OVER:
                raise await self._expire(refused, tokens, notify=True)
            tokens = await self._refreshed(tokens.access_token, notify=True)
            response = await self._open(
                method, path, query, headers, body, tokens.access_token, read_timeout
            )
        if response.status_code >= 400:
            raise await self._refusal(method, path, response)
        return response

    async def _open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None,
        body: Callable[[], AsyncIterator[bytes]] | None,
        bearer: str,
        read_timeout: float | None,
    ) -> httpx.Response:
        sent = {**(headers or {}), "Authorization": f"Bearer {bearer}"}
        if self.tenant_id:
            sent.setdefault(TENANT_HEADER, self.tenant_id)
        with self._transport_errors(method, path):
            request = self._http.build_request(
                method,
                path,
                params=list(query),
                headers=sent,
                content=body() if body is not None else None,
                timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=read_timeout)
                if read_timeout is not None
                else httpx.USE_CLIENT_DEFAULT,
            )
            return await self._http.send(request, stream=True)

    async def _refusal(self, method: str, path: str, response: httpx.Response) -> ApiError:
        """The error of an unread error answer (read, then closed)."""
        try:
            with self._transport_errors(method, path):
                await response.aread()
        finally:
            await response.aclose()
        return self._error(response)

    @staticmethod
    def _decoded(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None

    def _error(self, response: httpx.Response) -> ApiError:
        return error_from_response(
            response.status_code,
            response.headers,
            self._decoded(response),
            reason=response.reason_phrase,
        )

    def _envelope(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise self._error(response)
        body = self._decoded(response)
        if (
            not 200 <= response.status_code < 300
            or not isinstance(body, dict)
            or body.get("status") != "success"
        ):
            raise UnexpectedResponse(
                f"The server's answer is not the API's JSON envelope "
                f"(HTTP {response.status_code}, {response.headers.get('Content-Type', 'no type')})",
                status=response.status_code,
                request_id=response.headers.get("X-Request-ID"),
            )
        return body

    # -- tokens ----------------------------------------------------------------------------
    async def _current_tokens(self) -> Tokens | None:
        if not self._loaded:
            async with self._load_lock:
                if not self._loaded:
                    stored = await self._store.get()
                    if self._tokens is None:  # a login while we waited wins
                        self._tokens = stored
                    self._loaded = True
        return self._tokens

    async def _adopt(self, tokens: Tokens, session: Session) -> None:
        self._tokens, self._session, self._loaded = tokens, session, True
        await self._store.set(tokens)

    async def _forget(self) -> None:
        self._tokens, self._session, self._loaded = None, None, True
        await self._store.clear()

    async def _refreshed(self, failed_access: str, *, notify: bool) -> Tokens:
        """Tokens newer than `failed_access`: from a refresh another request already did,
        from the one in flight, or from a new one."""
        current = self._tokens
        if current is None:
            raise SessionExpired("Signed out", status=401, code="signed_out")
        if current.access_token != failed_access:
            return current
        task = self._refreshing
        if task is None:
            task = asyncio.get_running_loop().create_task(self._rotate(current, notify=notify))
            self._refreshing = task
            task.add_done_callback(self._refresh_done)
        return await asyncio.shield(task)

    def _refresh_done(self, task: asyncio.Task[Tokens]) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have been cancelled

    async def _rotate(self, current: Tokens, *, notify: bool) -> Tokens:
        response = await self._send(
            "POST", REFRESH, content=orjson.dumps({"refresh_token": current.refresh_token})
        )
        if response.status_code == 401:
            raise await self._expire(self._error(response), current, notify=notify)
        body = self._envelope(response)  # offline, 429, 5xx: raised, tokens kept for later
        data = body.get("data")
        tokens, session = _tokens_from(data if isinstance(data, Mapping) else {})
        if self._tokens is current:  # not signed out or in again meanwhile
            await self._adopt(tokens, session)
        return tokens

    async def _expire(self, refused: ApiError, current: Tokens, *, notify: bool) -> SessionExpired:
        """End the login after the server refused it; the error to raise."""
        expired = SessionExpired(
            refused.message,
            status=refused.status,
            code=refused.code,
            details=refused.details,
            request_id=refused.request_id,
            body=refused.body,
        )
        if self._tokens is not current:
            return expired  # someone signed in again (or out) meanwhile: nothing of ours ended
        await self._forget()
        callback = self._on_session_expired
        if notify and callback is not None:
            try:
                result = callback(expired)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a faulty listener must not replace the error callers get
                log.exception("on_session_expired callback failed")
        return expired
