"""The replica on its own: schema and file, pages applied atomically with their cursor, the
outbox's folding rules, push results, resync sweeps, the views' queries, and reopening."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from aisha_desktop.client.models import Change, ChangesPage, MutationError, PushResult
from aisha_desktop.replica import (
    SCHEMA_VERSION,
    RecordMissing,
    Replica,
    ReplicaError,
    replica_path,
)

T0 = "2026-11-01T10:00:00+00:00"


def contact(record_id: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "id": record_id,
        "version": version,
        "first_name": None,
        "last_name": None,
        "email": None,
        "title": None,
        "company": None,
        "status": "active",
        "owner_id": None,
        "assigned_to": None,
        "custom_fields": {},
        "created_at": T0,
        "updated_at": T0,
        "deleted_at": None,
        **fields,
    }


def upsert(entity: str, data: dict[str, Any]) -> Change:
    return Change(entity, data["id"], "upsert", data["version"], 1, data)


def page(
    *changes: Change, cursor: str = "c1", snapshot: bool = False, more: bool = False
) -> ChangesPage:
    return ChangesPage(list(changes), cursor, more, snapshot)


def applied(entry: Any, record: dict[str, Any], status: str = "applied") -> PushResult:
    return PushResult(entry.mutation_id, status, entry.entity, entry.record_id,
                      record["version"], record, [], None, False)  # fmt: skip


def rejected(entry: Any, code: str = "validation_error") -> PushResult:
    return PushResult(entry.mutation_id, "rejected", entry.entity, entry.record_id, None, None,
                      [], MutationError(code, "no", [{"field": "x"}]), False)  # fmt: skip


@pytest.fixture
def replica(tmp_path: Path) -> Any:
    with Replica(tmp_path / "r.sqlite3") as r:
        yield r


def new_id() -> str:
    return str(uuid.uuid4())


# -- file ---------------------------------------------------------------------------------


def test_one_versioned_wal_file_per_server_tenant_and_user(tmp_path: Path) -> None:
    path = replica_path(tmp_path, "http://Host:8080/", "t1", "u1")
    assert path == replica_path(tmp_path, "http://host:8080", "t1", "u1")
    assert path != replica_path(tmp_path, "http://host:8080", "t1", "u2")
    assert path != replica_path(tmp_path, "http://host:8080", "t2", "u1")
    assert "host" not in path.name
    with Replica.open(tmp_path, "http://host:8080", "t1", "u1") as replica:
        assert replica.path == path and replica.schema_version == SCHEMA_VERSION
        client_id = replica.client_id
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.execute("PRAGMA user_version = 99")  # as if a newer AiSHA wrote it
    raw.commit()
    raw.close()
    with pytest.raises(ReplicaError, match="newer"):
        Replica(path)
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    raw.commit()
    raw.close()
    with Replica(path) as again:
        assert again.client_id == client_id  # made once, kept


def test_reopening_keeps_cursor_outbox_and_rows(tmp_path: Path) -> None:
    rid = new_id()
    with Replica(tmp_path / "r.sqlite3") as replica:
        replica.apply_page(
            page(upsert("contacts", contact(rid, first_name="Ann")), cursor="k1"), None
        )
        replica.local_update("contacts", rid, {"title": "Boss"})
        made = replica.local_create("accounts", {"name": "Local"})
        outbox = replica.outbox()
    with Replica(tmp_path / "r.sqlite3") as reopened:
        assert reopened.cursor == "k1"
        assert reopened.outbox() == outbox
        row = reopened.get("contacts", rid)
        assert row is not None and row.data["title"] == "Boss" and row.pending
        assert reopened.get("accounts", made["id"]) is not None


# -- pull ---------------------------------------------------------------------------------


def test_a_page_and_its_cursor_apply_together_or_not_at_all(replica: Replica) -> None:
    good = upsert("contacts", contact(new_id(), first_name="Good"))
    broken = Change("contacts", new_id(), "upsert", 1, 1, None)  # an upsert without data
    with pytest.raises(AssertionError):
        replica.apply_page(page(good, broken, cursor="c1"), None)
    assert replica.cursor is None and replica.count("contacts") == 0

    assert replica.apply_page(page(good, cursor="c1"), None) == {"contacts"}
    assert replica.cursor == "c1"
    # a page asked from another cursor (a concurrent pull, a reset) is not applied
    late = upsert("contacts", contact(new_id(), first_name="Late"))
    assert replica.apply_page(page(late, cursor="c9"), "c0") == set()
    assert replica.cursor == "c1" and replica.count("contacts") == 1


def test_log_pages_never_take_a_row_back_to_an_older_version(replica: Replica) -> None:
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 3, title="v3")), cursor="c1"), None)
    replica.apply_page(page(upsert("contacts", contact(rid, 2, title="v2")), cursor="c2"), "c1")
    row = replica.get("contacts", rid)
    assert row is not None and row.version == 3 and row.data["title"] == "v3"
    # an older removal is ignored, a current one applies
    replica.apply_page(page(Change("contacts", rid, "delete", 2, 5, None), cursor="c3"), "c2")
    assert replica.get("contacts", rid) is not None
    replica.apply_page(page(Change("contacts", rid, "delete", 4, 6, None), cursor="c4"), "c3")
    assert replica.get("contacts", rid) is None


def test_settings_rows_replicate(replica: Replica) -> None:
    label = {"id": new_id(), "version": 1, "entity_name": "accounts", "custom_label": "Clients"}
    replica.apply_page(page(Change("entity_labels", label["id"], "upsert", 1, 1, label)), None)
    assert replica.settings("entity_labels") == [label]
    with pytest.raises(ValueError):
        replica.settings("contacts")
    with pytest.raises(ValueError):
        replica.local_create("entity_labels", {"custom_label": "x"})


def test_a_finished_snapshot_sweeps_what_it_did_not_send_and_keeps_the_outbox(
    replica: Replica,
) -> None:
    kept, gone, edited_gone, made = new_id(), new_id(), new_id(), None
    first = [upsert("contacts", contact(i, first_name=n))
             for i, n in ((kept, "Kept"), (gone, "Gone"), (edited_gone, "Edited"))]  # fmt: skip
    replica.apply_page(page(*first, cursor="log1", snapshot=True), None)
    replica.local_update("contacts", edited_gone, {"title": "Pending"})
    made = replica.local_create("contacts", {"first_name": "Local"})
    outbox = replica.outbox()

    replica.reset_for_resync()
    assert replica.cursor is None
    assert replica.count("contacts") == 4  # still shown while the snapshot runs
    part = replica.apply_page(page(upsert("contacts", contact(kept, 2, first_name="Kept")),
                                   cursor="snap1", snapshot=True, more=True), None)  # fmt: skip
    assert part == {"contacts"} and replica.count("contacts") == 4  # not finished: no sweep
    replica.apply_page(page(cursor="log2", snapshot=True), "snap1")
    assert replica.cursor == "log2"
    assert replica.get("contacts", gone) is None
    # the pending edit's base is gone: nothing to show, but the edit still waits to be pushed
    assert replica.get("contacts", edited_gone) is None
    assert replica.outbox() == outbox
    assert replica.get("contacts", made["id"]) is not None  # created here: never swept
    row = replica.get("contacts", kept)
    assert row is not None and row.version == 2


# -- local edits and the outbox -----------------------------------------------------------


def test_updates_fold_per_field_and_keep_the_original_base_version(replica: Replica) -> None:
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 1, first_name="A")), cursor="c1"), None)
    replica.local_update("contacts", rid, {"title": "One", "custom_fields": {"tier": "gold"}})
    # meanwhile the server moved on (another field): the base follows, the entry's base not
    replica.apply_page(page(upsert("contacts", contact(rid, 2, first_name="A", email="a@x.io")),
                            cursor="c2"), "c1")  # fmt: skip
    shown = replica.local_update("contacts", rid, {"title": "Two", "company": "Acme",
                                                   "custom_fields": {"region": "EU"}})  # fmt: skip
    [entry] = replica.outbox()
    assert entry.op == "update" and entry.base_version == 1
    assert entry.fields == {"title": "Two", "company": "Acme",
                            "custom_fields": {"tier": "gold", "region": "EU"}}  # fmt: skip
    assert shown["email"] == "a@x.io" and shown["title"] == "Two"
    assert shown["custom_fields"] == {"tier": "gold", "region": "EU"}
    row = replica.get("contacts", rid)
    assert row is not None and row.version == 2 and row.pending
    # writing values the row already has queues nothing
    replica.local_update("contacts", rid, {"title": "Two", "custom_fields": {"tier": "gold"}})
    assert len(replica.outbox()) == 1


def test_no_folding_into_a_sent_entry_or_past_a_later_create(replica: Replica) -> None:
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 4)), cursor="c1"), None)
    replica.local_update("contacts", rid, {"title": "First"})
    [sent] = replica.next_batch(10)
    assert sent.sent and sent.attempts == 1
    replica.local_update("contacts", rid, {"title": "Second"})  # the first is in flight
    entries = replica.outbox()
    assert [(e.fields, e.base_version) for e in entries] == [
        ({"title": "First"}, 4), ({"title": "Second"}, 4),
    ]  # fmt: skip
    account = replica.local_create("accounts", {"name": "New"})
    replica.local_update("contacts", rid, {"account_id": account["id"]})  # refers to it
    assert [e.op for e in replica.outbox()] == ["update", "update", "create", "update"]
    # one entry per record in a batch: the next edit is based on the previous result; an
    # unsettled entry goes again (same mutation id)
    again = replica.next_batch(10)
    assert [(e.mutation_id, e.attempts) for e in again] == [(sent.mutation_id, 2)]
    replica.apply_results(again, [applied(again[0], contact(rid, 5, title="First"))])
    batch = replica.next_batch(10)
    assert [(e.entity, e.op) for e in batch] == [("contacts", "update"), ("accounts", "create")]
    assert batch[0].base_version == 5  # rebased: the server wrote nothing else in between


def test_edits_of_a_queued_create_fold_into_it_and_a_delete_drops_it(replica: Replica) -> None:
    made = replica.local_create("contacts", {"first_name": "New"})
    assert made["created_at"] and made["id"]
    replica.local_update("contacts", made["id"], {"title": "Folded"})
    [entry] = replica.outbox()
    assert entry.op == "create" and entry.fields == {"first_name": "New", "title": "Folded"}
    replica.local_delete("contacts", made["id"])
    assert replica.outbox() == [] and replica.get("contacts", made["id"]) is None
    with pytest.raises(RecordMissing):
        replica.local_update("contacts", made["id"], {"title": "x"})


def test_a_delete_hides_the_row_and_replaces_unsent_edits(replica: Replica) -> None:
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 2)), cursor="c1"), None)
    replica.local_update("contacts", rid, {"title": "Doomed"})
    replica.local_delete("contacts", rid)
    assert [(e.op, e.base_version) for e in replica.outbox()] == [("delete", 2)]
    assert replica.get("contacts", rid) is None and replica.count("contacts") == 0
    with pytest.raises(RecordMissing):
        replica.local_delete("contacts", rid)
    [entry] = replica.next_batch(5)
    gone = contact(rid, 3, deleted_at="2026-11-02T00:00:00+00:00")
    replica.apply_results([entry], [applied(entry, gone)])
    assert replica.outbox() == [] and replica.base("contacts", rid) is None


def test_bulk_edits_apply_to_all_or_none(replica: Replica) -> None:
    ids = [new_id() for _ in range(3)]
    rows = [upsert("contacts", contact(i, 2, title="Dev" if n else "Lead")) for n, i in
            enumerate(ids)]  # fmt: skip
    replica.apply_page(page(*rows, cursor="c1"), None)
    # the first already holds the value: two change, each one outbox entry
    assert replica.local_update_many("contacts", [*ids, ids[1]], {"title": "Lead"}) == 2
    assert [(e.op, e.record_id, e.fields) for e in replica.outbox()] == [
        ("update", ids[1], {"title": "Lead"}),
        ("update", ids[2], {"title": "Lead"}),
    ]
    assert all(r is not None and r.data["title"] == "Lead"
               for r in (replica.get("contacts", i) for i in ids))  # fmt: skip
    # one record not in the replica: nothing changes, nothing is queued
    with pytest.raises(RecordMissing):
        replica.local_update_many("contacts", [ids[0], new_id()], {"title": "CEO"})
    with pytest.raises(ValueError, match="not editable"):
        replica.local_update_many("contacts", ids, {"id": new_id()})
    assert len(replica.outbox()) == 2
    assert (replica.get("contacts", ids[0]) or contact("x")).data["title"] == "Lead"
    with pytest.raises(RecordMissing):
        replica.local_delete_many("contacts", [ids[0], new_id()])
    assert replica.count("contacts") == 3 and len(replica.outbox()) == 2
    # a bulk delete replaces the unsent edits, as one delete does
    assert replica.local_delete_many("contacts", ids) == 3
    assert replica.count("contacts") == 0
    assert [(e.op, e.base_version) for e in replica.outbox()] == [("delete", 2)] * 3


def test_a_read_does_not_wait_behind_a_slow_one(replica: Replica) -> None:
    """The GUI thread's page read is not held up by a worker's read under way (each read
    borrows a connection of its own), and closing waits for reads to end."""
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 1, title="Dev")), cursor="c1"), None)
    inside, release = threading.Event(), threading.Event()

    def slow() -> None:
        with replica._read():  # a long read: holds its connection until released
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=slow)
    worker.start()
    assert inside.wait(10)
    started = time.perf_counter()
    assert [r.id for r in replica.query("contacts").rows] == [rid]  # while the other reads
    assert time.perf_counter() - started < 1.0
    release.set()
    worker.join(10)
    # more readers than the pool holds at once: they queue, and all finish
    done: list[int] = []
    threads = [
        threading.Thread(target=lambda: done.append(replica.count("contacts"))) for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert done == [1] * 12
    replica.close()
    with pytest.raises(ReplicaError, match="closed"):
        replica.count("contacts")


def test_bad_local_edits_are_refused(replica: Replica) -> None:
    with pytest.raises(ValueError, match="not editable"):
        replica.local_create("contacts", {"id": new_id(), "first_name": "x"})
    with pytest.raises(ValueError):
        replica.local_create("widgets", {"x": 1})
    with pytest.raises(RecordMissing):
        replica.local_update("contacts", new_id(), {"title": "x"})
    with pytest.raises(TypeError):
        replica.local_create("contacts", ["first_name"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        replica.local_create("contacts", {}, record_id="not-a-uuid")
    assert replica.outbox() == []


# -- push results -------------------------------------------------------------------------


def test_results_settle_entries_rebase_later_edits_and_revert_rejections(
    replica: Replica,
) -> None:
    rid = new_id()
    replica.apply_page(page(upsert("contacts", contact(rid, 1, title="Dev")), cursor="c1"), None)
    replica.local_update("contacts", rid, {"title": "Lead"})
    [first] = replica.next_batch(10)
    replica.local_update("contacts", rid, {"company": "Acme"})  # made on top of the first
    replica.apply_results([first], [applied(first, contact(rid, 2, title="Lead"))])
    [later] = replica.outbox()
    assert later.base_version == 2  # nobody wrote in between: based on our result
    row = replica.get("contacts", rid)
    assert row is not None and row.version == 2 and row.data["company"] == "Acme"

    [second] = replica.next_batch(10)
    replica.apply_results([second], [rejected(second)])
    row = replica.get("contacts", rid)
    assert row is not None and not row.pending and row.data.get("company") is None
    [rejection] = replica.rejections()
    assert (rejection.op, rejection.fields, rejection.code) == (
        "update", {"company": "Acme"}, "validation_error",
    )  # fmt: skip
    assert rejection.details == [{"field": "x"}]
    # a replayed (older) result never takes the base back
    replica.apply_results([first], [applied(first, contact(rid, 1, title="Old"))])
    row = replica.get("contacts", rid)
    assert row is not None and row.version == 2 and row.data["title"] == "Lead"


def test_a_rejected_create_takes_its_later_edits_along(replica: Replica) -> None:
    made = replica.local_create("accounts", {"industry": "No name"})
    [create] = replica.next_batch(10)
    replica.local_update("accounts", made["id"], {"city": "Oslo"})  # not folded: in flight
    [update] = [e for e in replica.outbox() if e.op == "update"]
    assert update.base_version is None  # known once the create is applied
    replica.apply_results([create], [rejected(create)])
    assert replica.outbox() == [] and replica.get("accounts", made["id"]) is None
    codes = {r.mutation_id: r.code for r in replica.rejections()}
    assert codes == {create.mutation_id: "validation_error", update.mutation_id: "create_rejected"}


def test_an_applied_create_gives_later_edits_their_base(replica: Replica) -> None:
    made = replica.local_create("accounts", {"name": "Made"})
    [create] = replica.next_batch(10)
    replica.local_update("accounts", made["id"], {"city": "Oslo"})
    server = {**made, "version": 1, "created_at": T0, "updated_at": T0, "deleted_at": None}
    replica.apply_results([create], [applied(create, server)])
    [update] = replica.outbox()
    assert update.base_version == 1
    row = replica.get("accounts", made["id"])
    assert row is not None and row.version == 1 and row.data["city"] == "Oslo" and row.pending


# -- views --------------------------------------------------------------------------------


def test_queries_sort_filter_search_and_page(replica: Replica) -> None:
    owner = new_id()
    rows = [
        contact(new_id(), last_name=f"Name{n % 37:02d}", email=f"p{n}@ex_{n % 3}.test",
                status="active" if n % 2 else "inactive", owner_id=owner if n % 5 == 0 else None,
                updated_at=f"2026-11-01T10:{n % 60:02d}:00+00:00")
        for n in range(250)
    ]  # fmt: skip
    replica.apply_page(page(*(upsert("contacts", r) for r in rows), cursor="c1"), None)
    by_name = sorted(rows, key=lambda r: (r["last_name"].lower(), r["id"]))
    assert [r.id for r in replica.query("contacts", sort="last_name", limit=250).rows] == [
        r["id"] for r in by_name
    ]
    # keyset pages and offset pages give the same order, descending too
    for sort in ("last_name", "-updated_at", "email"):
        keyset: list[str] = []
        after = None
        while True:
            result = replica.query("contacts", sort=sort, limit=40, after=after)
            keyset += [r.id for r in result.rows]
            after = result.next_after
            if after is None:
                break
        offset = [
            r.id
            for o in range(0, 250, 40)
            for r in replica.query("contacts", sort=sort, limit=40, offset=o).rows
        ]
        assert keyset == offset and len(set(keyset)) == 250
    desc = replica.query("contacts", sort="-updated_at", limit=250).rows
    stamps = [r.data["updated_at"] for r in desc]
    assert stamps == sorted(stamps, reverse=True)

    active = replica.query("contacts", filters={"status": "active"}, limit=250).rows
    assert len(active) == 125 and all(r.data["status"] == "active" for r in active)
    owned = replica.query("contacts", filters={"owner_id": owner}, limit=250).rows
    assert len(owned) == 50
    assert len(replica.query("contacts", filters={"owner_id": None}, limit=250).rows) == 200
    both = replica.query("contacts", filters={"status": ["active", "inactive"]}, limit=300)
    assert len(both.rows) == 250
    assert replica.query("contacts", filters={"status": []}).rows == []
    # search: every word, case-insensitive, LIKE wildcards taken literally
    found = replica.query("contacts", search="NAME07 ex_1", limit=250).rows
    assert found and all("name07" in r.data["last_name"].lower() for r in found)
    assert all(r.data["email"].endswith("ex_1.test") for r in found)
    assert replica.query("contacts", search="ex%1").rows == []
    with pytest.raises(ValueError):
        replica.query("contacts", sort="password")
    with pytest.raises(ValueError):
        replica.query("contacts", filters={"1=1; --": "x"})
    with pytest.raises(ValueError):
        replica.query("widgets")


def test_a_local_edit_moves_the_row_in_the_views(replica: Replica) -> None:
    ids = [new_id() for _ in range(3)]
    replica.apply_page(page(*(upsert("contacts", contact(i, last_name=f"L{n}"))
                              for n, i in enumerate(ids)), cursor="c1"), None)  # fmt: skip
    replica.local_update("contacts", ids[2], {"last_name": "A-first", "email": "Z@Z.IO"})
    assert replica.query("contacts", sort="last_name").rows[0].id == ids[2]
    assert replica.query("contacts", sort="-updated_at").rows[0].id == ids[2]  # edited now
    assert [r.id for r in replica.query("contacts", search="z@z").rows] == [ids[2]]


def test_a_local_create_is_shown_owned_by_the_replica_user(tmp_path: Path) -> None:
    user = new_id()
    with Replica.open(tmp_path, "http://server", "tenant", user) as replica:
        mine = replica.local_create("contacts", {"first_name": "Mine"})
        given = replica.local_create("contacts", {"first_name": "Given", "owner_id": "other"})
        assert mine["owner_id"] == user and given["owner_id"] == "other"
        [row] = replica.query("contacts", filters={"owner_id": user}).rows
        assert row.id == mine["id"]
        # only shown: the server decides, so the push does not carry it
        assert replica.outbox()[0].fields == {"first_name": "Mine"}
    with Replica(replica_path(tmp_path, "http://server", "tenant", user)) as reopened:
        assert reopened.local_create("notes", {"content": "x"})["owner_id"] == user


def test_a_version_1_file_gains_the_count_index(tmp_path: Path) -> None:
    from aisha_desktop.replica import schema

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as raw:  # a file as version 1 wrote it
        schema.MIGRATIONS[0](raw)
        raw.execute("PRAGMA user_version = 1")
    replica = Replica(path)
    try:
        assert replica.count("contacts") == 0
    finally:
        replica.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        plan = " ".join(
            str(r[-1])
            for r in raw.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM r_contacts WHERE hidden = 0"
            )
        )
    assert "ix_r_contacts_hidden" in plan, plan
