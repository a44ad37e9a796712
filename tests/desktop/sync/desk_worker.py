"""A desktop sync process for the fault tests: logs in, opens a replica file, and syncs in a
loop until it is killed.  `python -m tests.desktop.sync.desk_worker URL REPLICA EMAIL PASSWORD
PUSH_BATCH PAGE_SIZE`."""

from __future__ import annotations

import asyncio
import sys

from aisha_desktop.client import ApiClient
from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine


async def main(url: str, path: str, email: str, password: str, batch: int, page: int) -> None:
    async with ApiClient(url, timeout=10) as api:
        await api.login(email, password)
        replica = Replica(path)
        engine = SyncEngine(api, replica, push_batch=batch, page_size=page)
        while True:
            await engine.sync_now()
            await asyncio.sleep(0.01)


if __name__ == "__main__":
    url, path, email, password, batch, page = sys.argv[1:7]
    asyncio.run(main(url, path, email, password, int(batch), int(page)))
