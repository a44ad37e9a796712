"""The sync engine against a real server (SQLite and PostgreSQL): snapshot and incremental
pulls, local edits, merges and conflicts between replicas, rejections, offline and back,
resync, data scope, and a push whose answer was lost."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from aisha_desktop.client import (
    ApiClient,
    AuthError,
    Forbidden,
    MemoryTokenStore,
    OfflineError,
    ResyncRequired,
    Tokens,
)
from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine, SyncState, backoff_delay
from aisha_server import keys
from aisha_server.db.models.sync import SyncChange
from tests.desktop.client.conftest import expired_access_token
from tests.desktop.sync.conftest import Live, Team, eventually


async def server_changes(live: Live, tenant_id: uuid.UUID, record_id: str) -> int:
    """How many change-log rows the server holds for one record (one per applied write)."""

    def read(session: Any) -> int:
        query = select(func.count()).where(
            SyncChange.tenant_id == tenant_id, SyncChange.record_id == uuid.UUID(record_id)
        )
        return int(session.scalar(query) or 0)

    count: int = await live.app[keys.DB].run(read, tenant_id=tenant_id, write=False)
    return count


def shown(engine: SyncEngine, entity: str, record_id: str) -> dict[str, Any] | None:
    row = engine.replica.get(entity, record_id)
    return None if row is None else row.data


# -- pull ---------------------------------------------------------------------------------


async def test_snapshot_into_an_empty_replica_then_incremental_changes(
    live: Live, team: Team
) -> None:
    admin = await live.api(team.admin, direct=True)
    ids = [
        (await admin.create_record("accounts", {"name": f"Acct {n:02d}", "type": "customer"}))["id"]
        for n in range(7)
    ]
    contact = await admin.create_record("contacts", {"first_name": "Ada", "last_name": "Byron",
                                                     "email": "ada@example.com"})  # fmt: skip
    engine = await live.engine(team.admin, page_size=3)  # several snapshot pages
    replica = engine.replica
    assert replica.cursor is None and replica.count("accounts") == 0
    changed: list[frozenset[str]] = []
    engine.subscribe_changes(changed.append)

    await engine.sync_now()
    assert replica.count("accounts") == 7 and replica.count("contacts") == 1
    assert replica.cursor is not None
    assert replica.settings("module_settings")  # settings travel too
    assert any("accounts" in c for c in changed)
    row = replica.get("contacts", contact["id"])
    assert row is not None and row.data["email"] == "ada@example.com" and not row.pending
    assert row.version == contact["version"]
    # the views' columns: sorted, filtered, searched
    names = [r.data["name"] for r in replica.query("accounts", sort="name").rows]
    assert names == sorted(names) and len(names) == 7
    assert [r.id for r in replica.query("contacts", search="BYR").rows] == [contact["id"]]
    assert replica.query("accounts", filters={"type": "customer"}, limit=100).rows
    assert replica.query("accounts", filters={"type": "partner"}).rows == []

    # incremental: an edit, a delete and a create
    await admin.update_record("accounts", ids[0], {"industry": "Tech", "name": "Renamed"})
    await admin.delete_record("accounts", ids[1])
    new = await admin.create_record("accounts", {"name": "Newcomer"})
    first_cursor = replica.cursor
    await engine.sync_now()
    assert replica.cursor != first_cursor
    assert shown(engine, "accounts", ids[0]) == {
        **(shown(engine, "accounts", ids[0]) or {}),
        "industry": "Tech",
        "name": "Renamed",
    }
    assert replica.get("accounts", ids[1]) is None
    assert shown(engine, "accounts", new["id"]) is not None
    assert replica.count("accounts") == 7
    assert [r.data["name"] for r in replica.query("accounts", search="renam").rows] == ["Renamed"]
    # and a cycle with nothing new changes nothing
    cursor = replica.cursor
    await engine.sync_now()
    assert replica.cursor == cursor and engine.state.status == "online"


# -- local edits --------------------------------------------------------------------------


async def test_a_local_edit_shows_at_once_and_syncs(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Lin", "title": "Dev"})
    engine = await live.engine(team.admin)
    await engine.sync_now()
    states: list[SyncState] = []
    engine.subscribe(states.append)

    row = await engine.update("contacts", record["id"], {"title": "CTO"})
    assert row["title"] == "CTO"
    held = engine.replica.get("contacts", record["id"])
    assert held is not None and held.pending and held.data["title"] == "CTO"
    assert (
        held.version == 1
        and (engine.replica.base("contacts", record["id"]) or {})["title"] == "Dev"
    )  # the server's row is kept apart
    assert engine.state.pending == 1
    # the server does not have it yet
    assert (await admin.get_record("contacts", record["id"]))["title"] == "Dev"

    created = await engine.create("contacts", {"first_name": "Offline", "last_name": "Made"})
    assert shown(engine, "contacts", created["id"]) is not None
    # an edit of a queued create folds into it: one create goes to the server
    await engine.update("contacts", created["id"], {"title": "Folded"})
    assert [e.op for e in engine.replica.outbox()] == ["update", "create"]

    await engine.sync_now()
    server = await admin.get_record("contacts", record["id"])
    assert server["title"] == "CTO" and server["version"] == 2
    made = await admin.get_record("contacts", created["id"])
    assert made["title"] == "Folded" and made["version"] == 1
    assert engine.state.pending == 0 and engine.replica.outbox() == []
    after = engine.replica.get("contacts", record["id"])
    assert after is not None and not after.pending and after.version == 2
    assert states[-1].status == "online" and states[-1].last_synced_at is not None

    # a local delete hides the row at once and deletes it on the server
    await engine.delete("contacts", created["id"])
    assert engine.replica.get("contacts", created["id"]) is None
    await engine.sync_now()
    listed = await admin.list_records("contacts")
    assert created["id"] not in {c["id"] for c in listed.items}
    # a bulk change travels as one update per record
    others = [(await admin.create_record("contacts", {"first_name": f"B{n}"}))["id"]
              for n in range(3)]  # fmt: skip
    await engine.sync_now()
    assert await engine.update_many("contacts", others, {"status": "inactive"}) == 3
    await engine.sync_now()
    for other in others:
        assert (await admin.get_record("contacts", other))["status"] == "inactive"
    assert await engine.delete_many("contacts", others[:2]) == 2
    await engine.sync_now()
    assert {c["id"] for c in (await admin.list_records("contacts", deleted=True)).items} >= set(
        others[:2]
    )
    # restored on the server (the deleted-records dialog), it comes back with the next pull
    await admin.restore_record("contacts", created["id"])
    await engine.sync_now()
    back = engine.replica.get("contacts", created["id"])
    assert back is not None and back.data["title"] == "Folded" and not back.pending


async def test_two_replicas_edit_different_fields_and_both_survive(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Two", "title": "Dev"})
    one = await live.engine(team.admin)
    two = await live.engine(team.admin2)
    await asyncio.gather(one.sync_now(), two.sync_now())
    assert one.client_id != two.client_id

    await one.update("contacts", record["id"], {"title": "Lead"})
    await two.update("contacts", record["id"], {"company": "Acme"})
    await one.sync_now()
    await two.sync_now()  # based on version 1 too: merged, no conflict
    await one.sync_now()
    for engine in (one, two):
        data = shown(engine, "contacts", record["id"])
        assert data is not None and data["title"] == "Lead" and data["company"] == "Acme"
        assert engine.state.conflicts == 0 and engine.replica.conflicts() == []
    server = await admin.get_record("contacts", record["id"])
    assert (server["title"], server["company"], server["version"]) == ("Lead", "Acme", 3)


async def test_the_same_field_edited_twice_is_a_conflict_the_replica_lists(
    live: Live, team: Team
) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Clash", "title": "Dev"})
    one = await live.engine(team.admin)
    two = await live.engine(team.admin2)
    await one.sync_now()
    await two.sync_now()

    await one.update("contacts", record["id"], {"title": "Mine"})
    await two.update("contacts", record["id"], {"title": "Theirs", "company": "Kept"})
    await one.sync_now()
    await two.sync_now()

    [conflict] = two.replica.conflicts()
    assert (conflict.field, conflict.server_value, conflict.client_value) == (
        "title", "Mine", "Theirs",
    )  # fmt: skip
    assert conflict.record_id == record["id"] and conflict.server_changed_by == str(team.admin.id)
    assert two.state.conflicts == 1
    data = shown(two, "contacts", record["id"])
    assert data is not None and data["title"] == "Mine"  # the server's value stays
    assert data["company"] == "Kept"  # the other field merged
    assert two.state.pending == 0  # settled: a conflict is data, not a stuck entry
    assert one.replica.conflicts() == []  # the first writer had none

    resolved = await two.resolve_conflict(conflict.id, "take_mine")
    assert resolved.resolution == "take_mine"
    assert two.replica.conflicts() == [] and two.state.conflicts == 0
    await two.sync_now()
    await one.sync_now()
    for engine in (one, two):
        assert (shown(engine, "contacts", record["id"]) or {})["title"] == "Theirs"
    # resolved elsewhere: a replica that still listed it drops it on the next refresh
    assert await two.api.conflicts() == []


async def test_a_rejected_mutation_is_kept_and_the_row_reverts(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("accounts", {"name": "Solid", "industry": "Retail"})
    engine = await live.engine(team.admin)
    await engine.sync_now()

    await engine.update("accounts", record["id"], {"name": ""})  # a name is required
    assert (shown(engine, "accounts", record["id"]) or {})["name"] == ""
    nameless = await engine.create("accounts", {"industry": "Nothing"})
    good = await engine.create("accounts", {"name": "Fine"})
    await engine.sync_now()

    rejections = {r.record_id: r for r in engine.replica.rejections()}
    assert set(rejections) == {record["id"], nameless["id"]}
    update = rejections[record["id"]]
    assert update.op == "update" and update.code == "validation_error"
    assert update.fields == {"name": ""}
    assert any(d["field"] == "name" for d in update.details)
    assert rejections[nameless["id"]].op == "create"
    assert (shown(engine, "accounts", record["id"]) or {})["name"] == "Solid"  # reverted
    assert engine.replica.get("accounts", nameless["id"]) is None  # never existed
    assert shown(engine, "accounts", good["id"]) is not None  # the next one still applied
    assert (await admin.get_record("accounts", good["id"]))["name"] == "Fine"
    assert engine.state.rejections == 2 and engine.state.pending == 0

    await engine.dismiss_rejection(update.mutation_id)
    assert [r.record_id for r in engine.replica.rejections()] == [nameless["id"]]
    assert engine.state.rejections == 1


# -- offline and back ---------------------------------------------------------------------


async def test_offline_edits_wait_in_the_outbox_and_push_when_the_server_is_back(
    live: Live, team: Team
) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Away", "title": "Dev"})
    engine = await live.engine(team.admin, use_stream=True, poll_interval=0.5)
    await engine.start()
    await eventually(lambda: engine.state.status == "online" and engine.state.stream_connected,
                     what="online with a stream")  # fmt: skip
    assert shown(engine, "contacts", record["id"]) is not None

    await live.proxy.cut()
    await eventually(lambda: not engine.state.stream_connected, what="stream lost")
    await engine.update("contacts", record["id"], {"title": "Offline edit"})
    made = await engine.create("contacts", {"first_name": "Made", "last_name": "Offline"})
    await eventually(lambda: engine.state.status == "offline", what="offline")
    # a poll that began before the edits can fail first (offline with nothing tried yet):
    # the retries that follow try the push
    await eventually(lambda: engine.replica.outbox()[0].attempts >= 1, what="a push tried")
    assert engine.state.pending == 2 and engine.state.last_error  # tried, and kept
    assert engine.state.status == "offline"
    assert (await admin.get_record("contacts", record["id"]))["title"] == "Dev"
    assert (shown(engine, "contacts", record["id"]) or {})["title"] == "Offline edit"

    await live.proxy.restore()  # nobody touches the engine: it comes back by itself
    await eventually(
        lambda: engine.state.status == "online" and engine.state.pending == 0,
        what="back online with the outbox pushed",
    )
    assert (await admin.get_record("contacts", record["id"]))["title"] == "Offline edit"
    assert (await admin.get_record("contacts", made["id"]))["last_name"] == "Offline"
    assert await server_changes(live, team.tenant_id, record["id"]) == 2  # create + one edit
    await eventually(lambda: engine.state.stream_connected, what="stream back")


async def test_the_stream_brings_other_clients_changes(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    engine = await live.engine(team.admin, use_stream=True)  # no polling (an hour)
    await engine.start()
    await eventually(lambda: engine.state.stream_connected, what="stream")
    record = await admin.create_record("accounts", {"name": "Pushed to me"})
    await eventually(lambda: engine.replica.get("accounts", record["id"]) is not None,
                     timeout=5, what="the change to arrive")  # fmt: skip


async def test_without_the_stream_the_engine_polls(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    engine = await live.engine(team.admin, use_stream=False, poll_interval=0.1)
    await engine.start()
    await eventually(lambda: engine.state.status == "online", what="online")
    record = await admin.create_record("accounts", {"name": "Polled"})
    await eventually(lambda: engine.replica.get("accounts", record["id"]) is not None,
                     timeout=5, what="the poll")  # fmt: skip


async def test_a_push_whose_answer_was_lost_is_retried_and_applies_once(
    live: Live, team: Team
) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Once", "title": "Dev"})
    engine = await live.engine(team.admin)
    await engine.sync_now()
    await engine.update("contacts", record["id"], {"title": "Exactly once"})
    made = await engine.create("contacts", {"first_name": "Single", "last_name": "Copy"})

    live.proxy.drop_next(b"POST /api/sync/push")
    with pytest.raises(OfflineError):
        await engine.push()
    assert live.proxy.dropped == 1
    # the server applied it, the replica does not know: the entries wait, marked sent
    assert (await admin.get_record("contacts", record["id"]))["version"] == 2
    outbox = engine.replica.outbox()
    assert [(e.sent, e.attempts) for e in outbox] == [(True, 1), (True, 1)]
    assert outbox[0].last_error

    await engine.sync_now()  # the retry carries the same mutation ids
    assert engine.replica.outbox() == []
    assert engine.replica.rejections() == [] and engine.replica.conflicts() == []
    server = await admin.get_record("contacts", record["id"])
    assert server["title"] == "Exactly once" and server["version"] == 2  # not 3
    assert await server_changes(live, team.tenant_id, record["id"]) == 2
    copies = await admin.list_records("contacts", q="single")
    assert [c["id"] for c in copies.items] == [made["id"]]
    row = engine.replica.get("contacts", record["id"])
    assert row is not None and row.version == 2 and not row.pending


async def test_a_stopped_engine_resumes_from_its_file(live: Live, team: Team) -> None:
    """Closing and reopening the replica keeps the cursor, the outbox and the client id."""
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("accounts", {"name": "Durable"})
    engine = await live.engine(team.admin, name="desk")
    await engine.sync_now()
    await engine.update("accounts", record["id"], {"industry": "Queued"})
    cursor, client_id, path = engine.replica.cursor, engine.client_id, engine.replica.path
    await engine.stop()
    engine.replica.close()

    reopened = Replica(path)
    live.replicas.append(reopened)
    assert reopened.cursor == cursor and reopened.client_id == client_id
    assert [(e.op, e.fields) for e in reopened.outbox()] == [("update", {"industry": "Queued"})]
    again = SyncEngine(engine.api, reopened, backoff_base=0.05, backoff_cap=0.3)
    assert again.client_id == client_id
    await again.sync_now()
    assert (await admin.get_record("accounts", record["id"]))["industry"] == "Queued"


# -- resync -------------------------------------------------------------------------------


async def test_resync_rebuilds_the_rows_and_keeps_the_outbox(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    kept = await admin.create_record("accounts", {"name": "Kept"})
    gone = await admin.create_record("accounts", {"name": "Gone while away"})
    engine = await live.engine(team.admin)
    await engine.sync_now()
    old_cursor = engine.replica.cursor
    await engine.update("accounts", kept["id"], {"industry": "Edited offline"})
    created = await engine.create("accounts", {"name": "Created offline"})

    await admin.delete_record("accounts", gone["id"])
    added = await admin.create_record("accounts", {"name": "Added while away"})
    service = live.app[keys.SYNC_SERVICE]
    service._retention = timedelta(seconds=-1)  # the log the replica needs is pruned
    assert await service.prune() >= 1
    with pytest.raises(ResyncRequired):
        await engine.api.pull_changes(old_cursor)

    await engine.pull()  # 410 resync_required -> snapshot
    replica = engine.replica
    assert replica.cursor != old_cursor
    assert [(e.op, e.record_id) for e in replica.outbox()] == [
        ("update", kept["id"]), ("create", created["id"]),
    ]  # fmt: skip
    assert replica.get("accounts", gone["id"]) is None  # swept: the snapshot lacked it
    assert replica.get("accounts", added["id"]) is not None
    assert (shown(engine, "accounts", kept["id"]) or {})["industry"] == "Edited offline"
    assert shown(engine, "accounts", created["id"]) is not None

    await engine.sync_now()
    assert (await admin.get_record("accounts", kept["id"]))["industry"] == "Edited offline"
    assert (await admin.get_record("accounts", created["id"]))["name"] == "Created offline"
    assert replica.pending_count() == 0


# -- scope --------------------------------------------------------------------------------


async def test_an_employee_replica_holds_only_records_in_scope(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    employee_id, peer_id = str(team.employee.id), str(team.peer.id)
    mine = await admin.create_record("contacts", {"first_name": "Mine", "owner_id": employee_id})
    theirs = await admin.create_record("contacts", {"first_name": "Theirs", "owner_id": peer_id,
                                                    "department": "B"})  # fmt: skip
    unowned = await admin.create_record("contacts", {"first_name": "Nobody's"})
    engine = await live.engine(team.employee)

    def held() -> set[str]:
        return {r.id for r in engine.replica.query("contacts", limit=1000).rows}

    def in_scope() -> bool:
        rows = engine.replica.query("contacts", limit=1000).rows
        return all(employee_id in (r.data["owner_id"], r.data["assigned_to"]) for r in rows)

    await engine.sync_now()
    assert held() == {mine["id"]} and in_scope()

    # reassigned to the employee: arrives whole; reassigned away: removed
    await admin.update_record("contacts", theirs["id"], {"assigned_to": employee_id})
    await admin.update_record("contacts", mine["id"], {"owner_id": peer_id, "department": "B"})
    await engine.sync_now()
    assert held() == {theirs["id"]} and in_scope()
    assert (shown(engine, "contacts", theirs["id"]) or {})["first_name"] == "Theirs"
    # an edit the employee queued on a record that then left their scope is rejected, and
    # the replica still holds nothing outside the scope
    await engine.update("contacts", theirs["id"], {"title": "Too late"})
    await admin.update_record("contacts", theirs["id"], {"assigned_to": None})
    await engine.sync_now()
    assert held() == set() and in_scope()
    assert [r.record_id for r in engine.replica.rejections()] == [theirs["id"]]
    assert (await admin.get_record("contacts", theirs["id"])).get("title") is None
    assert unowned["id"] not in held()

    # the employee creates one: it is theirs, and stays after the pull
    made = await engine.create("contacts", {"first_name": "Own"})
    await engine.sync_now()
    assert held() == {made["id"]} and in_scope()


# -- the client's stream ------------------------------------------------------------------


async def test_the_change_stream_says_when_the_feed_moved(live: Live, team: Team) -> None:
    admin = await live.api(team.admin, direct=True)
    api = await live.api(team.employee)
    async with api.change_stream() as stream:
        hello = await asyncio.wait_for(stream.receive(), 5)
        await admin.create_record("accounts", {"name": "Moves"})
        changed = await asyncio.wait_for(stream.receive(), 5)
        assert changed > hello
        await live.proxy.cut()
        with pytest.raises(OfflineError):
            await asyncio.wait_for(stream.receive(), 5)


async def test_the_change_stream_offline_signed_out_and_refreshed(live: Live, team: Team) -> None:
    store = MemoryTokenStore()
    signed_in = ApiClient(live.url, timeout=5, token_store=store)
    live.clients.append(signed_in)
    session = await signed_in.login(team.admin.email, team.admin.password)

    await live.proxy.cut()
    down = ApiClient(live.proxy.url, timeout=2, token_store=store)
    live.clients.append(down)
    assert await down.restore_session()
    with pytest.raises(OfflineError):
        async with down.change_stream():
            pass
    anonymous = ApiClient(live.url, timeout=2)
    live.clients.append(anonymous)
    with pytest.raises(AuthError):
        async with anonymous.change_stream():
            pass

    # an expired access token is renewed like for any call, and the handshake retried
    original = await store.get()
    assert original is not None
    expired = MemoryTokenStore(
        Tokens(
            access_token=expired_access_token(live.app, team.admin, session.session_id),
            refresh_token=original.refresh_token,
        )
    )
    renewing = ApiClient(live.url, timeout=5, token_store=expired)
    live.clients.append(renewing)
    assert await renewing.restore_session()
    async with renewing.change_stream() as stream:
        assert await asyncio.wait_for(stream.receive(), 5) >= 0
    rotated = await expired.get()
    assert rotated is not None and rotated.refresh_token != original.refresh_token


# -- the engine's own edges ---------------------------------------------------------------


async def test_a_push_refused_as_a_whole_is_narrowed_to_the_one_entry(
    live: Live, team: Team
) -> None:
    engine = await live.engine(team.admin)
    await engine.sync_now()
    first = await engine.create("accounts", {"name": "Before"})
    # an entry no server accepts (an entity name longer than the push allows): the whole
    # push is a 422, so the engine halves the batch until it finds that one entry
    with sqlite3.connect(engine.replica.path) as raw:
        raw.execute(
            "INSERT INTO outbox (mutation_id, entity, record_id, op, base_version, fields, "
            "created_at) VALUES (?, ?, ?, 'create', NULL, '{}', '2026-01-01T00:00:00+00:00')",
            (str(uuid.uuid4()), "x" * 60, str(uuid.uuid4())),
        )
    last = await engine.create("accounts", {"name": "After"})
    await engine.sync_now()
    assert engine.replica.outbox() == []
    [rejection] = engine.replica.rejections()
    assert rejection.entity == "x" * 60 and rejection.code == "validation_error"
    admin = await live.api(team.admin, direct=True)
    for made in (first, last):
        assert (await admin.get_record("accounts", made["id"]))["version"] == 1


async def test_stopping_mid_push_leaves_nothing_half_done(live: Live, team: Team) -> None:
    engine = await live.engine(team.admin, push_batch=5)
    await engine.sync_now()
    made = [await engine.create("accounts", {"name": f"Stop {n}"}) for n in range(40)]
    await engine.start()
    await eventually(lambda: engine.replica.pending_count() < 40, what="a first batch")
    await engine.stop()
    assert engine.state.status == "stopped"
    left = {e.record_id for e in engine.replica.outbox()}
    admin = await live.api(team.admin, direct=True)
    on_server = {a["id"] for a in (await admin.list_records("accounts", limit=100)).items}
    ids = {m["id"] for m in made}
    assert left | on_server >= ids and len(left) < 40  # stopped between batches, not before
    assert not (left - ids)
    again = SyncEngine(engine.api, engine.replica, backoff_base=0.05, backoff_cap=0.3)
    await again.sync_now()
    listed = await admin.list_records("accounts", limit=100)
    assert sorted(a["name"] for a in listed.items) == sorted(m["name"] for m in made)


async def test_an_ended_login_parks_the_engine_signed_out(live: Live, team: Team) -> None:
    engine = await live.engine(team.admin)
    await engine.start()
    await eventually(lambda: engine.state.status == "online", what="online")
    other = await live.api(team.admin, direct=True)
    await other.logout(all_sessions=True)  # every session of the user ends
    await engine.create("accounts", {"name": "Not now"})
    await eventually(lambda: engine.state.status == "signed_out", what="signed out")
    assert engine.state.pending == 1 and engine.state.last_error


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 1.0, 30.0, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        step = min(30.0, 2.0 ** (n - 1))
        assert step / 2 <= delay <= step
    assert delays[-1] <= 30.0 and delays[0] <= 1.0
    assert len({round(backoff_delay(3, 1.0, 30.0, rng), 6) for _ in range(20)}) > 1


async def test_a_read_only_server_keeps_the_outbox_instead_of_rejecting_it(
    live: Live, team: Team
) -> None:
    engine = await live.engine(team.admin)
    await engine.sync_now()
    made = [await engine.create("accounts", {"name": f"Later {n}"}) for n in range(3)]
    settings = live.app[keys.SETTINGS]
    settings.PRODUCTION_READONLY = True  # the whole push is a 403 read_only
    try:
        with pytest.raises(Forbidden):
            await engine.sync_now()
        assert engine.replica.rejections() == [] and engine.replica.pending_count() == 3
        assert all(shown(engine, "accounts", m["id"]) is not None for m in made)
        assert "read-only" in (engine.replica.outbox()[0].last_error or "")
    finally:
        settings.PRODUCTION_READONLY = False
    await engine.sync_now()
    assert engine.replica.pending_count() == 0 and engine.replica.rejections() == []
