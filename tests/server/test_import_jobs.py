"""Background imports (`background=true`, /api/import-jobs/<id>), on both backends: the job's
progress and report, a failed job's error in the API's shape, refusals before any job starts,
only the starter sees a job, and a cancelled job (by its starter or by the server stopping)
leaves nothing written, even after chunks of it were."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.db.models import Contact
from aisha_server.db.models.sync import SyncChange
from aisha_server.errors import Conflict
from aisha_server.services import record_io
from aisha_server.services.import_jobs import ImportJob, ImportJobs
from aisha_server.services.record_io import ImportOptions
from tests.server.test_record_io import Team, listed, team, upload

__all__ = ["team"]


async def poll(client: Any, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """The job once it has ended (the client's loop: GET until it is no longer running)."""
    for _ in range(600):
        resp = await client.get(f"/api/import-jobs/{job_id}", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        if body["data"]["status"] != "running":
            return dict(body["data"])
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not end")


async def stored(client: Any, team: Team) -> tuple[int, int]:
    """(contacts, contacts' change-log entries) of the team's tenant."""
    tenant = team.tenant.id

    def count(session: Session) -> tuple[int, int]:
        contacts = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant)
        )
        logged = session.scalar(
            select(func.count())
            .select_from(SyncChange)
            .where(SyncChange.tenant_id == tenant, SyncChange.entity == "contacts")
        )
        return int(contacts or 0), int(logged or 0)

    result: tuple[int, int] = await client.app[keys.DB].run(
        count, tenant_id=team.tenant.id, write=False
    )
    return result


async def test_a_background_import_reports_progress_and_its_report(client: Any, team: Team) -> None:
    text = "first_name,last_name,email\nAda,L,ada@x.io\nBob,M,bob@x.io\nCy,N,\n"
    status, body = await upload(client, "contacts", text, team.admin, background=True)
    assert status == 202, body
    job = body["data"]
    assert job["status"] in ("running", "done") and job["entity"] == "contacts"
    assert job["dry_run"] is False and uuid.UUID(job["id"])
    ended = await poll(client, job["id"], team.admin)
    assert ended["status"] == "done" and ended["finished_at"]
    assert ended["rows"] == ended["checked"] == 3
    report = ended["report"]
    assert report["totals"] == {"rows": 3, "created": 3, "updated": 0, "skipped": 0, "errors": 0}
    assert sorted(r["first_name"] for r in await listed(client, "contacts", team.admin)) == [
        "Ada", "Bob", "Cy"
    ]  # fmt: skip
    assert [r["id"] for r in report["rows"]] == [
        r["id"] for r in sorted(await listed(client, "contacts", team.admin),
                                key=lambda r: r["first_name"])
    ]  # fmt: skip

    # only its starter sees it; anyone else is told there is no such job
    for headers in (team.manager, team.outsider):
        resp = await client.get(f"/api/import-jobs/{job['id']}", headers=headers)
        assert resp.status == 404
        resp = await client.delete(f"/api/import-jobs/{job['id']}", headers=headers)
        assert resp.status == 404
    assert (await client.get(f"/api/import-jobs/{uuid.uuid4()}", headers=team.admin)).status == 404
    assert (await client.get("/api/import-jobs/nope", headers=team.admin)).status == 400
    assert (await client.get(f"/api/import-jobs/{job['id']}")).status == 401
    # cancelling a job that has ended changes nothing
    resp = await client.delete(f"/api/import-jobs/{job['id']}", headers=team.admin)
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "done"
    assert (await stored(client, team))[0] == 3

    # a dry run as a job: a report, nothing written
    status, body = await upload(client, "contacts", "first_name\nDi\n", team.admin,
                                background=True, dry_run=True)  # fmt: skip
    ended = await poll(client, body["data"]["id"], team.admin)
    assert ended["dry_run"] is True and ended["report"]["totals"]["created"] == 1
    assert (await stored(client, team))[0] == 3


async def test_a_failing_background_import_reports_its_error_and_writes_nothing(
    client: Any, team: Team
) -> None:
    text = "first_name,email\nAda,ada@x.io\nBob,not-an-email\n"
    status, body = await upload(client, "contacts", text, team.admin, background=True)
    assert status == 202, body
    ended = await poll(client, body["data"]["id"], team.admin)
    assert ended["status"] == "failed" and "report" not in ended
    error = ended["error"]
    assert error["status"] == 422 and error["code"] == "import_rejected"
    assert [d["row"] for d in error["details"]] == [2]
    assert await stored(client, team) == (0, 0)

    # a malformed file fails the job the same way
    status, body = await upload(client, "contacts", b"first_name\n\xff\xfe\x00bad", team.admin,
                                background=True)  # fmt: skip
    assert status == 202, body
    ended = await poll(client, body["data"]["id"], team.admin)
    assert ended["status"] == "failed" and ended["error"]["status"] in (400, 422)
    assert await stored(client, team) == (0, 0)


