"""Convergence (randomised, seeded, reproducible): replicas of two administrators and an
employee, and a direct REST writer, make interleaved creates, edits, deletes and
reassignments while the replicas' network comes and goes.  At the end every replica equals
the server for its user's scope, and every value a replica pushed is accounted for: applied
(in the change log under its mutation id), kept in a conflict record, or rejected with a
reason - nothing silently lost."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from aisha_desktop.client import ApiClient, ClientError
from aisha_desktop.replica import OutboxEntry
from aisha_desktop.sync import SyncEngine
from aisha_server import keys
from aisha_server.db.models.crm import Contact
from aisha_server.db.models.sync import SyncChange, SyncConflict
from tests.desktop.sync.conftest import Live, Team

FIELDS = ("title", "company", "first_name")
COMPARED = ("version", "owner_id", "assigned_to", *FIELDS)


async def everything(api: ApiClient) -> dict[str, dict[str, Any]]:
    """Every contact the client's user may see, by id."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = await api.list_records("contacts", limit=200, cursor=cursor)
        found.update({item["id"]: item for item in page.items})
        cursor = page.next_cursor
        if cursor is None:
            return found


@pytest.mark.parametrize("seed", [7, 2026])
async def test_replicas_converge_and_lose_nothing(live: Live, team: Team, seed: int) -> None:
    rng = random.Random(seed)
    writer = await live.api(team.admin, direct=True)
    employee_id, peer_id = str(team.employee.id), str(team.peer.id)
    for n in range(12):
        owner = {"owner_id": employee_id} if n % 2 else {"owner_id": peer_id, "department": "B"}
        await writer.create_record("contacts", {"first_name": f"Seed{n}", **owner})
    engines = {
        "a": await live.engine(team.admin),
        "b": await live.engine(team.admin2),
        "e": await live.engine(team.employee),
    }
    pushed: dict[str, OutboxEntry] = {}
    online = True

    async def sync(engine: SyncEngine) -> None:
        pushed.update({e.mutation_id: e for e in engine.replica.outbox()})
        try:
            await engine.sync_now()
        except ClientError:
            assert not online, "a sync failed while the network was up"

    for engine in engines.values():
        await sync(engine)

    for step in range(150):
        roll = rng.random()
        name = rng.choice(sorted(engines))
        engine = engines[name]
        if roll < 0.12:
            if online:
                await live.proxy.cut()
            else:
                await live.proxy.restore()
            online = not online
        elif roll < 0.40:
            await sync(engine)
        elif roll < 0.80:
            rows = engine.replica.query("contacts", limit=500).rows
            action = rng.random()
            if action < 0.15 or not rows:
                await engine.create("contacts", {"first_name": f"{name}-new-{step}"})
            elif action < 0.27 and len(rows) > 4:
                await engine.delete("contacts", rng.choice(rows).id)
            else:
                target = rng.choice(rows)
                fields = {f: f"{name}-{f}-{step}" for f in rng.sample(FIELDS, rng.randint(1, 2))}
                await engine.update("contacts", target.id, fields)
        else:
            server = sorted(await everything(writer))
            if not server:
                continue
            target_id = rng.choice(server)
            action = rng.random()
            if action < 0.1:
                await writer.delete_record("contacts", target_id)
            elif action < 0.35:
                owner = rng.choice([employee_id, peer_id])
                department = "A" if owner == employee_id else "B"
                await writer.update_record(
                    "contacts", target_id, {"owner_id": owner, "department": department}
                )
            else:
                field = rng.choice(FIELDS)
                await writer.update_record("contacts", target_id, {field: f"w-{field}-{step}"})

    if not online:
        await live.proxy.restore()
        online = True
    for _ in range(3):  # quiesce: every push seen by every other replica
        for engine in engines.values():
            await sync(engine)

    # every replica equals the server for its user's scope
    for name, engine in engines.items():
        assert engine.replica.outbox() == [], name
        truth = await everything(engine.api)
        rows = {r.id: r.data for r in engine.replica.query("contacts", limit=1000).rows}
        assert set(rows) == set(truth), name
        for record_id, data in rows.items():
            expected = {k: truth[record_id][k] for k in COMPARED}
            assert {k: data[k] for k in COMPARED} == expected, (name, record_id)
        assert not any(r.pending for r in engine.replica.query("contacts", limit=1000).rows)

    # every pushed value is applied, in a conflict, or rejected with a reason
    tenant_id = team.tenant_id

    def read(session: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str]]:
        logged = {
            (change.mutation_id, name)
            for change in session.scalars(
                select(SyncChange).where(
                    SyncChange.tenant_id == tenant_id, SyncChange.mutation_id.is_not(None)
                )
            )
            for name in [*change.changes, "*"]
        }
        conflicts = {
            (c.mutation_id, c.field)
            for c in session.scalars(
                select(SyncConflict).where(SyncConflict.tenant_id == tenant_id)
            )
        }
        deleted = {
            str(c.id)
            for c in session.scalars(
                select(Contact).where(
                    Contact.tenant_id == tenant_id, Contact.deleted_at.is_not(None)
                )
            )
        }
        return logged, conflicts, deleted

    logged, conflicts, deleted = await live.app[keys.DB].run(read, tenant_id=tenant_id, write=False)
    rejected = {r.mutation_id for e in engines.values() for r in e.replica.rejections()}
    for rejection in (r for e in engines.values() for r in e.replica.rejections()):
        assert rejection.code and rejection.message
    # the seeds are chosen so that a run holds every kind of outcome
    assert pushed and conflicts and rejected and deleted
    for mutation_id, entry in pushed.items():
        if mutation_id in rejected:
            continue
        if entry.op == "create":
            assert (mutation_id, "*") in logged, entry
        elif entry.op == "delete":
            assert (mutation_id, "*") in logged or entry.record_id in deleted, entry
        else:
            for field in entry.fields:
                assert (
                    (mutation_id, field) in logged
                    or (mutation_id, field) in conflicts
                    or (mutation_id, "_deleted") in conflicts
                ), (entry, field)
    assert uuid.UUID(engines["a"].client_id.removeprefix("desk-"))  # replica-made ids
