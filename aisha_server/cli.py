"""`aisha-server`: serve | migrate | create-superadmin | create-tenant | config | care.

Every command reads the same configuration: the process environment, `.env` in the data
directory and in the working directory, `--env-file`, and `--data-dir`.  Problems are
reported as one line each on stderr with exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from aisha_server import __version__
from aisha_server.config import ConfigError, Settings, generate_dev_secret, load_settings
from aisha_server.errors import DomainError

EXIT_CONFIG = 2
EXIT_FAILURE = 1

log = logging.getLogger("aisha.cli")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="directory for the embedded database and server state "
        "(default: $AISHA_DATA_DIR or ~/.local/share/aisha)",
    )
    parser.add_argument(
        "--env-file", type=Path, help="an extra .env file to read (highest of the files)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aisha-server",
        description="AiSHA server: REST API, database, background workers and webhooks.",
    )
    parser.add_argument("--version", action="version", version=f"aisha-server {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the HTTP server",
        description="Run the HTTP server. "
        "Migrates the database to the latest schema first unless --no-migrate.",
    )
    _common(serve)
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind; 0 picks a free port (default: PORT or 3001)"
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="development mode: accept a missing or weak JWT_SECRET by generating one "
        "(kept in the data dir so logins survive restarts)",
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start")

    migrate = sub.add_parser(
        "migrate",
        help="migrate the database schema",
        description="Upgrade (default) or downgrade the database schema with Alembic.",
    )
    _common(migrate)
    migrate.add_argument(
        "revision", nargs="?", default="head", help="target revision (default: head)"
    )
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION instead")

    admin = sub.add_parser(
        "create-superadmin",
        help="create a superadmin user",
        description="Create a superadmin. Prompts for what is not given as an option.",
    )
    _common(admin)
    admin.add_argument("--email")
    admin.add_argument(
        "--password",
        help="prefer the prompt or AISHA_SUPERADMIN_PASSWORD; "
        "options are visible in the process list",
    )
    admin.add_argument("--first-name")
    admin.add_argument("--last-name")

    tenant = sub.add_parser(
        "create-tenant",
        help="create a tenant",
        description="Create a tenant with default module settings and print its UUID.",
    )
    _common(tenant)
    tenant.add_argument("--name", required=True)
    tenant.add_argument("--slug", help="default: derived from the name")
    tenant.add_argument("--timezone", default="UTC")
    tenant.add_argument("--currency", default="USD")
    tenant.add_argument("--date-format", default="MM/DD/YYYY")
    care = sub.add_parser(
        "care",
        help="C.A.R.E. troubleshooting",
        description="C.A.R.E. (guide chapter 13) commands for troubleshooting.",
    )
    care_sub = care.add_subparsers(dest="care_command", required=True, metavar="CARE_COMMAND")
    scan = care_sub.add_parser(
        "scan",
        help="run the scheduled escalation checks",
        description="Run the scheduled checks (lead stagnant, deal decay, activity overdue, "
        "hot opportunity) once, as the worker does, and print the report as JSON. "
        "Honours CARE_ENABLED and tenant pauses like the worker.",
    )
    _common(scan)
    scan.add_argument(
        "--once", action="store_true", required=True, help="one scan, then exit (required)"
    )
    scan.add_argument("--tenant", help="only this tenant (UUID or slug)")
    scan.add_argument(
        "--rescan",
        action="store_true",
        help="read every record again from the start (situations already raised stay raised)",
    )
    config = sub.add_parser(
        "config",
        help="check or document the configuration",
        description="Validate the configuration and print the resolved values (secrets "
        "masked), or print a documented .env.example.",
    )
    _common(config)
    config.add_argument("--example", action="store_true", help="print .env.example and exit")
    config.add_argument(
        "--markdown", action="store_true", help="print the reference table and exit"
    )
    return parser


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    data_dir = args.data_dir.expanduser().resolve() if args.data_dir else None
    return load_settings(data_dir=data_dir, env_file=args.env_file, overrides=overrides)


def _fail(lines: Sequence[str], out: TextIO = sys.stderr, code: int = EXIT_CONFIG) -> int:
    for line in lines:
        print(f"aisha-server: {line}", file=out)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "create-superadmin": cmd_create_superadmin,
        "create-tenant": cmd_create_tenant,
        "config": cmd_config,
        "care": cmd_care,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        return _fail(exc.lines)
    except DomainError as exc:
        details = exc.details if isinstance(exc.details, list) else []
        lines = [exc.message] + [
            f"{d.get('field')}: {d.get('message')}" for d in details if isinstance(d, dict)
        ]
        return _fail(lines, code=EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(
            [f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")], code=EXIT_FAILURE
        )


# -- serve ----------------------------------------------------------------------------------


def _dev_secret(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev-jwt-secret"
    if path.is_file():
        existing = path.read_text().strip()
        if len(existing) >= 32:
            return existing
    secret = generate_dev_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


class ServerLock:
    """One server per SQLite data dir.  An OS lock: released when the process dies, so a
    killed server never leaves a stale lock behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the life of the server
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                [
                    f"another aisha-server is already serving this data dir ({holder}); "
                    f"stop it or use another --data-dir"
                ]
            ) from None
        self._handle = handle

    def record(self, text: str) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(text)
            self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["HOST"] = args.host
    if args.port is not None:
        overrides["PORT"] = args.port
    settings = _settings(args, **overrides)
    problem = settings.jwt_secret_problem()
    if problem is not None:
        if not args.dev:
            return _fail(
                [
                    problem,
                    "refusing to start without a strong JWT_SECRET "
                    "(use --dev for a local development server)",
                ]
            )
        settings = settings.model_copy(update={"JWT_SECRET": _dev_secret(settings.AISHA_DATA_DIR)})

    from aisha_server.logs import configure_logging

    configure_logging(settings.LOG_LEVEL)
    lock: ServerLock | None = None
    if not settings.is_postgres:
        lock = ServerLock(settings.AISHA_DATA_DIR / "server.lock")
        lock.acquire()
    try:
        if not args.no_migrate:
            from aisha_server.db import migrate

            migrate.upgrade(settings)
        return asyncio.run(_serve(settings, lock, dev=args.dev))
    finally:
        if lock is not None:
            lock.release()


