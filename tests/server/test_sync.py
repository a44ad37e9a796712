"""Sync over HTTP: the change log, pull (snapshot, log, scope), push (idempotent, merged,
conflicts, rejections), conflict resolution, retention and the notification stream."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from aisha_server import keys
from aisha_server.db.models import Tenant
from aisha_server.db.models.sync import SyncChange, SyncCounter
from tests.factories import SeededUser, make_tenant, user_with_headers


@dataclass
class Team:
    tenant: Tenant
    admin: dict[str, str]
    employee: dict[str, str]
    employee_user: SeededUser
    peer: dict[str, str]
    peer_user: SeededUser
    support: dict[str, str]
    outsider: dict[str, str]


@pytest.fixture
async def team(client: Any) -> Team:
    app = client.app
    tenant = await make_tenant(app, "Sync Co")
    other = await make_tenant(app, "Other Co")
    _, admin = await user_with_headers(app, "admin", tenant.id)
    employee_user, employee = await user_with_headers(app, "employee", tenant.id, department="A")
    peer_user, peer = await user_with_headers(app, "employee", tenant.id, department="B")
    _, support = await user_with_headers(app, "support", tenant.id)
    _, outsider = await user_with_headers(app, "admin", other.id)
    return Team(tenant, admin, employee, employee_user, peer, peer_user, support, outsider)


async def ok(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body["data"]


async def pull_all(
    client: Any, headers: dict[str, str], since: str | None = None, limit: int = 500
) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Every page from `since` (a snapshot without it); the replica state and the cursor."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    cursor = since
    while True:
        query = f"?limit={limit}" + (f"&since={cursor}" if cursor else "")
        page = await ok(await client.get(f"/api/sync/changes{query}", headers=headers))
        for change in page["changes"]:
            key = (change["entity_type"], change["id"])
            if change["op"] == "delete":
                state.pop(key, None)
            else:
                state[key] = change["data"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return state, cursor


def records(state: dict[tuple[str, str], dict[str, Any]], entity: str) -> dict[str, Any]:
    return {rid: data for (e, rid), data in state.items() if e == entity}


async def push(
    client: Any, headers: dict[str, str], *mutations: dict[str, Any], client_id: str = "desk-1"
) -> list[dict[str, Any]]:
    body = {"client_id": client_id, "mutations": list(mutations)}
    data = await ok(await client.post("/api/sync/push", json=body, headers=headers))
    return list(data["results"])


def mutation(
    op: str,
    entity: str,
    record_id: str,
    fields: dict[str, Any] | None = None,
    base_version: int | None = None,
    mutation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "mutation_id": mutation_id or uuid.uuid4().hex,
        "entity_type": entity,
        "id": record_id,
        "op": op,
        "base_version": base_version,
        "fields": fields or {},
    }


# -- the change log -----------------------------------------------------------------------


async def test_every_write_appends_numbered_changes_with_old_and_new(
    client: Any, team: Team
) -> None:
    created = await ok(
        await client.post("/api/contacts", json={"first_name": "Ada", "email": "ada@x.test"},
                          headers=team.admin), 201)  # fmt: skip
    url = f"/api/contacts/{created['id']}"
    await ok(await client.patch(url, json={"title": "CTO"}, headers=team.admin))
    await ok(await client.patch(url, json={"title": "CEO", "first_name": "Ada"},
                                headers=team.admin))  # fmt: skip
    await ok(await client.delete(url, headers=team.admin))

    def read(session: Any) -> list[SyncChange]:
        return list(
            session.scalars(
                select(SyncChange)
                .where(SyncChange.tenant_id == team.tenant.id)
                .order_by(SyncChange.seq)
            )
        )

    changes = await client.app[keys.DB].run(read, tenant_id=team.tenant.id, write=False)
    mine = [c for c in changes if c.record_id == uuid.UUID(created["id"])]
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))  # no gaps
    assert [c.op for c in mine] == ["upsert", "upsert", "upsert", "delete"]
    assert [c.version for c in mine] == [1, 2, 3, 4]
    assert mine[0].changes["first_name"] == [None, "Ada"]
    assert mine[1].changes == {"title": [None, "CTO"]}
    assert mine[2].changes == {"title": ["CTO", "CEO"]}  # first_name did not change
    assert set(mine[3].changes) == {"deleted_at"}
    assert all(c.actor_id is not None for c in mine)


# -- pull ---------------------------------------------------------------------------------


async def test_snapshot_then_log_converge_on_what_the_admin_sees(client: Any, team: Team) -> None:
    ids = []
    for n in range(7):
        record = await ok(await client.post("/api/accounts", json={"name": f"A{n}"},
                                            headers=team.admin), 201)  # fmt: skip
        ids.append(record["id"])
    state, cursor = await pull_all(client, team.admin, limit=3)  # several snapshot pages
    assert set(records(state, "accounts")) == set(ids)
    assert records(state, "module_settings")  # settings travel too

    await ok(await client.patch(f"/api/accounts/{ids[0]}", json={"industry": "Tech"},
                                headers=team.admin))  # fmt: skip
    await ok(await client.delete(f"/api/accounts/{ids[1]}", headers=team.admin))
    new = await ok(await client.post("/api/accounts", json={"name": "New"}, headers=team.admin),
                   201)  # fmt: skip
    labels = {"labels": {"accounts": {"plural": "Clients", "singular": "Client"}}}
    await ok(await client.put(f"/api/entity-labels/{team.tenant.id}", json=labels,
                              headers=team.admin))  # fmt: skip
    delta, cursor2 = await pull_all(client, team.admin, since=cursor)
    accounts = records(delta, "accounts")
    assert accounts[ids[0]]["industry"] == "Tech" and accounts[new["id"]]["name"] == "New"
    assert any(v["custom_label"] == "Clients" for v in records(delta, "entity_labels").values())

    # the whole picture again from the first cursor equals snapshot + delta applied
    page = await ok(await client.get(f"/api/sync/changes?since={cursor}", headers=team.admin))
    deleted = [c for c in page["changes"] if c["op"] == "delete"]
    assert [c["id"] for c in deleted] == [ids[1]]
    # nothing new: an empty page keeps the cursor
    again = await ok(await client.get(f"/api/sync/changes?since={cursor2}", headers=team.admin))
    assert again["changes"] == [] and again["cursor"] == cursor2 and not again["has_more"]
    # another tenant's admin sees none of it
    theirs, _ = await pull_all(client, team.outsider)
    assert not records(theirs, "accounts")


async def test_scope_changes_arrive_as_removals_and_whole_records(client: Any, team: Team) -> None:
    employee_id = str(team.employee_user.id)
    peer_id = str(team.peer_user.id)
    mine = await ok(await client.post("/api/contacts", json={"first_name": "Mine"},
                                      headers=team.employee), 201)  # fmt: skip
    theirs = await ok(await client.post("/api/contacts", json={"first_name": "Theirs"},
                                        headers=team.peer), 201)  # fmt: skip
    state, cursor = await pull_all(client, team.employee)
    assert set(records(state, "contacts")) == {mine["id"]}

    # the admin hands "Mine" to the peer and "Theirs" to the employee
    await ok(await client.patch(f"/api/contacts/{mine['id']}",
                                json={"owner_id": peer_id, "department": "B"},
                                headers=team.admin))  # fmt: skip
    await ok(await client.patch(f"/api/contacts/{theirs['id']}",
                                json={"assigned_to": employee_id}, headers=team.admin))  # fmt: skip
    page = await ok(await client.get(f"/api/sync/changes?since={cursor}", headers=team.employee))
    by_id = {c["id"]: c for c in page["changes"]}
    assert by_id[mine["id"]]["op"] == "delete"
    assert by_id[theirs["id"]]["op"] == "upsert"
    assert by_id[theirs["id"]]["data"]["first_name"] == "Theirs"  # whole, not a diff
    # the peer never hears of records that were never theirs
    other = await ok(await client.post("/api/contacts", json={"first_name": "Other"},
                                       headers=team.employee), 201)  # fmt: skip
    _, peer_cursor = await pull_all(client, team.peer)
    await ok(await client.patch(f"/api/contacts/{other['id']}", json={"title": "x"},
                                headers=team.employee))  # fmt: skip
    peer_page = await ok(
        await client.get(f"/api/sync/changes?since={peer_cursor}", headers=team.peer)
    )
    assert other["id"] not in {c["id"] for c in peer_page["changes"]}


async def test_bad_and_stale_cursors(client: Any, team: Team) -> None:
    bad = await client.get("/api/sync/changes?since=garbage", headers=team.admin)
    assert bad.status == 400 and (await bad.json())["code"] == "invalid_cursor"
    _, cursor = await pull_all(client, team.admin)
    ahead = await client.get("/api/sync/changes?since=WzEwMDAwMDBd", headers=team.admin)  # [1e6]
    assert ahead.status == 400

    await ok(await client.post("/api/accounts", json={"name": "Old"}, headers=team.admin), 201)
    service = client.app[keys.SYNC_SERVICE]
    service._retention = timedelta(seconds=-1)  # everything is past retention
    assert await service.prune() >= 1
    stale = await client.get(f"/api/sync/changes?since={cursor}", headers=team.admin)
    body = await stale.json()
    assert stale.status == 410 and body["code"] == "resync_required", body
    # a fresh snapshot still works and ends on a usable cursor
    state, fresh = await pull_all(client, team.admin)
    assert any(d["name"] == "Old" for d in records(state, "accounts").values())
    assert (await client.get(f"/api/sync/changes?since={fresh}", headers=team.admin)).status == 200


# -- push ---------------------------------------------------------------------------------


async def test_push_creates_with_client_ids_and_retries_apply_once(client: Any, team: Team) -> None:
    record_id = str(uuid.uuid4())
    create = mutation("create", "contacts", record_id, {"first_name": "Offline"})
    first = await push(client, team.employee, create)
    assert first[0]["status"] == "applied" and first[0]["record"]["id"] == record_id
    again = await push(client, team.employee, create)  # the response was lost: retry
    assert again[0]["status"] == "applied" and again[0]["replayed"] is True
    listed = await ok(await client.get("/api/contacts?q=offline", headers=team.employee))
    assert [c["id"] for c in listed] == [record_id]  # one record, not two
    # the same mutation id from another client is another mutation
    other = await push(client, team.employee, create, client_id="desk-2")
    assert other[0]["status"] == "rejected" and other[0]["error"]["code"] == "id_taken"


async def test_push_merges_fields_and_records_conflicts(client: Any, team: Team) -> None:
    record = await ok(await client.post("/api/contacts",
                                        json={"first_name": "Ann", "title": "Dev"},
                                        headers=team.admin), 201)  # fmt: skip
    rid = record["id"]
    # the server changes the title (version 2) ...
    await ok(await client.patch(f"/api/contacts/{rid}", json={"title": "Lead"},
                                headers=team.admin))  # fmt: skip
    # ... while a replica, still at version 1, edits the company and the title
    results = await push(
        client, team.admin,
        mutation("update", "contacts", rid, {"company": "Acme", "title": "Boss"}, base_version=1),
    )  # fmt: skip
    result = results[0]
    assert result["status"] == "conflict"
    assert result["record"]["company"] == "Acme"  # different field: merged
    assert result["record"]["title"] == "Lead"  # same field: the server's value stays
    [conflict] = result["conflicts"]
    assert conflict["field"] == "title"
    assert conflict["server_value"] == "Lead" and conflict["client_value"] == "Boss"
    assert conflict["server_changed_at"] is not None and conflict["server_changed_by"]

    # writing the value the server already has is no conflict
    same = await push(
        client, team.admin, mutation("update", "contacts", rid, {"title": "Lead"}, base_version=1)
    )
    assert same[0]["status"] == "applied"

    listed = await ok(await client.get("/api/sync/conflicts", headers=team.admin))
    assert [c["id"] for c in listed] == [conflict["id"]]
    # someone else's conflicts are not in an employee's list, nor resolvable by them
    assert await ok(await client.get("/api/sync/conflicts", headers=team.employee)) == []
    denied = await client.post(
        f"/api/sync/conflicts/{conflict['id']}/resolve",
        json={"resolution": "take_mine"},
        headers=team.employee,
    )
    assert denied.status == 404

    resolved = await ok(
        await client.post(
            f"/api/sync/conflicts/{conflict['id']}/resolve",
            json={"resolution": "take_mine"},
            headers=team.admin,
        )
    )
    assert resolved["resolution"] == "take_mine" and resolved["record"]["title"] == "Boss"
    again = await client.post(
        f"/api/sync/conflicts/{conflict['id']}/resolve",
        json={"resolution": "keep_server"},
        headers=team.admin,
    )
    assert again.status == 409
    assert await ok(await client.get("/api/sync/conflicts", headers=team.admin)) == []
    history = await ok(await client.get("/api/sync/conflicts?include_resolved=true",
                                        headers=team.admin))  # fmt: skip
    assert history[0]["resolved_at"] is not None


async def test_custom_field_edits_merge_per_key(client: Any, team: Team) -> None:
    for name in ("tier", "region"):
        await ok(await client.post("/api/custom-fields", json={
            "entity": "contact", "field_name": name, "field_type": "text"},
            headers=team.admin), 201)  # fmt: skip
    record = await ok(await client.post("/api/contacts", json={"first_name": "Cf"},
                                        headers=team.admin), 201)  # fmt: skip
    rid = record["id"]
    await ok(await client.patch(f"/api/contacts/{rid}", json={"custom_fields": {"tier": "gold"}},
                                headers=team.admin))  # fmt: skip
    results = await push(client, team.admin, mutation(
        "update", "contacts", rid, {"custom_fields": {"region": "EU", "tier": "silver"}},
        base_version=1))  # fmt: skip
    assert results[0]["record"]["custom_fields"] == {"tier": "gold", "region": "EU"}
    assert [c["field"] for c in results[0]["conflicts"]] == ["custom_fields.tier"]
    custom = await ok(await client.post(
        f"/api/sync/conflicts/{results[0]['conflicts'][0]['id']}/resolve",
        json={"resolution": "custom", "value": "platinum"}, headers=team.admin))  # fmt: skip
    assert custom["record"]["custom_fields"] == {"tier": "platinum", "region": "EU"}


async def test_update_of_a_deleted_record_is_a_conflict(client: Any, team: Team) -> None:
    record = await ok(await client.post("/api/accounts", json={"name": "Gone"},
                                        headers=team.admin), 201)  # fmt: skip
    await ok(await client.delete(f"/api/accounts/{record['id']}", headers=team.admin))
    results = await push(
        client,
        team.admin,
        mutation("update", "accounts", record["id"], {"industry": "Retail"}, base_version=1),
    )
    assert results[0]["status"] == "conflict"
    assert results[0]["conflicts"][0]["field"] == "_deleted"
    assert results[0]["record"]["deleted_at"] is not None
    restored = await ok(await client.post(
        f"/api/sync/conflicts/{results[0]['conflicts'][0]['id']}/resolve",
        json={"resolution": "take_mine"}, headers=team.admin))  # fmt: skip
    assert restored["record"]["deleted_at"] is None
    assert restored["record"]["industry"] == "Retail"


async def test_rejections_do_not_block_later_mutations(client: Any, team: Team) -> None:
    good_id, bad_id, later_id = (str(uuid.uuid4()) for _ in range(3))
    results = await push(
        client, team.employee,
        mutation("create", "contacts", good_id, {"first_name": "Good"}),
        mutation("create", "accounts", bad_id, {}),  # name is required
        mutation("create", "contacts", str(uuid.uuid4()), {"shoe_size": 44}),  # unknown field
        mutation("update", "contacts", str(uuid.uuid4()), {"title": "x"}, base_version=1),
        mutation("create", "widgets", str(uuid.uuid4()), {"x": 1}),
        mutation("update", "contacts", good_id, {"title": "No base"}),
        mutation("create", "contacts", later_id, {"first_name": "Later"}),
    )  # fmt: skip
    assert [r["status"] for r in results] == [
        "applied", "rejected", "rejected", "rejected", "rejected", "rejected", "applied",
    ]  # fmt: skip
    assert results[1]["error"]["code"] == "validation_error"
    assert results[2]["error"]["details"][0]["field"] == "shoe_size"
    assert results[3]["error"]["code"] == "not_found"
    assert results[5]["error"]["details"][0]["field"] == "base_version"
    # support is read-only: every write is refused, reads still work
    support = await push(
        client,
        team.support,
        mutation("update", "contacts", good_id, {"title": "x"}, base_version=1),
    )
    assert support[0]["status"] == "rejected" and support[0]["error"]["code"] == "forbidden_action"
    # an employee may not touch a peer's record (not in scope)
    peer_record = await ok(await client.post("/api/contacts", json={"first_name": "P"},
                                              headers=team.peer), 201)  # fmt: skip
    blocked = await push(
        client,
        team.employee,
        mutation("update", "contacts", peer_record["id"], {"title": "x"}, base_version=1),
    )
    assert blocked[0]["status"] == "rejected" and blocked[0]["error"]["code"] == "not_found"


async def test_bad_push_bodies(client: Any, team: Team) -> None:
    cases = [
        {"mutations": []},  # no client_id
        {"client_id": "c", "mutations": [{"mutation_id": "m", "entity_type": "contacts",
                                          "id": "not-a-uuid", "op": "create"}]},
        {"client_id": "c", "mutations": [{"mutation_id": "m", "entity_type": "contacts",
                                          "id": str(uuid.uuid4()), "op": "upsert"}]},
    ]  # fmt: skip
    for body in cases:
        resp = await client.post("/api/sync/push", json=body, headers=team.admin)
        assert resp.status == 422, body
    twice = mutation("create", "contacts", str(uuid.uuid4()), {"first_name": "x"})
    resp = await client.post("/api/sync/push", json={"client_id": "c", "mutations": [twice, twice]},
                             headers=team.admin)  # fmt: skip
    assert resp.status == 400
    # nothing of the refused pushes was written
    assert await ok(await client.get("/api/contacts", headers=team.admin)) == []


# -- stream -------------------------------------------------------------------------------


async def test_stream_says_when_the_tenant_changed(client: Any, team: Team) -> None:
    async with client.ws_connect("/api/sync/stream", headers=team.employee) as socket:
        hello = await socket.receive_json(timeout=5)
        assert hello["type"] == "hello"
        await ok(await client.post("/api/accounts", json={"name": "Ping"}, headers=team.admin),
                 201)  # fmt: skip
        changed = await socket.receive_json(timeout=5)
        assert changed["type"] == "changed" and changed["seq"] > hello["seq"]
        # another tenant's writes are not announced here
        await ok(await client.post("/api/accounts", json={"name": "Else"},
                                   headers=team.outsider), 201)  # fmt: skip
        with pytest.raises(asyncio.TimeoutError):
            await socket.receive_json(timeout=0.5)
    refused = await client.get("/api/sync/stream")
    assert refused.status == 401


# -- ordering under concurrency (PostgreSQL) ----------------------------------------------


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_reader_never_skips_a_change_that_commits_late(
    client: Any, team: Team, backend: str
) -> None:
    """Concurrent writers commit in any order; a reader that follows `seq > cursor` while they
    write must end up having seen every change exactly once."""
    db = client.app[keys.DB]
    ids = []
    for n in range(6):
        record = await ok(await client.post("/api/accounts", json={"name": f"W{n}"},
                                            headers=team.admin), 201)  # fmt: skip
        ids.append(record["id"])
    start = await db.run(lambda s: s.get(SyncCounter, team.tenant.id).last_seq,
                         tenant_id=team.tenant.id, write=False)  # fmt: skip
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(record_id: str) -> None:
        for n in range(15):
            await ok(await client.patch(f"/api/accounts/{record_id}", json={"industry": f"i{n}"},
                                        headers=team.admin))  # fmt: skip

    async def reader() -> None:
        cursor = start
        while True:
            finished = done.is_set()
            rows = await db.run(
                lambda s, c=cursor: list(s.scalars(
                    select(SyncChange.seq).where(SyncChange.tenant_id == team.tenant.id,
                                                 SyncChange.seq > c).order_by(SyncChange.seq))),
                tenant_id=team.tenant.id, write=False)  # fmt: skip
            seen.extend(rows)
            if rows:
                cursor = rows[-1]
            if finished:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in ids))
    done.set()
    await reading
    assert seen == list(range(start + 1, start + 1 + 6 * 15))


async def test_a_clients_own_earlier_pushes_are_not_conflicts(client: Any, team: Team) -> None:
    record = await ok(await client.post("/api/contacts", json={"first_name": "Own"},
                                        headers=team.admin), 201)  # fmt: skip
    rid = record["id"]
    # two edits of one field queued offline on version 1, pushed in two batches
    first = await push(
        client, team.admin, mutation("update", "contacts", rid, {"title": "A"}, base_version=1)
    )
    second = await push(
        client, team.admin, mutation("update", "contacts", rid, {"title": "B"}, base_version=1)
    )
    assert first[0]["status"] == second[0]["status"] == "applied"
    assert second[0]["record"]["title"] == "B"
    # another client editing from version 1 does conflict with them
    other = await push(client, team.admin,
                       mutation("update", "contacts", rid, {"title": "C"}, base_version=1),
                       client_id="desk-2")  # fmt: skip
    assert other[0]["status"] == "conflict" and other[0]["record"]["title"] == "B"


@pytest.mark.parametrize("backend", ["postgres"])
async def test_the_stream_hears_writes_made_through_another_instance(
    client: Any, team: Team, settings: Any, aiohttp_client: Any, backend: str
) -> None:
    """Two server instances on one PostgreSQL database: a client streaming from the first
    hears about a write made through the second (LISTEN/NOTIFY)."""
    from aisha_server.app import create_app

    second = await aiohttp_client(create_app(settings))
    try:
        async with client.ws_connect("/api/sync/stream", headers=team.employee) as socket:
            hello = await socket.receive_json(timeout=5)
            await ok(await second.post("/api/accounts", json={"name": "Elsewhere"},
                                       headers=team.admin), 201)  # fmt: skip
            changed = await socket.receive_json(timeout=5)
            assert changed["type"] == "changed" and changed["seq"] > hello["seq"]
    finally:
        await second.close()


async def test_reset_entity_labels_leave_replicas(client: Any, team: Team) -> None:
    labels = {"labels": {"leads": {"plural": "Prospects", "singular": "Prospect"}}}
    url = f"/api/entity-labels/{team.tenant.id}"
    await ok(await client.put(url, json=labels, headers=team.admin))
    state, cursor = await pull_all(client, team.admin)
    [label] = [v for v in records(state, "entity_labels").values() if v["entity_key"] == "leads"]
    await ok(await client.delete(url, headers=team.admin))
    page = await ok(await client.get(f"/api/sync/changes?since={cursor}", headers=team.admin))
    assert [(c["id"], c["op"]) for c in page["changes"]] == [(label["id"], "delete")]
    fresh, _ = await pull_all(client, team.admin)
    assert not records(fresh, "entity_labels")  # a new snapshot has no tombstones
