"""`aisha-server` as a real process: help, configuration errors, serve, bootstrap commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_JWT_SECRET

COMMANDS = ["serve", "migrate", "create-superadmin", "create-tenant", "config"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISHA_", "JWT_", "DATABASE_"))}
    env.update(extra)
    return env


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aisha_server", *args],
        capture_output=True, text=True, env=env or cli_env(), input=input, cwd=cwd, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert f"usage: aisha-server {command}" in result.stdout
    assert "--data-dir" in result.stdout


def test_invalid_configuration_is_one_line_per_problem(tmp_path: Path) -> None:
    env = cli_env(RATE_LIMIT_MAX="many", CARE_POLICY_MODE="loose", JWT_SECRET="x" * 40)
    result = run_cli("serve", "--data-dir", str(tmp_path), env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("aisha-server: ")
    assert any("RATE_LIMIT_MAX" in line for line in lines)
    assert any("CARE_POLICY_MODE" in line for line in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("secret", [None, "short", "your-secure-random-string-here"])
def test_serve_refuses_weak_jwt_secret_without_dev(secret: str | None, tmp_path: Path) -> None:
    env = cli_env(**({"JWT_SECRET": secret} if secret else {}))
    result = run_cli("serve", "--data-dir", str(tmp_path), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "JWT_SECRET" in result.stderr
    assert "--dev" in result.stderr
    assert "Traceback" not in result.stderr


class Server:
    def __init__(self, process: subprocess.Popen[str], url: str, banner: str) -> None:
        self.process = process
        self.url = url
        self.banner = banner

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=20)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code

    def get(self, path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return resp.status, resp.read()


def start_server(*args: str, env: dict[str, str], cwd: Path) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "aisha_server", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
    )  # fmt: skip
    assert process.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line)
        match = re.search(r"listening on (http://\S+) \(port (\d+)\)", line)
        if match:
            # the rest of the banner follows right away
            for _ in range(8):
                banner.append(process.stdout.readline())
                if "create-superadmin" in banner[-1] or "Log in:" in banner[-1]:
                    break
            return Server(process, match.group(1), "".join(banner))
    process.kill()
    process.wait()
    process.stdout.close()
    raise AssertionError("server did not start:\n" + "".join(banner))


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(
        "--dev", "--data-dir", str(tmp_path / "data"), env=cli_env(), cwd=tmp_path
    )
    yield server
    server.stop(signal.SIGKILL)


def test_serve_dev_picks_a_port_and_says_how_to_log_in(dev_server: Server, tmp_path: Path) -> None:
    assert "port" in dev_server.banner
    assert "create-superadmin" in dev_server.banner
    status, body = dev_server.get("/health")
    assert status == 200 and b'"ok"' in body
    # a second server on the same SQLite data dir is refused, with a reason
    second = run_cli("serve", "--dev", "--port", "0", "--data-dir", str(tmp_path / "data"),
                     cwd=tmp_path)  # fmt: skip
    assert second.returncode == 2
    assert "already serving this data dir" in second.stderr
    # SIGTERM stops it cleanly
    assert dev_server.stop(signal.SIGTERM) == 0
    # the dev secret is kept for the next start, private to the owner
    secret = tmp_path / "data" / "dev-jwt-secret"
    assert secret.stat().st_mode & 0o077 == 0


def test_killed_server_leaves_no_stale_lock(tmp_path: Path) -> None:
    env = cli_env()
    first = start_server("--dev", "--data-dir", str(tmp_path / "d"), env=env, cwd=tmp_path)
    first.stop(signal.SIGKILL)
    again = start_server("--dev", "--data-dir", str(tmp_path / "d"), env=env, cwd=tmp_path)
    try:
        assert again.get("/health")[0] == 200
    finally:
        again.stop()


def test_migrate_and_bootstrap_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = cli_env(JWT_SECRET=TEST_JWT_SECRET)
    migrated = run_cli("migrate", "--data-dir", data, env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    tenant = run_cli("create-tenant", "--data-dir", data, "--name", "Acme Corporation",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert tenant.returncode == 0, tenant.stderr
    assert "acme-corporation" in tenant.stdout
    admin = run_cli("create-superadmin", "--data-dir", data, "--email", "Admin@Example.com",
                    "--password", "Sup3r!Secret", "--first-name", "System",
                    "--last-name", "Administrator", env=env, cwd=tmp_path)  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    assert "admin@example.com" in admin.stdout
    # prompts (guide 2.5 Option 1) answered on stdin
    prompted = run_cli("create-superadmin", "--data-dir", data, env=env, cwd=tmp_path,
                       input="second@example.com\nAn0ther!Secret\nSecond\nAdmin\n")  # fmt: skip
    assert prompted.returncode == 0, prompted.stderr
    duplicate = run_cli("create-superadmin", "--data-dir", data, "--email", "admin@example.com",
                        "--password", "Sup3r!Secret", "--first-name", "A", "--last-name", "B",
                        env=env, cwd=tmp_path)  # fmt: skip
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr
    weak = run_cli("create-superadmin", "--data-dir", data, "--email", "weak@example.com",
                   "--password", "password", "--first-name", "A", "--last-name", "B",
                   env=env, cwd=tmp_path)  # fmt: skip
    assert weak.returncode == 1
    assert "password" in weak.stderr
    # the server started on that data dir now says how to log in
    server = start_server("--data-dir", data, env=env, cwd=tmp_path)
    try:
        assert "Log in:" in server.banner
    finally:
        server.stop()


def test_commands_read_dotenv_from_data_dir_and_working_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".env").write_text("RATE_LIMIT_MAX=7\nJWT_SECRET=" + "s" * 40 + "\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text("AUTH_RATE_LIMIT_MAX=3\n")
    shown = run_cli("config", "--data-dir", str(data), cwd=work)
    assert shown.returncode == 0, shown.stderr
    values = {}
    for line in shown.stdout.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    assert values["RATE_LIMIT_MAX"].strip() == "7"
    assert values["AUTH_RATE_LIMIT_MAX"].strip() == "3"
    assert values["JWT_SECRET"].strip() == "***"
    assert "warning" not in shown.stderr
    # the same .env reaches serve: a broken value there stops it with one line
    (data / ".env").write_text("RATE_LIMIT_MAX=seven\n")
    broken = run_cli("serve", "--data-dir", str(data), cwd=work)
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "RATE_LIMIT_MAX" in broken.stderr


@pytest.mark.parametrize("backend", ["postgres"])
def test_serve_on_postgresql(backend: str, database_url: str, tmp_path: Path) -> None:
    """DATABASE_URL in the guide's postgresql:// form: serve migrates (already at head here)
    and answers with the database up."""
    env = cli_env(DATABASE_URL=database_url, JWT_SECRET=TEST_JWT_SECRET)
    server = start_server("--data-dir", str(tmp_path), env=env, cwd=tmp_path)
    try:
        assert "database: PostgreSQL" in server.banner
        status, body = server.get("/api/status")
        assert status == 200
        assert b'"database":"ok"' in body and b'"database_backend":"postgresql"' in body
    finally:
        assert server.stop() == 0
