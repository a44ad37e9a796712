#!/usr/bin/env bash
# The run command: set everything up, then start the AiSHA desktop console, which starts its
# bundled server (embedded SQLite in the user data dir) and asks for the first organisation
# and administrator on first run.  Extra arguments go to `aisha` (e.g. --data-dir DIR).
#   scripts/run.sh --server [ARGS]   the headless server instead (`aisha-server serve --dev`,
#                                    extra arguments to it: --port 0, --host 0.0.0.0, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--server" ]; then
    shift
    scripts/bootstrap.sh server,postgres
    exec .venv/bin/aisha-server serve --dev "$@"
fi
scripts/bootstrap.sh server,postgres,desktop
if [ ! -x .venv/bin/aisha ]; then  # an install from before the console's entry point
    .venv/bin/python -m pip install -q -e ".[server,postgres,desktop]"
fi
exec .venv/bin/aisha "$@"
