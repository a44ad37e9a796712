"""A desktop process killed (SIGKILL) in the middle of a pull and of a push: after a restart
nothing is duplicated, nothing is lost, and the cursor matches the rows."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine
from tests.desktop.sync.conftest import Live, Team, eventually

ROOT = Path(__file__).resolve().parents[3]


async def start_worker(
    live: Live, path: Path, team: Team, batch: int, page: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.desktop.sync.desk_worker", live.proxy.url, str(path),
        team.admin.email, team.admin.password, str(batch), str(page),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def kill(process: asyncio.subprocess.Process) -> None:
    assert process.returncode is None, "the worker ended by itself"
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert process.stderr is not None
    await process.stderr.read()


def rows_in_file(path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as raw:
        try:
            return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


async def test_killed_in_the_middle_of_a_pull(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    names = {f"Pulled {n:03d}" for n in range(150)}
    for name in sorted(names):
        await admin.create_record("accounts", {"name": name})
    path = live.tmp / "killed-pull.sqlite3"
    Replica(path).close()  # the schema exists before the worker starts
    worker = await start_worker(live, path, team, batch=50, page=2)  # many small pages
    await eventually(lambda: rows_in_file(path, "r_accounts") >= 20, timeout=30,
                     what="part of the snapshot")  # fmt: skip
    await kill(worker)

    replica = Replica(path)
    live.replicas.append(replica)
    held = replica.count("accounts")
    assert 20 <= held < 150  # killed half-way ...
    assert replica.cursor is not None  # ... with the cursor of the last page it applied
    engine = SyncEngine(await live.api(team.admin), replica)
    await engine.sync_now()  # resumes from that cursor
    rows = replica.query("accounts", limit=500).rows
    assert sorted(r.data["name"] for r in rows) == sorted(names)  # nothing twice, none lost


async def test_killed_in_the_middle_of_a_push(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    path = live.tmp / "killed-push.sqlite3"
    with Replica(path) as replica:
        for n in range(120):
            replica.local_create("accounts", {"name": f"Pushed {n:03d}"})
    worker = await start_worker(live, path, team, batch=3, page=500)

    async def on_server() -> bool:
        page = await admin.list_records("accounts", limit=200)
        return len(page.items) >= 15

    await eventually(on_server, timeout=30, what="part of the outbox pushed")
    await kill(worker)

    replica = Replica(path)
    live.replicas.append(replica)
    left = replica.pending_count()
    assert 0 < left < 120
    engine = SyncEngine(await live.api(team.admin), replica)
    await engine.sync_now()
    assert replica.pending_count() == 0 and replica.rejections() == []
    server = sorted(a["name"] for a in (await admin.list_records("accounts", limit=200)).items)
    assert server == [f"Pushed {n:03d}" for n in range(120)]  # each once
    assert sorted(r.data["name"] for r in replica.query("accounts", limit=200).rows) == server