async def _serve(settings: Settings, lock: ServerLock | None, *, dev: bool) -> int:
    from aiohttp import web

    from aisha_server.app import create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.HOST, settings.PORT, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        return _fail([f"cannot listen on {settings.HOST}:{settings.PORT}: {exc.strerror}"])
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else settings.PORT
    url = f"http://{settings.HOST}:{port}"
    if lock is not None:
        lock.record(f"pid {os.getpid()}, {url}")
    users = await _count_users(app)
    _announce(settings, url, port, users, dev=dev)
    # Everything built so far (models, metadata, schemas, the app) lives as long as the
    # process: move it out of the collector's sight so collections triggered by request
    # garbage stay cheap instead of re-walking the whole start-up heap.
    gc.collect()
    gc.freeze()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("aisha-server: shutting down", flush=True)
    await runner.cleanup()
    return 0


async def _count_users(app: Any) -> int:
    from sqlalchemy import func, select

    from aisha_server import keys
    from aisha_server.db.models import User

    return int(
        await app[keys.DB].run(
            lambda s: s.scalar(select(func.count()).select_from(User)) or 0,
            system=True,
            write=False,
        )
    )


def _announce(settings: Settings, url: str, port: int, users: int, *, dev: bool) -> None:
    backend = "PostgreSQL" if settings.is_postgres else f"SQLite at {settings.sqlite_path}"
    lines = [
        f"AiSHA server {__version__} listening on {url} (port {port})",
        f"  database: {backend}",
        f"  health:   {url}/health",
        f"  API docs: {url}/api-docs",
    ]
    if dev:
        lines.append("  mode:     development (generated JWT secret; not for production)")
    if users == 0:
        data_dir = f" --data-dir {settings.AISHA_DATA_DIR}" if not settings.is_postgres else ""
        lines += [
            "  No users yet. Create the first superadmin, then log in with its email and password:",
            f"    aisha-server create-superadmin{data_dir}",
        ]
    else:
        lines.append(f'  Log in: POST {url}/api/auth/login with {{"email": ..., "password": ...}}')
    print("\n".join(lines), flush=True)


