"""CSV import and export through the API client against a real server: the multipart upload
with its options, the report, the all-or-nothing refusal, cancelling mid-upload and
mid-download, the export's filters and client-side column choice, and the stream helpers."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aisha_desktop.client import ApiClient, ApiError, MemoryTokenStore, Tokens, ValidationError
from aisha_desktop.client.csv_io import (
    UPLOAD_SLICE,
    ExportProgress,
    ImportJobState,
    ImportRejected,
    RecordCounter,
    record_end,
)
from aisha_desktop.client.errors import RateLimited
from tests.desktop.client.conftest import LiveServer, expired_access_token
from tests.factories import SeededUser

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def signed_in(live: LiveServer, admin: SeededUser) -> AsyncIterator[ApiClient]:
    async with ApiClient(live.url, timeout=10) as api:
        await api.login(admin.email, admin.password)
        yield api


def contacts_csv(count: int, *, start: int = 0, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["First name", "Surname", "E-mail", "Notes"])
    for i in range(start, start + count):
        writer.writerow([f"Ann{i}", f"Lee{i}", f"ann{i}@example.com", f"line one\nline {i}"])
    text = out.getvalue()
    return (("\ufeff" + text) if bom else text).encode()


MAPPING = {"First name": "first_name", "Surname": "last_name", "E-mail": "email"}


async def contact_count(api: ApiClient) -> int:
    page = await api.list_records("contacts", limit=1, include_total=True)
    assert page.total is not None
    return page.total


async def test_dry_run_then_import_with_mapping(signed_in: ApiClient) -> None:
    api = signed_in
    seen: list[tuple[int, int]] = []
    data = contacts_csv(3, bom=True)
    report = await api.import_csv(
        "contacts",
        data,
        mapping=MAPPING,
        dry_run=True,
        on_error="skip",
        progress=lambda sent, total: seen.append((sent, total)),
    )
    assert report.dry_run and report.mode == "create" and not report.rejected
    assert [(r.row, r.status) for r in report.rows] == [
        (1, "created"),
        (2, "created"),
        (3, "created"),
    ]
    assert report.totals["created"] == 3
    assert seen and seen[-1][0] == seen[-1][1] > len(data)  # the whole multipart body
    assert await contact_count(api) == 0  # a dry run writes nothing

    done = await api.import_csv("contacts", data, mapping=MAPPING)
    assert not done.dry_run and done.count("created") == 3
    assert all(r.id for r in done.rows)
    page = await api.list_records("contacts", q="ann1@example.com")
    assert [(c["first_name"], c["last_name"]) for c in page.items] == [("Ann1", "Lee1")]

    # upsert by email: the same file again updates nothing (skipped), a changed row updates
    again = contacts_csv(2).replace(b"Lee0", b"Leigh0")
    report = await api.import_csv("contacts", again, mapping=MAPPING, mode="upsert", match="email")
    assert [r.status for r in report.rows] == ["updated", "skipped"]
    assert await contact_count(api) == 3


async def test_bad_rows_refuse_the_whole_file(signed_in: ApiClient) -> None:
    api = signed_in
    data = b"first_name,email\nAnn,ann@example.com\nBob,not-an-email\n,\nCy,cy@example.com,extra\n"
    with pytest.raises(ImportRejected) as refused:
        await api.import_csv("contacts", data)
    report = refused.value.report
    assert refused.value.status == 422 and report.rejected
    assert [r.row for r in report.rows] == [2, 3]  # the blank line is not a row
    assert "email" in report.rows[0].reasons
    assert "more cells than the header" in report.rows[1].reasons
    assert await contact_count(api) == 0

    # skip: the good row is written, the bad ones reported
    report = await api.import_csv("contacts", data, on_error="skip")
    assert [(r.row, r.status) for r in report.rows] == [
        (1, "created"),
        (2, "error"),
        (3, "error"),
    ]
    assert await contact_count(api) == 1


@pytest.mark.parametrize(
    ("data", "options", "code"),
    [
        (b"", {}, "empty_file"),
        (b"name,email\n\xff\xfe,x\n", {}, "not_utf8"),
        (b'first_name\n"unterminated\n', {}, "bad_csv"),
        (b"colour,size\nred,1\n", {}, "bad_header"),
        (b"first_name\nAnn\n", {"mapping": {"first_name": "shoe_size"}}, "bad_mapping"),
        (b"first_name\nAnn\n", {"mode": "update", "match": "email"}, "bad_mapping"),
    ],
)
async def test_bad_files_are_clear_errors(
    signed_in: ApiClient, data: bytes, options: dict[str, object], code: str
) -> None:
    with pytest.raises(ValidationError) as failed:
        await signed_in.import_csv("contacts", data, **options)  # type: ignore[arg-type]
    assert failed.value.code == code and failed.value.message
    assert not isinstance(failed.value, ImportRejected)


async def test_cancel_mid_upload_imports_nothing(signed_in: ApiClient) -> None:
    api = signed_in
    data = contacts_csv(4000)
    assert len(data) > 3 * UPLOAD_SLICE
    sent: list[int] = []
    task: asyncio.Task[object] | None = None

    def progress(done: int, total: int) -> None:
        sent.append(done)
        if len(sent) == 2 and task is not None:
            task.cancel()  # after the second slice: the server has part of the file

    task = asyncio.ensure_future(api.import_csv("contacts", data, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sent) == 2 and sent[-1] < len(data)
    await asyncio.sleep(0.2)  # the server notices the closed connection
    assert await contact_count(api) == 0
    # the client is fine afterwards
    report = await api.import_csv("contacts", contacts_csv(2), mapping=MAPPING)
    assert report.count("created") == 2


async def test_the_import_runs_as_a_job_whose_progress_is_told(signed_in: ApiClient) -> None:
    api = signed_in
    states: list[ImportJobState] = []
    report = await api.import_csv("contacts", contacts_csv(2_500), mapping=MAPPING,
                                  checking=states.append)  # fmt: skip
    assert report.count("created") == 2_500
    assert states[0].status == "running" and states[-1].status == "done"
    assert states[-1].rows == states[-1].checked == 2_500
    assert len({s.id for s in states}) == 1
    checked = [s.checked for s in states]
    assert checked == sorted(checked)  # never backwards
    assert await contact_count(api) == 2_500


async def test_cancel_while_the_server_imports_rolls_it_back(signed_in: ApiClient) -> None:
    api = signed_in
    states: list[ImportJobState] = []
    task: asyncio.Task[object] | None = None

    def checking(state: ImportJobState) -> None:
        states.append(state)
        if len(states) == 1 and task is not None:
            task.cancel()  # the file is on the server and its job has started

    task = asyncio.ensure_future(
        api.import_csv("contacts", contacts_csv(6_000), mapping=MAPPING, checking=checking)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    assert states[0].status == "running"
    assert states[-1].status == "cancelled" and states[-1].id == states[0].id
    assert await contact_count(api) == 0
    report = await api.import_csv("contacts", contacts_csv(3), mapping=MAPPING)
    assert report.count("created") == 3


@pytest.mark.parametrize(
    "settings_overrides", [{"RATE_LIMIT_MAX": 2, "RATE_LIMIT_WINDOW_MS": 2_000}]
)
async def test_a_rate_limited_look_at_the_job_only_delays_the_next(
    signed_in: ApiClient,
) -> None:
    api = signed_in
    limited: list[float | None] = []
    stream = api._stream

    async def counting(*args: Any, **kwargs: Any) -> Any:
        try:
            return await stream(*args, **kwargs)
        except RateLimited as exc:
            limited.append(exc.retry_after)
            raise

    api._stream = counting  # type: ignore[method-assign]
    await asyncio.sleep(2.1)  # a fresh window for the upload
    report = await api.import_csv("contacts", contacts_csv(12_000), mapping=MAPPING)
    assert report.count("created") == 12_000
    assert limited, "the import should have met the rate limit while it was followed"
    assert await contact_count(api) == 12_000


async def test_import_after_the_access_token_expired(live: LiveServer, admin: SeededUser) -> None:
    async with ApiClient(live.url) as first:
        session = await first.login(admin.email, admin.password)
        tokens = first._tokens
    assert tokens is not None
    store = MemoryTokenStore(
        Tokens(
            access_token=expired_access_token(live.app, admin, session.session_id),
            refresh_token=tokens.refresh_token,
        )
    )
    async with ApiClient(live.url, token_store=store) as api:
        report = await api.import_csv("contacts", contacts_csv(2), mapping=MAPPING)  # refreshed
        assert report.count("created") == 2
    assert len(live.refresh_requests) == 1


async def test_export_filters_columns_and_progress(signed_in: ApiClient, tmp_path: Path) -> None:
    api = signed_in
    await api.import_csv("contacts", contacts_csv(5), mapping=MAPPING)
    await api.import_csv("contacts", b"first_name,last_name,status\nZed,=SUM(A1),inactive\n")
    target = tmp_path / "all.csv"
    seen: list[ExportProgress] = []
    result = await api.export_csv("contacts", target, progress=seen.append)
    assert result.rows == 6 and result.path == target and result.bytes == target.stat().st_size
    assert "email" in result.columns and result.columns[0] == "id"
    rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode(), newline="")))
    assert len(rows) == 6
    assert {r["last_name"] for r in rows} >= {"Lee0", "'=SUM(A1)"}  # formula guarded
    assert seen[-1] == ExportProgress(result.bytes, 6)
    assert not target.with_name("all.csv.part").exists()

    narrow = tmp_path / "narrow.csv"
    result = await api.export_csv(
        "contacts",
        narrow,
        params={"status": "inactive", "columns": "last_name,first_name"},
    )
    assert result.rows == 1 and result.columns == ("last_name", "first_name")
    assert narrow.read_bytes() == b"last_name,first_name\r\n'=SUM(A1),Zed\r\n"

    searched = tmp_path / "searched.csv"
    result = await api.export_csv(
        "contacts", searched, params={"q": "ann3", "match": "contains", "columns": "email"}
    )
    assert searched.read_bytes() == b"email\r\nann3@example.com\r\n"

    ordered = tmp_path / "ordered.csv"
    result = await api.export_csv(
        "contacts", ordered, params={"sort": "-last_name", "columns": "last_name"}
    )
    names = ordered.read_bytes().decode().split("\r\n")[1:-1]
    assert result.rows == 6 and names == sorted(names, reverse=True)


async def test_export_errors_leave_no_file(signed_in: ApiClient, tmp_path: Path) -> None:
    api = signed_in
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "out.csv"
    with pytest.raises(ValidationError) as refused:
        await api.export_csv("contacts", target, params={"owner_id": "not-a-uuid"})
    assert refused.value.status in (400, 422)
    with pytest.raises(ValidationError) as refused:
        await api.export_csv("contacts", target, params={"columns": "email,shoe_size"})
    assert refused.value.status == 422 and "shoe_size" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        await api.export_csv("contacts", target, params={"sort": "phone"})
    assert refused.value.status == 422
    assert list(folder.iterdir()) == []


async def test_cancel_mid_download_removes_the_partial_file(
    signed_in: ApiClient, tmp_path: Path
) -> None:
    api = signed_in
    await api.import_csv("contacts", contacts_csv(4500), mapping=MAPPING)
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "big.csv"
    task: asyncio.Task[object] | None = None
    seen: list[ExportProgress] = []

    def progress(step: ExportProgress) -> None:
        seen.append(step)
        if step.rows > 0 and task is not None:
            task.cancel()

    task = asyncio.ensure_future(api.export_csv("contacts", target, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen and 0 < seen[-1].rows < 4500
    assert list(folder.iterdir()) == []
    # a full export afterwards has every row
    result = await api.export_csv("contacts", target)
    assert result.rows == 4500


async def test_a_cancel_asked_at_the_last_report_leaves_no_file(
    signed_in: ApiClient, tmp_path: Path
) -> None:
    api = signed_in
    await api.import_csv("contacts", contacts_csv(30), mapping=MAPPING)
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "small.csv"
    task: asyncio.Task[object] | None = None
    seen: list[ExportProgress] = []

    def progress(step: ExportProgress) -> None:
        seen.append(step)
        # the final report repeats the stream's last one (each of those adds bytes)
        if task is not None and len(seen) > 1 and step == seen[-2]:
            task.cancel()

    task = asyncio.ensure_future(api.export_csv("contacts", target, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[-1].rows == 30 and seen[-1] == seen[-2]  # stopped at the final report
    assert list(folder.iterdir()) == []  # neither the file nor its .part


# -- the stream helpers, on their own ------------------------------------------------------------


def test_record_counter_across_chunks() -> None:
    text = b'a,b\r\n1,"x\r\ny"\r\n2,"he said ""hi""\n"\r\n3,z\r\n'
    for size in (1, 2, 3, 7, len(text)):
        counter = RecordCounter()
        for i in range(0, len(text), size):
            counter.feed(text[i : i + size])
        assert counter.records == 4, size


def test_record_end() -> None:
    assert record_end("a,b\r\n1,2") == 5
    assert record_end('a\n"open\nquote') == 2
    assert record_end("no break") == 0


@pytest.mark.parametrize("settings_overrides", [{"AISHA_MAX_UPLOAD_BYTES": 50_000}])
async def test_upload_over_the_limit_is_a_clear_error(signed_in: ApiClient) -> None:
    data = contacts_csv(40_000)  # megabytes: the server answers before reading them
    assert len(data) > 40 * 50_000
    with pytest.raises(ApiError) as refused:
        await signed_in.import_csv("contacts", data, mapping=MAPPING)
    assert refused.value.status == 413 and refused.value.code == "upload_too_large"
    assert await contact_count(signed_in) == 0
