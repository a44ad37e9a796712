"""Shared fixtures: every server and service test runs on SQLite and on PostgreSQL.

PostgreSQL comes from AISHA_TEST_POSTGRES_URL (default: the local server as `postgres`).
When it cannot be reached the PostgreSQL half is skipped locally, but fails when
AISHA_REQUIRE_POSTGRES=1 (set by `.ci/run`): CI never skips it silently.

Each test gets a fresh database copied from a template migrated once per session (a file
copy on SQLite, `CREATE DATABASE ... TEMPLATE` on PostgreSQL), so tests are isolated and
the schema always comes from the migrations.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import queue
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.config import Settings, load_settings
from aisha_server.db import migrate

PG_ADMIN_URL = os.environ.get(
    "AISHA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("AISHA_REQUIRE_POSTGRES") == "1"
TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEMPLATE_PREFIX = "aisha_tpl_"


def _pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _pg_available() -> str | None:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class PgDatabases:
    """Fresh PostgreSQL databases copied from the migrated template, made ahead of need and
    dropped after use on a thread of their own.  A `CREATE DATABASE ... TEMPLATE` costs
    about 0.4 s here (a core of system time): made while the previous test runs, most of
    it no longer adds to the suite's time.  Every test still gets a database nobody used."""

    AHEAD = 2

    def __init__(self, template: str) -> None:
        self.template = template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._drops: queue.Queue[str] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-databases", daemon=True)
        self._thread.start()

    def take(self) -> str:
        self._wake.set()
        try:
            got = self._ready.get(timeout=120)
        except queue.Empty:
            raise AssertionError("no test database was made within 120 s") from None
        self._wake.set()  # make the next one
        if isinstance(got, BaseException):
            raise AssertionError(f"could not make a test database: {got!r}") from got
        return got

    def give_back(self, name: str) -> None:
        self._drops.put(name)
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=120)
        left: list[str] = []
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, str):
                left.append(item)
        while True:
            try:
                left.append(self._drops.get_nowait())
            except queue.Empty:
                break
        if left:
            asyncio.run(_pg_admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in left)))

    def _run(self) -> None:
        asyncio.run(self._work())

    async def _work(self) -> None:
        try:
            conn = await asyncpg.connect(
                PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
            )
        except Exception as exc:  # told to the test that waits for a database
            self._ready.put(exc)
            return
        try:
            while not self._stop.is_set():
                try:  # drops first: they free what the next creates need
                    name = self._drops.get_nowait()
                except queue.Empty:
                    pass
                else:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    continue
                if not self._ready.full():
                    name = f"aisha_t_{uuid.uuid4().hex[:12]}"
                    try:
                        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                    except Exception as exc:
                        self._ready.put(exc)
                        return
                    self._ready.put(name)
                    continue
                self._wake.wait(0.5)  # this loop is the thread's own: it may block
                self._wake.clear()
        finally:
            await conn.close()


@dataclass
class DatabaseTemplate:
    backend: str
    sqlite_file: Path | None = None
    pg_template: str | None = None
    pg_databases: PgDatabases | None = None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> DatabaseTemplate:
    data_dir = tmp_path_factory.mktemp("sqlite-template")
    settings = load_settings(data_dir=data_dir, overrides={"JWT_SECRET": TEST_JWT_SECRET})
    migrate.upgrade(settings)
    return DatabaseTemplate("sqlite", sqlite_file=settings.sqlite_path)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[DatabaseTemplate]:
    problem = _pg_available()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(
                f"PostgreSQL is required (AISHA_REQUIRE_POSTGRES=1) but unreachable: {problem}"
            )
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    settings = load_settings(
        overrides={"JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": _pg_url(name)}
    )
    migrate.upgrade(settings)
    databases = PgDatabases(name)
    try:
        yield DatabaseTemplate("postgres", pg_template=name, pg_databases=databases)
    finally:
        databases.close()
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str | None]:
    """A fresh, migrated database for this test: None means SQLite in the data dir."""
    if backend == "sqlite":
        template: DatabaseTemplate = request.getfixturevalue("sqlite_template")
        assert template.sqlite_file is not None
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        shutil.copyfile(template.sqlite_file, data_dir / "aisha.db")
        yield None
        return
    template = request.getfixturevalue("pg_template")
    assert template.pg_databases is not None
    name = template.pg_databases.take()
    try:
        yield _pg_url(name)
    finally:
        template.pg_databases.give_back(name)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with `@pytest.mark.parametrize(indirect=...)`)."""
    return {}


@pytest.fixture
def settings(
    database_url: str | None, tmp_path: Path, settings_overrides: dict[str, Any]
) -> Settings:
    overrides: dict[str, Any] = {
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATABASE_URL": database_url,
        "RATE_LIMIT_MAX": 100_000,
        "AUTH_RATE_LIMIT_MAX": 100_000,
        "SMTP_HOST": None,
        "REDIS_URL": None,
        "PRODUCTION_READONLY": False,
        "LOG_LEVEL": "warn",
    }
    overrides.update(settings_overrides)
    return load_settings(data_dir=tmp_path / "data", overrides=overrides)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = await aiohttp_client(app)
    yield client
    # close here, before the database fixture drops the database: the app's shutdown still
    # writes to it (system_logs "Server stopping", API key usage)
    await client.close()


@pytest.fixture
async def started_app(client: TestClient[Any, Any]) -> web.Application:
    """The app behind `client`, started (cleanup_ctx entered)."""
    return client.app  # type: ignore[return-value]


@pytest.fixture
def db(app: web.Application) -> Any:
    return app[keys.DB]


# -- SMTP sink ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[Any]

    async def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count:
            if loop.time() > deadline:
                raise AssertionError(f"expected {count} mails, got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 collecting every message it receives."""
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Collect:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    port = free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSink("127.0.0.1", port, received)
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(smtp_sink: SmtpSink) -> dict[str, Any]:
    """Merge into `settings_overrides` to send mail to the sink."""
    return {
        "SMTP_HOST": smtp_sink.host,
        "SMTP_PORT": smtp_sink.port,
        "SMTP_STARTTLS": False,
        "SMTP_FROM": "AiSHA <no-reply@aisha.test>",
        "FRONTEND_URL": "http://crm.test",
    }
