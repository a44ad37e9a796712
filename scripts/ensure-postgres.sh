#!/usr/bin/env bash
# Make sure the local PostgreSQL accepts connections on 127.0.0.1:5432; start (or install and
# start) it when it does not.  With AISHA_REQUIRE_POSTGRES=1 a failure here is fatal; without
# it the PostgreSQL half of the tests is skipped with a visible reason.
set -uo pipefail

ready() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
fail() {
    echo "[postgres] $*" >&2
    if [ "${AISHA_REQUIRE_POSTGRES:-0}" = "1" ]; then exit 1; fi
    exit 0
}

ready && { echo "[postgres] running"; exit 0; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    [ "${AISHA_REQUIRE_POSTGRES:-0}" = "1" ] || fail "not installed; PostgreSQL tests will be skipped"
    echo "[postgres] installing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql || fail "could not install"
fi
version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
[ -n "$version" ] || fail "no cluster found under /etc/postgresql"
echo "[postgres] starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 || true
for _ in $(seq 1 30); do ready && break; sleep 1; done
ready || fail "did not come up on 127.0.0.1:5432"
# The tests connect as postgres over TCP without a password (trust), as on the CI machines.
echo "[postgres] running"
