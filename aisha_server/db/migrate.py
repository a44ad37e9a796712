"""Run Alembic migrations programmatically: the only way a schema is created.

Alembic (with Mako and Pygments) is imported only when there is work for it: a server
starting on an SQLite file that is already at the head revision checks that with one query
(part of the bundled server's start, which the console waits for)."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from aisha_server.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

_REVISION = re.compile(r"^revision(?:\s*:[^=\n]*)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:[\"']([^\"']+)[\"']|None)", re.M)


def migrations_dir() -> Path:
    """`migrations/` of a checkout, or the copy a wheel installs as `aisha_server/migrations`."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the migrations directory is missing from this installation")


def database_url(settings: Settings) -> str:
    if settings.is_postgres:
        return str(settings.DATABASE_URL)
    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.sqlite_path}"


def alembic_config(url: str, *, app_role: str = "aisha_app") -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["database_url"] = url
    cfg.attributes["app_role"] = app_role
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    if revision == "head" and not settings.is_postgres and _sqlite_at(settings, script_heads()):
        return
    from alembic import command

    command.upgrade(
        alembic_config(database_url(settings), app_role=settings.AISHA_DB_APP_ROLE), revision
    )


def downgrade(settings: Settings, revision: str) -> None:
    from alembic import command

    command.downgrade(
        alembic_config(database_url(settings), app_role=settings.AISHA_DB_APP_ROLE), revision
    )


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def script_heads() -> frozenset[str] | None:
    """The head revisions, read from the migration files' `revision`/`down_revision` lines
    (None when a file does not read that way: then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        text = path.read_text()
        revision, down = _REVISION.search(text), _DOWN.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    return frozenset(revisions - parents) or None


def _sqlite_at(settings: Settings, heads: frozenset[str] | None) -> bool:
    """The SQLite file exists and is at exactly `heads`."""
    path = settings.sqlite_path
    if heads is None or not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            current = {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error:
        return False
    return current == heads
