"""The bundled server with real processes: start and health, reuse by a second console,
stop, a SIGKILLed console or keeper leaving no server behind, and a failing start explained
with the server's own output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aisha_desktop.local_server import (
    LocalServer,
    LocalServerError,
    ensure_secret,
    log_tail,
    running_server,
)

pytestmark = pytest.mark.timeout(180)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{url}/health")
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json()["status"] == "ok"


async def test_start_health_stop_and_start_again(tmp_path: Path) -> None:
    # the console's own server configuration must not reach the bundled server
    env = dict(os.environ, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", PORT="1")
    first = LocalServer(tmp_path, env=env)
    url = await first.start()
    try:
        assert first.started
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":1")
        assert await healthy(url)
        assert first.server_pid is not None and alive(first.server_pid)
        assert (tmp_path / "aisha.db").is_file()  # the embedded SQLite in the data dir
        secret = (tmp_path / ".env").read_text()
        assert "JWT_SECRET=" in secret
        assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    finally:
        await first.stop()
    assert await gone(first.server_pid)
    assert running_server(tmp_path) is None
    assert not await healthy(url)
    assert any("shutting down" in line for line in log_tail(tmp_path))

    again = LocalServer(tmp_path, env=env)
    async with again:
        assert again.started and again.server_pid != first.server_pid
        assert await healthy(again.url or "")
        # the secret made on the first start is kept (logins survive restarts)
        assert (tmp_path / ".env").read_text() == secret


async def test_second_console_reuses_and_last_one_out_stops_it(tmp_path: Path) -> None:
    one, two = LocalServer(tmp_path), LocalServer(tmp_path)
    url = await one.start()
    assert await two.start() == url
    assert one.started and not two.started
    assert two.server_pid == one.server_pid is not None
    pid = one.server_pid

    await one.stop()  # the console that started it leaves; the other still uses it
    assert alive(pid) and await healthy(url)

    three = LocalServer(tmp_path)
    assert await three.start() == url and not three.started
    await two.stop()
    assert alive(pid) and await healthy(url)
    await three.stop()  # the last one out: the server goes
    assert await gone(pid)
    assert running_server(tmp_path) is None


async def test_prestart_begins_the_server_and_start_waits_for_it(tmp_path: Path) -> None:
    # `aisha` calls prestart() before importing Qt, so the server starts meanwhile
    one, two = LocalServer(tmp_path), LocalServer(tmp_path)
    assert one.prestart() and one.started and one.keeper_pid is not None
    assert not one.prestart()  # once
    assert not two.prestart()  # another console deciding meanwhile does nothing early...
    waiting = asyncio.ensure_future(two.start())  # ...and its start waits for ours
    await asyncio.sleep(0.3)
    assert not waiting.done()
    url = await one.start()
    assert await healthy(url) and await waiting == url and not two.started
    pid = one.server_pid
    assert pid is not None and two.server_pid == pid
    await one.stop()
    assert alive(pid)
    await two.stop()
    assert await gone(pid)
    # a server that runs already is reused in start(), not in prestart()
    async with LocalServer(tmp_path) as running:
        late = LocalServer(tmp_path)
        assert not late.prestart()
        assert await late.start() == running.url and not late.started
        await late.stop()


async def test_prestarted_server_stops_when_the_console_never_waited(tmp_path: Path) -> None:
    # start-up failed before start() (Qt missing, say): stop() still lets the server go
    console = LocalServer(tmp_path)
    assert console.prestart()
    found = None
    deadline = time.monotonic() + 30
    while found is None or found.url is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
        found = running_server(tmp_path)
    await console.stop()
    assert await gone(found.pid)
    assert running_server(tmp_path) is None
    async with LocalServer(tmp_path) as again:  # no stale lock in the way
        assert again.started


CONSOLE = """
import asyncio, json, sys, time
from pathlib import Path
from aisha_desktop.local_server import LocalServer

async def main():
    server = LocalServer(Path(sys.argv[1]))
    await server.start()
    print(json.dumps({"url": server.url, "server": server.server_pid,
                      "keeper": server.keeper_pid}), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def console(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the console process did not start its server"
    return proc, json.loads(line)


async def test_killed_console_leaves_no_server_and_no_stale_lock(tmp_path: Path) -> None:
    proc, info = await asyncio.to_thread(console, tmp_path)
    server = info["server"]
    assert isinstance(server, int) and alive(server)
    assert await healthy(str(info["url"]))

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    assert await gone(server), "the bundled server outlived its killed console"

    # nothing stale: the next console starts its own server on the same data dir
    async with LocalServer(tmp_path) as fresh:
        assert fresh.started and await healthy(fresh.url or "")


async def test_killed_console_keeps_server_while_another_uses_it(tmp_path: Path) -> None:
    proc, info = await asyncio.to_thread(console, tmp_path)
    other = LocalServer(tmp_path)
    try:
        assert await other.start() == info["url"] and not other.started
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        await asyncio.sleep(0.5)
        assert alive(int(str(info["server"]))) and await healthy(str(info["url"]))
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
        await other.stop()
    assert await gone(int(str(info["server"])))


async def test_killed_keeper_takes_the_server_with_it(tmp_path: Path) -> None:
    server = LocalServer(tmp_path)
    await server.start()
    assert server.keeper_pid is not None and server.server_pid is not None
    pid = server.server_pid
    os.kill(server.keeper_pid, signal.SIGKILL)
    assert await gone(pid), "PR_SET_PDEATHSIG did not stop the server with its keeper"
    await server.stop()
    assert running_server(tmp_path) is None


async def test_failing_start_is_explained_with_the_server_output(tmp_path: Path) -> None:
    ensure_secret(tmp_path)
    env = tmp_path / ".env"
    env.write_text(env.read_text() + "RATE_LIMIT_MAX=lots\n")
    server = LocalServer(tmp_path, startup_timeout=60)
    with pytest.raises(LocalServerError) as raised:
        await server.start()
    text = str(raised.value)
    assert "stopped while starting (exit status 2)" in text
    assert "RATE_LIMIT_MAX" in text  # the server's own line saying what is wrong
    assert server.url is None and server.keeper_pid is None
    assert running_server(tmp_path) is None

    # fixed, the next start works
    (tmp_path / ".env").write_text(
        "\n".join(
            line
            for line in (tmp_path / ".env").read_text().splitlines()
            if "RATE_LIMIT_MAX" not in line
        )
        + "\n"
    )
    async with LocalServer(tmp_path) as fixed:
        assert await healthy(fixed.url or "")


async def test_server_that_never_listens_times_out(tmp_path: Path) -> None:
    # a "python" that sleeps instead of serving: the keeper runs, nothing ever listens
    fake = tmp_path / "python"
    fake.write_text(
        f"#!/bin/sh\n"
        f'if [ "$2" = "aisha_server" ]; then echo "pretending to start"; exec sleep 60; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    server = LocalServer(tmp_path / "data", startup_timeout=2, grace=1, python=str(fake))
    started = time.monotonic()
    with pytest.raises(LocalServerError) as raised:
        await server.start()
    assert time.monotonic() - started < 15
    assert "did not start listening within 2 s" in str(raised.value)
    assert "pretending to start" in str(raised.value)
    assert server.keeper_pid is None  # the keeper was stopped and reaped
