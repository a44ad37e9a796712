#!/usr/bin/env bash
# The run command: set everything up, then start AiSHA.  Until the desktop console lands this
# starts the headless server on the embedded SQLite with a generated development secret.
# Extra arguments go to `aisha-server serve` (e.g. --port 0, --data-dir DIR, --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh server,postgres
exec .venv/bin/aisha-server serve --dev "$@"
