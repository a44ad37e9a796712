#!/usr/bin/env bash
# The test command: set everything up (virtual environment, dependencies, a running
# PostgreSQL), then lint, type-check and run the whole suite on SQLite and PostgreSQL.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh server,postgres,desktop,dev
scripts/ensure-postgres.sh

export AISHA_TEST_POSTGRES_URL="${AISHA_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
echo "[test] ruff"
.venv/bin/ruff check aisha_server aisha_desktop tests migrations
.venv/bin/ruff format --check aisha_server aisha_desktop tests migrations
echo "[test] mypy --strict"
.venv/bin/mypy aisha_server aisha_desktop
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
