"""The scheduled C.A.R.E. checks (guide 13.4): one scan every `CARE_SCAN_INTERVAL_SECONDS`
while the server runs, switchable with `CARE_WORKER_ENABLED`.  Several server instances on
one PostgreSQL may all run it: each tenant's scan takes an advisory lock, so a tenant is
never scanned twice at once (services/care_scan.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from aisha_server import keys
from aisha_server.services.care import CareService

log = logging.getLogger("aisha.care")


async def run_scans(service: CareService, interval: float) -> None:
    """Until cancelled: wait one interval, scan, repeat (a failed scan is logged, not fatal)."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await service.scan()
        except Exception:
            log.exception("C.A.R.E. scheduled scan failed")
            continue
        summary = report.as_dict()
        log.info(
            "C.A.R.E. scan: %d tenants, %d escalations in %.2f s",
            len(report.tenants),
            summary["escalations"],
            report.seconds,
        )


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: logs the kill switch (13.2 `grep CARE_ENABLED`) and owns the scan loop."""
    settings = app[keys.SETTINGS]
    log.info(
        "C.A.R.E.: CARE_ENABLED=%s CARE_POLICY_MODE=%s CARE_WORKFLOW_TRIGGERS_ENABLED=%s "
        "CARE_WORKER_ENABLED=%s",
        str(settings.CARE_ENABLED).lower(),
        settings.CARE_POLICY_MODE.value,
        str(settings.CARE_WORKFLOW_TRIGGERS_ENABLED).lower(),
        str(settings.CARE_WORKER_ENABLED).lower(),
    )
    if not settings.CARE_WORKER_ENABLED:
        yield
        return
    task = asyncio.create_task(
        run_scans(app[keys.CARE_SERVICE], float(settings.CARE_SCAN_INTERVAL_SECONDS)),
        name="aisha-care-scan",
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
