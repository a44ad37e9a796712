#!/usr/bin/env bash
# Sets up everything AiSHA needs on a Debian/Ubuntu machine (as root, or with sudo), and is
# cheap to run again: system packages only when missing, the virtual environment only when
# pyproject.toml changed.  Usage: scripts/bootstrap.sh [extras]   (default: server,postgres)
set -euo pipefail

cd "$(dirname "$0")/.."
EXTRAS="${1:-server,postgres}"
VENV="${AISHA_VENV:-.venv}"
PYTHON="${AISHA_PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        say "need root for: $*"; return 1; fi
}

apt_install() {
    # Install the Debian packages given that are not installed yet.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing system packages ${missing[*]} and no apt-get: install them by hand"; return 1
    fi
    say "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "AiSHA needs Python 3.11 or newer; $("$PYTHON" --version) found"; exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
fi
case ",$EXTRAS," in
    *,desktop,*)
        # Qt's xcb/offscreen platform plugins need these shared libraries.
        apt_install libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.aisha-installed"
HASH="$(sha256sum pyproject.toml | cut -c1-16)"
# Reinstall only when pyproject.toml changed or an extra is wanted that is not installed yet
# (the run and test commands ask for different extras; neither undoes the other's).
installed_extras=""
if [ -f "$STAMP" ] && [ "$(cut -d' ' -f1 "$STAMP")" = "$HASH" ]; then
    installed_extras="$(cut -d' ' -f2 "$STAMP")"
fi
missing=0
for extra in ${EXTRAS//,/ }; do
    case ",$installed_extras," in *,"$extra",*) ;; *) missing=1 ;; esac
done
if [ "$missing" = 1 ]; then
    all="$(printf '%s\n' ${installed_extras//,/ } ${EXTRAS//,/ } | sort -u | paste -sd, -)"
    say "installing Python dependencies (extras: $all)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$all]"
    echo "$HASH $all" > "$STAMP"
fi
