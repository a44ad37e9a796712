"""Run Alembic migrations programmatically: the only way a schema is created."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from aisha_server.config import Settings


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
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["database_url"] = url
    cfg.attributes["app_role"] = app_role
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(
        alembic_config(database_url(settings), app_role=settings.AISHA_DB_APP_ROLE), revision
    )


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(
        alembic_config(database_url(settings), app_role=settings.AISHA_DB_APP_ROLE), revision
    )


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()
