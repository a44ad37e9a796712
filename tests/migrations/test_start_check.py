"""A server start on an SQLite file already at the head revision does not load Alembic (the
bundled server's start is on the console's cold-start path); any other state migrates."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from aisha_server.config import load_settings
from aisha_server.db import migrate
from tests.conftest import TEST_JWT_SECRET

CHECK = """
import sys
from pathlib import Path
from aisha_server.config import load_settings
from aisha_server.db import migrate
migrate.upgrade(load_settings(data_dir=Path(sys.argv[1]), overrides={"JWT_SECRET": sys.argv[2]}))
print("alembic loaded" if "alembic" in sys.modules else "alembic not loaded")
"""


def version(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        rows = {r[0] for r in db.execute("SELECT version_num FROM alembic_version")}
    db.close()
    return rows


def start(data_dir: Path) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK, str(data_dir), TEST_JWT_SECRET],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def test_the_heads_read_from_the_files_are_alembics() -> None:
    assert migrate.script_heads() == {migrate.head_revision()}


def test_start_checks_the_revision_and_migrates_only_when_behind(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, overrides={"JWT_SECRET": TEST_JWT_SECRET})
    assert start(tmp_path) == "alembic loaded"  # a new file: created by the migrations
    head = migrate.head_revision()
    assert head is not None and version(settings.sqlite_path) == {head}
    assert start(tmp_path) == "alembic not loaded"  # at head: one query
    migrate.downgrade(settings, "0004")
    assert version(settings.sqlite_path) == {"0004"}
    assert start(tmp_path) == "alembic loaded"  # behind: migrated
    assert version(settings.sqlite_path) == {head}
    # a file that is not an AiSHA database is left to Alembic (which explains the problem)
    with sqlite3.connect(settings.sqlite_path) as db:
        db.execute("DROP TABLE alembic_version")
    db.close()
    assert not migrate._sqlite_at(settings, migrate.script_heads())
