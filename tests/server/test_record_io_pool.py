"""Large imports check their new rows in worker processes (ValidationPool) while the
transaction writes the chunks already checked: same report, same stored rows, same
all-or-nothing as the in-process path; the pool is started lazily and shut down with the app."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psutil
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aisha_server import keys
from aisha_server.app import create_app
from aisha_server.config import Settings
from aisha_server.db.models import Contact
from aisha_server.services import record_io
from aisha_server.services.record_io import _fresh_dialect, bind_rows, dialect_key
from aisha_server.services.records import SPECS
from tests.server.test_record_io import Team, export, rows_of, team, upload

__all__ = ["team"]

VOLATILE = ("id", "owner_id", "created_at", "updated_at")


def mixed_file(rows: int) -> str:
    """Good rows in many spellings, and every few hundred rows a bad one of another kind."""
    lines = ["first_name,last_name,email,phone,mobile,tags,owner_id,cf.segment"]
    spellings = ("(212) 555-{:04d}", "212.555.{:04d}", "+1 212 555 {:04d}", "2125550{:03d}")
    for i in range(rows):
        phone = spellings[i % 4].format(i % 1000)
        email = f"P{i}.Q@Example.COM" if i % 3 else f"p{i}@xn--bcher-kva.example"
        cells = [f"F{i}", f"L{i}", email, phone, "+44 7700 900123", "a;b", "", "smb"]
        if i % 397 == 5:
            cells[2] = "not-an-email"
        elif i % 397 == 6:
            cells[7] = "giant"  # not an option of the select field
        elif i % 397 == 7:
            cells[0] = cells[1] = ""  # no name
        elif i % 397 == 8:
            cells[6] = "not-a-uuid"
        elif i % 397 == 9:
            cells[3] = "after 5pm"  # kept as typed, no E.164
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


async def _segment_field(client: Any, headers: dict[str, str]) -> None:
    resp = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "segment", "field_type": "select",
              "options": ["smb", "mid"]},
        headers=headers,
    )  # fmt: skip
    assert resp.status == 201, await resp.json()


async def test_pool_and_in_process_checks_give_the_same_report_and_rows(
    client: Any, team: Team
) -> None:
    pool = client.app[keys.VALIDATION_POOL]
    if pool.workers < 2:
        pytest.skip("one CPU: the pool is disabled")
    await _segment_field(client, team.admin)
    await _segment_field(client, team.outsider)
    text = mixed_file(2_600)

    # dry runs: the report of every row is the same either way
    status, _ = await upload(client, "contacts", mixed_file(100), team.admin, dry_run=True)
    assert status == 422 and not pool.started  # a few rows: checked in process
    # (every row has the same mobile: duplicates are confirmed here, and judged below)
    status, pooled = await upload(
        client,
        "contacts",
        text,
        team.admin,
        dry_run=True,
        on_error="skip",
        confirm_duplicates=True,
    )
    assert status == 200 and pool.started
    workers = pool.workers
    pool.workers = 0  # the in-process path
    try:
        status, local = await upload(
            client,
            "contacts",
            text,
            team.admin,
            dry_run=True,
            on_error="skip",
            confirm_duplicates=True,
        )
        assert status == 200
    finally:
        pool.workers = workers
    assert pooled["data"] == local["data"]
    totals = pooled["data"]["totals"]
    assert totals["rows"] == 2_600 and 0 < totals["errors"] < 40, totals
    messages = {e["field"] for r in pooled["data"]["rows"] for e in r["errors"]}
    assert {"email", "custom_fields.segment", "owner_id"} <= messages, messages

    # written (skip mode): the pool into one tenant, in process into the other; same rows
    status, body = await upload(
        client, "contacts", text, team.admin, on_error="skip", confirm_duplicates=True
    )
    assert status == 201, body
    pool.workers = 0
    try:
        status, other = await upload(
            client, "contacts", text, team.outsider, on_error="skip", confirm_duplicates=True
        )
        assert status == 201, other
    finally:
        pool.workers = workers
    assert body["data"]["totals"] == other["data"]["totals"]
    created = [r for r in body["data"]["rows"] if r["status"] == "created"]
    assert len({r["id"] for r in created}) == len(created) == totals["created"]

    def stored(headers_rows: list[dict[str, str]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(v for k, v in r.items() if k not in VOLATILE) for r in headers_rows)

    mine = rows_of(
        await (await export(client, "contacts", team.admin, "?formula_escape=false")).text()
    )
    theirs = rows_of(
        await (await export(client, "contacts", team.outsider, "?formula_escape=false")).text()
    )
    assert len(mine) == totals["created"] and stored(mine) == stored(theirs)

    # the phone spellings were normalised by the workers, bad numbers kept as typed only
    def e164(session: Session) -> dict[str, set[str | None]]:
        found: dict[str, set[str | None]] = {}
        query = select(Contact.phone, Contact.phone_e164).where(
            Contact.tenant_id == team.tenant.id,
            Contact.phone.in_(["212.555.0001", "+1 212 555 0002", "after 5pm"]),
        )
        for phone, normal in (await_rows := session.execute(query).all()):
            found.setdefault(phone, set()).add(normal)
        assert await_rows
        return found

    assert await client.app[keys.DB].run(e164, tenant_id=team.tenant.id) == {
        "212.555.0001": {"+12125550001"},
        "+1 212 555 0002": {"+12125550002"},
        "after 5pm": {None},
    }


async def test_a_bad_row_in_a_late_chunk_rolls_back_the_chunks_already_written(
    client: Any, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    if client.app[keys.VALIDATION_POOL].workers < 2:
        pytest.skip("one CPU: the pool is disabled")
    monkeypatch.setattr(record_io, "PARALLEL_CHUNK", 1_000)
    lines = ["first_name,email"] + [f"N{i},n{i}@example.com" for i in range(3_500)]
    lines[3_400] = "Bad,not-an-email"
    status, body = await upload(client, "contacts", "\n".join(lines) + "\n", team.admin)
    assert status == 422 and body["code"] == "import_rejected"
    assert [d["row"] for d in body["details"]] == [3_400]

    def count(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)

    assert await client.app[keys.DB].run(count, tenant_id=team.tenant.id) == 0
    lines[3_400] = "Good,good@example.com"
    status, body = await upload(client, "contacts", "\n".join(lines) + "\n", team.admin)
    assert status == 201 and body["data"]["totals"]["created"] == 3_500
    assert await client.app[keys.DB].run(count, tenant_id=team.tenant.id) == 3_500


async def test_rows_bound_in_a_worker_equal_rows_bound_on_the_connection(
    client: Any, team: Team
) -> None:
    spec = SPECS["contacts"]
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [
        {"first_name": "Ada", "email": "ada@example.com", "tags": ["a", "b"],
         "custom_fields": {"segment": "smb", "n": 1.5}, "phone": "(212) 555-0100",
         "phone_e164": "+12125550100", "owner_id": uuid.uuid4(), "metadata": {"k": [1]}},
        {"first_name": "Bob", "tags": [], "custom_fields": {}},
    ]  # fmt: skip

    def on_connection(session: Session) -> tuple[str, Any]:
        dialect = session.connection().dialect
        return dialect_key(dialect), bind_rows(dialect, spec, team.tenant.id, rows, now)

    key, here = await client.app[keys.DB].run(on_connection, tenant_id=team.tenant.id)
    fresh = bind_rows(_fresh_dialect(key), spec, team.tenant.id, rows, now)
    assert fresh.driver == here.driver == key and fresh.names == here.names
    assert [v[1:] for v in fresh.values] == [v[1:] for v in here.values]


def _spawned_workers() -> list[psutil.Process]:
    """This interpreter's multiprocessing workers; other tests' children (servers they killed
    and that may linger as zombies a moment) are skipped."""
    found = []
    for child in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


async def test_the_pool_starts_on_demand_and_stops_with_the_app(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    pool = app[keys.VALIDATION_POOL]
    assert not pool.started
    pool.start()
    if pool.workers < 2:
        assert not pool.started
        await runner.cleanup()
        return
    executor = pool.executor()
    assert executor is not None and executor.submit(record_io._warm_up).result(60) is None
    # the workers (not the resource tracker, which lives as long as this interpreter)
    children = _spawned_workers()
    assert len(children) == pool.workers
    await runner.cleanup()
    assert pool.executor() is None  # shut down for good
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_new_ids_are_random_version_4_uuids_in_ascending_order() -> None:
    ids = record_io.new_ids(5_000)
    assert ids == sorted(ids) and len(set(ids)) == 5_000
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)
    # every other bit varies (128 - 6 fixed bits): the OR of all ids, version/variant cleared
    seen = 0
    for u in ids:
        seen |= u.int
    assert seen & ~((0xF000 << 64) | (0xC000 << 48)) == (1 << 128) - 1 & ~(
        (0xF000 << 64) | (0xC000 << 48)
    )
    assert record_io.new_ids(0) == []


async def test_imported_rows_are_in_the_sync_change_log_as_api_creates_are(
    client: Any, team: Team
) -> None:
    from aisha_server.db.models.sync import SyncChange

    await _segment_field(client, team.admin)
    body = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
            "phone": "(212) 555-0100", "tags": ["vip", "new"], "lead_source": "web",
            "custom_fields": {"segment": "mid"}}  # fmt: skip
    resp = await client.post("/api/contacts", json=body, headers=team.admin)
    assert resp.status == 201, await resp.json()
    made = (await resp.json())["data"]["id"]
    small = (
        "first_name,last_name,email,phone,tags,lead_source,cf.segment\n"
        "Ada,Lovelace,ada2@example.com,(212) 555-0100,vip;new,web,mid\n"
    )
    status, report = await upload(client, "contacts", small, team.admin, confirm_duplicates=True)
    assert status == 201, report
    imported = report["data"]["rows"][0]["id"]
    status, big = await upload(
        client,
        "contacts",
        mixed_file(2_500),
        team.admin,
        on_error="skip",
        confirm_duplicates=True,
    )
    assert status == 201, big
    created = big["data"]["totals"]["created"]

    def entries(session: Session) -> tuple[dict[str, Any], dict[str, Any], int, list[int]]:
        rows = {
            str(c.record_id): c
            for c in session.scalars(
                select(SyncChange).where(SyncChange.tenant_id == team.tenant.id)
            )
        }

        def view(c: SyncChange) -> dict[str, Any]:
            changes = dict(c.changes)
            changes.pop("email")
            return {"op": c.op, "version": c.version, "changes": changes,
                    "owner_id": c.owner_id, "department": c.department,
                    "actor_id": c.actor_id, "client_id": c.client_id,
                    "mutation_id": c.mutation_id}  # fmt: skip

        contacts = [c for c in rows.values() if c.entity == "contacts"]
        return (
            view(rows[made]),
            view(rows[imported]),
            len(contacts),
            sorted(c.seq for c in rows.values()),
        )

    api_entry, import_entry, count, seqs = await client.app[keys.DB].run(
        entries, tenant_id=team.tenant.id
    )
    assert import_entry == api_entry
    assert import_entry["actor_id"] is not None  # the importing admin
    assert count == 2 + created
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # numbered without gaps


async def test_change_log_entries_written_in_bulk_read_back_as_written(
    client: Any, team: Team
) -> None:
    """Bulk change-log rows (changelog.log_bulk, JSON through orjson) hold what the import
    wrote, down to text orjson does not escape and integers it cannot encode (the column's
    own JSON serialiser takes those), numbered after what the tenant's log held."""
    from aisha_server.db.models.sync import SyncChange

    resp = await client.post(
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "size", "field_type": "number"},
        headers=team.admin,
    )
    assert resp.status == 201, await resp.json()
    huge = 2**70 + 1  # beyond orjson's 64-bit integers
    small = (
        f"first_name,last_name,tags,cf.size\nZoë,O'Brien \U0001f600,née;a\"b,{huge}\nAnn,Lee,,7\n"
    )
    status, report = await upload(client, "contacts", small, team.admin)
    assert status == 201, report
    ids = [row["id"] for row in report["data"]["rows"]]

    def entries(session: Session) -> tuple[list[SyncChange], list[int]]:
        found = list(
            session.scalars(
                select(SyncChange)
                .where(SyncChange.tenant_id == team.tenant.id)
                .order_by(SyncChange.seq)
            )
        )
        return [c for c in found if str(c.record_id) in ids], [c.seq for c in found]

    logged, seqs = await client.app[keys.DB].run(entries, tenant_id=team.tenant.id)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [str(c.record_id) for c in logged] == ids and logged[-1].seq == seqs[-1]
    first, second = logged
    assert first.changes["first_name"] == [None, "Zoë"]
    assert first.changes["last_name"] == [None, "O'Brien \U0001f600"]
    assert first.changes["tags"] == [None, ["née", 'a"b']]
    assert first.changes["custom_fields"] == [None, {"size": huge}]
    assert second.changes["custom_fields"] == [None, {"size": 7}]
    assert "tags" not in second.changes  # not set: as the flush hook leaves it out
    # the importing admin, who owns the rows too
    assert first.owner_id is not None and {c.actor_id for c in logged} == {first.owner_id}
    assert all(c.op == "upsert" and c.version == 1 and c.created_at for c in logged)


def test_bulk_change_rows_fill_every_column_of_the_change_log() -> None:
    """log_bulk writes whole rows by column name: a column added to sync_changes must be
    added there too (the ORM path would fill it, the raw one would leave it to the default)."""
    from aisha_server.db import changelog
    from aisha_server.db.models.sync import SyncChange

    assert sorted(changelog._BULK_NAMES) == sorted(c.name for c in SyncChange.__table__.c)