# -- config ---------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    from aisha_server.config import describe, env_example, markdown_table

    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    if args.example:
        sys.stdout.write(env_example())
        return 0
    settings = _settings(args)
    width = max(len(name) for name, _ in describe(settings))
    for name, value in describe(settings):
        print(f"{name.ljust(width)}  {value}")
    problem = settings.jwt_secret_problem()
    if problem is not None:
        print(f"warning: {problem} (serve will refuse to start without --dev)", file=sys.stderr)
    return 0


# -- migrate --------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from aisha_server.db import migrate

    settings = _settings(args)
    if args.downgrade:
        if args.revision == "head":
            return _fail(["--downgrade needs a target revision (e.g. base)"])
        migrate.downgrade(settings, args.revision)
    else:
        migrate.upgrade(settings, args.revision)
    where = "PostgreSQL" if settings.is_postgres else str(settings.sqlite_path)
    print(f"database at {where} is at revision {args.revision}")
    return 0


# -- create-superadmin / create-tenant -----------------------------------------------------


def _prompt(label: str, value: str | None, *, secret: bool = False) -> str:
    if value:
        return value
    if not sys.stdin.isatty() and not secret:
        line = sys.stdin.readline()
        if not line:
            raise ConfigError([f"{label}: no value given"])
        return line.strip()
    if secret:
        if not sys.stdin.isatty():
            line = sys.stdin.readline()
            if not line:
                raise ConfigError([f"{label}: no value given"])
            return line.rstrip("\n")
        first = getpass.getpass(f"{label}: ")
        again = getpass.getpass(f"{label} (again): ")
        if first != again:
            raise ConfigError(["the passwords do not match"])
        return first
    return input(f"{label}: ").strip()


async def _with_app(settings: Settings, work: Callable[[Any], Any]) -> Any:
    """Build the same object graph as `serve` (without listening) and run `work` on it."""
    from aisha_server.app import create_app

    app = create_app(settings)
    ctx = app.cleanup_ctx
    await ctx._on_startup(app)
    try:
        return await work(app)
    finally:
        await ctx._on_cleanup(app)


def _offline_settings(args: argparse.Namespace) -> Settings:
    settings = _settings(args)
    if not settings.JWT_SECRET:
        # no tokens are issued by these commands; a throwaway secret satisfies create_app
        settings = settings.model_copy(update={"JWT_SECRET": generate_dev_secret()})
    from aisha_server.db import migrate

    migrate.upgrade(settings)
    return settings


def cmd_create_superadmin(args: argparse.Namespace) -> int:
    settings = _offline_settings(args)
    email = _prompt("Email", args.email)
    password = _prompt(
        "Password", args.password or os.environ.get("AISHA_SUPERADMIN_PASSWORD"), secret=True
    )
    first = _prompt("First Name", args.first_name)
    last = _prompt("Last Name", args.last_name)

    async def work(app: Any) -> Any:
        from aisha_server import keys

        return await app[keys.USER_SERVICE].create_superadmin(
            email=email, password=password, first_name=first, last_name=last
        )

    user = asyncio.run(_with_app(settings, work))
    print(f"superadmin {user.email} created (id {user.id})")
    return 0


def cmd_create_tenant(args: argparse.Namespace) -> int:
    settings = _offline_settings(args)

    async def work(app: Any) -> Any:
        from aisha_server import keys

        return await app[keys.TENANT_SERVICE].create_from_cli(
            name=args.name,
            slug=args.slug,
            settings={
                "timezone": args.timezone,
                "currency": args.currency,
                "date_format": args.date_format,
            },
        )

    tenant = asyncio.run(_with_app(settings, work))
    print(f"tenant {tenant.name!r} created: id {tenant.id}, slug {tenant.slug}")
    return 0


def cmd_care(args: argparse.Namespace) -> int:
    """`care scan --once [--tenant]`: one scheduled scan, its report as JSON on stdout."""
    settings = _offline_settings(args).model_copy(update={"CARE_WORKER_ENABLED": False})

    async def work(app: Any) -> Any:
        from aisha_server import keys

        tenant_id = None
        if args.tenant:
            tenant_id = await app[keys.TENANT_DIRECTORY].resolve(args.tenant)
        report = await app[keys.CARE_SERVICE].scan(tenant_id=tenant_id, rescan=args.rescan)
        return report.as_dict()

    import orjson

    report = asyncio.run(_with_app(settings, work))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 1 if report["errors"] else 0