async def test_refusals_come_before_any_job(client: Any, team: Team) -> None:
    status, body = await upload(client, "contacts", "first_name\nA\n", team.support,
                                background=True)  # fmt: skip
    assert status == 403, body
    status, body = await upload(client, "contacts", "first_name\nA\n", team.admin,
                                background=True, mode="merge")  # fmt: skip
    assert status == 422, body
    status, body = await upload(client, "notes", "title\nA\n", team.admin,
                                background=True, mode="upsert", match="email")  # fmt: skip
    assert status == 422 and body["code"] == "bad_match", body
    status, body = await upload(client, "contacts", "first_name\nA\n", team.admin,
                                background="sometimes")  # fmt: skip
    assert status == 422, body
    assert await stored(client, team) == (0, 0)


async def _start_tripping(
    client: Any, team: Team, data: bytes, trip_at: int
) -> tuple[ImportJobs, ImportJob]:
    """A real background import whose cancel is asked for once `trip_at` rows are checked."""
    token = team.admin["Authorization"].split()[1]
    who = await client.app[keys.AUTH_GATE].principal_for_token(token)
    service = client.app[keys.RECORD_IO_SERVICE]
    jobs = client.app[keys.IMPORT_JOBS]
    started: list[ImportJob] = []

    def run(progress: Any) -> Any:
        def tripping(checked: int, rows: int) -> None:
            if checked >= trip_at:
                started[0].cancel_requested = True
            progress(checked, rows)

        return service.import_csv(who, team.tenant.id, "contacts", data, ImportOptions(),
                                  tripping)  # fmt: skip

    job = jobs.start(who, team.tenant.id, "contacts", False, run)
    started.append(job)
    return jobs, job


async def test_a_cancelled_import_rolls_back_the_chunks_it_wrote(
    client: Any, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with the worker pool, chunks of 1,000 rows are written as they come back and progress
    # is reported after each: the cancel lands after the first chunk is in the transaction
    # (one CPU: no pool, and the cancel lands while the rows are checked)
    monkeypatch.setattr(record_io, "PARALLEL_CHUNK", 1_000)
    data = ("first_name,email\n" + "".join(f"N{i},n{i}@x.io\n" for i in range(3_500))).encode()
    _, job = await _start_tripping(client, team, data, trip_at=1_000)
    assert job.task is not None
    await asyncio.wait({job.task})
    assert job.status == "cancelled" and job.report is None
    assert 1_000 <= job.checked < 3_500 or job.checked == 0
    assert await stored(client, team) == (0, 0)
    # and the same file imports whole afterwards
    _, again = await _start_tripping(client, team, data, trip_at=10**9)
    assert again.task is not None
    await asyncio.wait({again.task})
    assert again.status == "done" and again.report is not None
    assert again.report["totals"]["created"] == 3_500


async def test_cancel_over_http_and_the_server_stopping(client: Any, team: Team) -> None:
    jobs: ImportJobs = client.app[keys.IMPORT_JOBS]
    data = ("first_name\n" + "".join(f"N{i}\n" for i in range(3_000))).encode()
    # a running job cancelled by its starter: DELETE answers once it has rolled back
    _, job = await _start_tripping(client, team, data, trip_at=10**9)
    job.cancel_requested = True  # as DELETE does, before the job reaches its first report
    resp = await client.delete(f"/api/import-jobs/{job.id}", headers=team.admin)
    body = await resp.json()
    assert resp.status == 200 and body["data"]["status"] == "cancelled", body
    assert await stored(client, team) == (0, 0)

    # the server stopping: running jobs roll back, and no new one starts
    _, running = await _start_tripping(client, team, data, trip_at=10**9)
    await jobs.close()
    assert running.status == "cancelled"
    assert await stored(client, team) == (0, 0)
    with pytest.raises(Conflict):
        await _start_tripping(client, team, data, trip_at=10**9)


async def test_at_most_two_imports_run_per_tenant(client: Any, team: Team) -> None:
    jobs = ImportJobs()
    token = team.admin["Authorization"].split()[1]
    who = await client.app[keys.AUTH_GATE].principal_for_token(token)
    release = asyncio.Event()

    async def waits(_progress: Any) -> Any:
        await release.wait()
        return record_io.ImportReport([], False, "create")

    first = jobs.start(who, team.tenant.id, "contacts", False, waits)
    jobs.start(who, team.tenant.id, "contacts", False, waits)
    with pytest.raises(Conflict, match="2 imports are running"):
        jobs.start(who, team.tenant.id, "contacts", False, waits)
    jobs.start(who, team.other.id, "contacts", False, waits)  # another tenant's own count
    release.set()
    assert first.task is not None
    await asyncio.wait({first.task})
    assert first.status == "done" and first.report is not None
    jobs.start(who, team.tenant.id, "contacts", False, waits)  # a place is free again
    await jobs.close()
