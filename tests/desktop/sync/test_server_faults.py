"""The server process killed (SIGKILL) in the middle of a push: after it restarts, the
replica pushes its outbox again and every record exists exactly once — nothing lost, nothing
applied twice (the push is one transaction, and retries are answered by mutation id)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aisha_desktop.client import ApiClient, OfflineError
from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine
from aisha_server.app import create_app
from aisha_server.config import load_settings
from aisha_server.db import migrate
from tests.conftest import TEST_JWT_SECRET, free_port
from tests.factories import SeededUser, make_tenant, make_user

ROOT = Path(__file__).resolve().parents[3]


class ServerProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AISHA_")},
            "PYTHONPATH": str(ROOT),
            "JWT_SECRET": TEST_JWT_SECRET,
            "RATE_LIMIT_MAX": "1000000",
            "AUTH_RATE_LIMIT_MAX": "1000000",
            "LOG_LEVEL": "warn",
        }
        env.pop("DATABASE_URL", None)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aisha_server", "serve", "--port", str(self.port),
            "--data-dir", str(self.data_dir), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with ApiClient(self.url, timeout=2) as probe:
            for _ in range(300):
                try:
                    await probe.health()
                    return
                except OfflineError:
                    await asyncio.sleep(0.05)
        raise RuntimeError("the server did not come up")

    async def kill(self) -> None:
        assert self.process is not None and self.process.returncode is None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, SeededUser]]:
    data_dir = tmp_path / "server"
    settings = load_settings(data_dir=data_dir, overrides={"JWT_SECRET": TEST_JWT_SECRET})
    await asyncio.to_thread(migrate.upgrade, settings)
    app = create_app(settings)
    from aisha_server import keys

    try:
        tenant = await make_tenant(app, "Crash Co")
        admin = await make_user(app, role="admin", tenant_id=tenant.id)
    finally:
        await app[keys.DB].close()
        app[keys.PASSWORDS].close()
    process = ServerProcess(data_dir, free_port())
    await process.start()
    try:
        yield process, admin
    finally:
        await process.stop()


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
async def test_server_killed_in_the_middle_of_a_push(
    server: tuple[ServerProcess, SeededUser], tmp_path: Path, delay: float
) -> None:
    process, admin = server
    names = [f"Crash {n:04d}" for n in range(600)]
    async with ApiClient(process.url, timeout=30) as api:
        await api.login(admin.email, admin.password)
        me = await api.me()
        assert me.user is not None
        replica = Replica.open(tmp_path / "desk", process.url, str(me.tenant_id), me.user.id)
        engine = SyncEngine(api, replica, use_stream=False)
        try:
            for name in names:
                await engine.create("contacts", {"first_name": name})
            pushing = asyncio.ensure_future(engine.push())
            await asyncio.sleep(delay)
            await process.kill()
            # cut off (the usual case), or done just before the kill
            with contextlib.suppress(OfflineError):
                await asyncio.wait_for(pushing, timeout=30)

            await process.start()
            await engine.sync_now()
            assert replica.pending_count() == 0
            stored: list[str] = []
            cursor = None
            while True:
                page = await api.list_records("contacts", limit=500, cursor=cursor)
                stored += [row["first_name"] for row in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(stored) == names  # each exactly once
            assert replica.count("contacts") == len(names)
            assert not replica.rejections()
        finally:
            replica.close()
