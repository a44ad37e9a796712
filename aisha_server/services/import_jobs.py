"""Background imports: a CSV import that runs as a job the client polls, instead of holding
its request open for as long as the import takes.

`POST /api/<entity>/import` with `background=true` checks the request as a plain import does
(the file's size, the options, the caller's right to import), starts the import and answers
202 with the job; `GET /api/import-jobs/<id>` tells how far it is (rows checked of the rows in
the file) and, once it has ended, its report or its error in the API's error shape;
`DELETE /api/import-jobs/<id>` cancels it, and since an import writes in one transaction a
cancelled import leaves nothing written.  Cancelling is cooperative: the import stops at its
next progress report (every 1,000 rows, and after every chunk of the worker pool) by raising
`ImportCancelled` inside its unit of work, which rolls the transaction back.  (Cancelling the
awaiting task instead would not do on SQLite: the unit runs on the writer thread, which would
go on and commit.)

Jobs live in the server's memory (the server is one process; DESIGN "Server"): a job that
ended is kept for `KEEP_SECONDS`, and a server stopping cancels the jobs still running, so
their transactions roll back.  Only the user (or API key) who started a job sees it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aisha_server.auth.principal import Principal
from aisha_server.db.base import utcnow
from aisha_server.errors import Conflict, DomainError, NotFound
from aisha_server.services.record_io import ImportReport

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600.0  # how long an ended job's report stays readable
SHUTDOWN_GRACE = 30.0  # seconds a stopping server waits for an import to roll back
MAX_RUNNING_PER_TENANT = 2  # imports write in one transaction: more would only queue

Status = Literal["running", "done", "failed", "cancelled"]
Progress = Callable[[int, int], None]  # (rows checked, rows in the file)
Run = Callable[[Progress], Awaitable[ImportReport]]


class ImportCancelled(Exception):
    """Raised inside a cancelled import's unit of work: its transaction rolls back."""


@dataclass
class ImportJob:
    id: uuid.UUID
    tenant_id: uuid.UUID
    owner: tuple[uuid.UUID | None, uuid.UUID | None]  # (user id, API key id) of its starter
    entity: str
    dry_run: bool
    created_at: datetime
    status: Status = "running"
    rows: int | None = None  # data rows in the file, once read
    checked: int = 0
    finished_at: datetime | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # {status, message, code, details} as the API sends
    ended: float | None = None  # monotonic time it ended
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def progress(self, checked: int, rows: int) -> None:
        """Called by the import as it goes (from the database thread on SQLite: plain
        assignments and reads, which the other threads see whole); stops a cancelled one."""
        if self.cancel_requested:
            raise ImportCancelled(str(self.id))
        self.rows = rows
        self.checked = checked

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(self.id),
            "entity": self.entity,
            "status": self.status,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "checked": self.checked,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
        if self.report is not None:
            body["report"] = self.report
        if self.error is not None:
            body["error"] = self.error
        return body


def _owner(actor: Principal) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    return (actor.user_id, actor.api_key_id)


class ImportJobs:
    """The server's import jobs: started, read, cancelled, and cancelled at shutdown."""

    def __init__(self, *, keep_seconds: float = KEEP_SECONDS) -> None:
        self._jobs: dict[uuid.UUID, ImportJob] = {}
        self._keep = keep_seconds
        self._closed = False

    def start(self, actor: Principal, tenant_id: uuid.UUID, entity: str, dry_run: bool,
              run: Run) -> ImportJob:  # fmt: skip
        """Start `run(progress)` as a job of `actor` in `tenant_id`."""
        self._forget_old()
        if self._closed:
            raise Conflict("The server is stopping: try the import again", code="shutting_down")
        running = sum(
            1 for j in self._jobs.values() if j.tenant_id == tenant_id and j.status == "running"
        )
        if running >= MAX_RUNNING_PER_TENANT:
            raise Conflict(
                f"{running} imports are running in this tenant: wait for one to end",
                code="too_many_imports",
            )
        job = ImportJob(uuid.uuid4(), tenant_id, _owner(actor), entity, dry_run, utcnow())
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, run), name=f"import-{job.id}")
        return job

    async def _run(self, job: ImportJob, run: Run) -> None:
        try:
            report = await run(job.progress)
        except ImportCancelled:
            self._end(job, "cancelled")
        except asyncio.CancelledError:
            self._end(job, "cancelled")
            raise
        except DomainError as exc:
            error: dict[str, Any] = {"status": exc.status, "message": exc.message,
                                     "code": exc.code}  # fmt: skip
            if exc.details is not None:
                error["details"] = exc.details
            job.error = error
            self._end(job, "failed")
        except Exception:
            log.exception("import job %s failed", job.id)
            job.error = {"status": 500, "message": "The import failed: see the server log",
                         "code": "internal_error"}  # fmt: skip
            self._end(job, "failed")
        else:
            job.report = report.as_dict()
            if job.rows is not None:
                job.checked = job.rows
            self._end(job, "done")

    @staticmethod
    def _end(job: ImportJob, status: Status) -> None:
        job.status = status
        job.finished_at = utcnow()
        job.ended = time.monotonic()

    def get(self, actor: Principal, job_id: uuid.UUID) -> ImportJob:
        """The job, if `actor` started it (anyone else is told there is no such job)."""
        self._forget_old()
        job = self._jobs.get(job_id)
        if job is None or job.owner != _owner(actor):
            raise NotFound("Import job not found", code="not_found")
        return job

    async def cancel(self, actor: Principal, job_id: uuid.UUID) -> ImportJob:
        """Cancel a running job and wait until it has stopped (rolled back); a job that has
        ended, or ends before it reaches its next progress report, is left as it is."""
        job = self.get(actor, job_id)
        await self._stop(job)
        return job

    @staticmethod
    async def _stop(job: ImportJob, grace: float | None = None) -> None:
        if job.status == "running" and job.task is not None:
            job.cancel_requested = True
            done, _ = await asyncio.wait({job.task}, timeout=grace)
            if not done:  # not at a progress report in time (shutdown): the task itself
                job.task.cancel()
                await asyncio.wait({job.task})

    async def close(self) -> None:
        """At shutdown: no new jobs; the running ones cancelled (rolled back) and awaited."""
        self._closed = True
        for job in list(self._jobs.values()):
            await self._stop(job, grace=SHUTDOWN_GRACE)

    def _forget_old(self) -> None:
        now = time.monotonic()
        old = [
            i for i, j in self._jobs.items() if j.ended is not None and now - j.ended > self._keep
        ]
        for job_id in old:
            del self._jobs[job_id]
