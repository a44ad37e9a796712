"""The replica's C.A.R.E. tables: pulled audit entries and states, rollups kept by triggers
(inserts, snapshot re-sends, deletes, pruning, state moves), keyset pages with filters, the
v3 -> v4 migration."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aisha_desktop.client.models import Change, ChangesPage
from aisha_desktop.replica import Replica, ReplicaError
from aisha_desktop.replica.care import AuditFilters, utc_text
from aisha_desktop.replica.schema import MIGRATIONS

DAY = date(2026, 11, 20)


def entry(n: int, day_offset: int, event: str, **extra: Any) -> dict[str, Any]:
    at = datetime(2026, 11, 20, 12, tzinfo=UTC) - timedelta(days=day_offset, minutes=n)
    return {
        "id": str(uuid.UUID(int=n + 1)),
        "tenant_id": str(uuid.UUID(int=999)),
        "event_type": event,
        "entity_type": extra.pop("entity_type", "lead"),
        "entity_id": str(uuid.UUID(int=10_000 + n)),
        "action_origin": extra.pop("origin", "care_autonomous"),
        "reason": extra.pop("reason", f"reason {n}"),
        "metadata": extra.pop("metadata", {}),
        "created_at": at.isoformat(),
        "version": 1,
    }


def state(n: int, current: str) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=50_000 + n)),
        "entity_type": "lead",
        "entity_id": str(uuid.UUID(int=60_000 + n)),
        "current_state": current,
        "previous_state": None,
        "transitioned_at": "2026-11-19T10:00:00Z",
        "transition_reason": "test",
        "metadata": {},
        "version": 1,
    }


def page(
    replica: Replica, audit: list[dict[str, Any]], states: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *, snapshot: bool = False, deletes: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> None:  # fmt: skip
    changes = [Change("care_audit_log", a["id"], "upsert", 1, 1, a) for a in audit]
    changes += [Change("care_states", s["id"], "upsert", 1, 1, s) for s in states]
    changes += [Change(entity, rid, "delete", None, 1, None) for entity, rid in deletes]
    cursor = replica.cursor
    touched = replica.apply_page(ChangesPage(changes, f"{cursor or 'c'}+", False, snapshot), cursor)
    if changes:
        assert touched & {"care_audit_log", "care_states"}


@pytest.fixture
def replica(tmp_path: Path) -> Any:
    with Replica.open(tmp_path, "http://127.0.0.1:9", "t1", str(uuid.uuid4())) as r:
        yield r


def test_rollups_follow_inserts_resends_deletes_and_state_moves(replica: Replica) -> None:
    rows = [
        entry(1, 0, "ESCALATION_DETECTED", metadata={"trigger_type": "objection"}),
        entry(2, 0, "ESCALATION_DETECTED", metadata={"trigger_type": "objection"}),
        entry(3, 1, "ESCALATION_DETECTED", metadata={"trigger_type": "lead_stagnant"}),
        entry(4, 1, "ACTION_ALLOWED"),
        entry(5, 2, "ACTION_BLOCKED"),
        entry(6, 29, "STATE_TRANSITION"),
        entry(7, 30, "STATE_TRANSITION"),  # the 31st day back: outside 30 days
    ]
    page(replica, rows, [state(1, "warm"), state(2, "warm"), state(3, "hot")], snapshot=True)
    page(replica, rows[:3])  # pulled again (a snapshot after a resync): counted once
    s = replica.care_summary(DAY, 30)
    assert s.days[0] == DAY - timedelta(days=29) and s.days[-1] == DAY and len(s.days) == 30
    assert s.per_day["ESCALATION_DETECTED"][-1] == 2 and s.per_day["ESCALATION_DETECTED"][-2] == 1
    assert s.total("ESCALATION_DETECTED") == 3
    assert s.total("ACTION_ALLOWED") == 1 and s.per_day["ACTION_BLOCKED"][-3] == 1
    assert s.total("STATE_TRANSITION") == 1 and s.per_day["STATE_TRANSITION"][0] == 1
    assert s.triggers == (("objection", 2), ("lead_stagnant", 1))
    assert dict(s.states) == {
        "cold": 0, "warm": 2, "hot": 1, "nurture": 0, "stale": 0, "won": 0, "lost": 0
    }  # fmt: skip
    assert s.entries == 7

    moved = {**state(2, "hot"), "previous_state": "warm"}
    page(replica, [], [moved, state(4, "frozen")], deletes=[("care_audit_log", rows[0]["id"])])
    s = replica.care_summary(DAY, 30)
    assert dict(s.states)["warm"] == 1 and dict(s.states)["hot"] == 2
    assert s.states[-1] == ("frozen", 1)  # a state this version does not know: after the rest
    assert s.triggers == (("lead_stagnant", 1), ("objection", 1))  # ties by name
    assert s.entries == 6
    page(replica, [], deletes=[("care_states", state(3, "hot")["id"])])
    assert dict(replica.care_summary(DAY, 30).states)["hot"] == 1


def test_a_finished_snapshot_sweeps_what_it_did_not_send(replica: Replica) -> None:
    old = [entry(n, 1, "ACTION_ALLOWED") for n in range(5)]
    page(replica, old, [state(1, "warm")], snapshot=True)
    replica.reset_for_resync()
    page(replica, old[:2], [], snapshot=True)  # the server kept two (retention)
    s = replica.care_summary(DAY, 30)
    assert s.total("ACTION_ALLOWED") == 2 and sum(n for _, n in s.states) == 0
    assert len(replica.care_audit(AuditFilters(), 50)) == 2


def test_pruning_by_retention_moves_the_rollups(replica: Replica) -> None:
    page(replica, [entry(n, n, "ACTION_BLOCKED") for n in range(10)], snapshot=True)
    cutoff = datetime(2026, 11, 20, tzinfo=UTC) - timedelta(days=4)
    assert replica.care_prune(cutoff) == 5  # days 5..9 back (12:00 minus minutes < cutoff)
    s = replica.care_summary(DAY, 30)
    assert s.total("ACTION_BLOCKED") == 5 and s.entries == 5
    assert replica.care_prune(cutoff) == 0


def test_keyset_pages_and_filters(replica: Replica) -> None:
    rows = [
        entry(
            n,
            n % 10,
            ("ACTION_ALLOWED", "ACTION_BLOCKED")[n % 2],
            entity_type=("lead", "opportunity")[n % 3 == 0],
            origin=("human", "care_autonomous")[n % 4 == 0],
            reason=f"Deal 50% off_{n}" if n == 17 else f"reason {n}",
            metadata={"trigger_type": "deal_decay"} if n == 18 else {},
        )
        for n in range(60)
    ]
    page(replica, rows, snapshot=True)
    newest_first = sorted(rows, key=lambda r: (utc_text(r["created_at"]), r["id"]), reverse=True)
    seen: list[str] = []
    after = None
    while True:
        got = replica.care_audit(AuditFilters(), 7, after)
        if not got:
            break
        seen += [e.id for e in got]
        after = (got[-1].created_at, got[-1].id)
    assert seen == [r["id"] for r in newest_first]  # every entry once, newest first

    def ids(**filters: Any) -> set[str]:
        return {e.id for e in replica.care_audit(AuditFilters(**filters), 100)}

    assert ids(event_type="ACTION_BLOCKED") == {
        r["id"] for r in rows if r["event_type"] == "ACTION_BLOCKED"
    }
    assert ids(entity_type="opportunity") == {
        r["id"] for r in rows if r["entity_type"] == "opportunity"
    }
    assert ids(action_origin="care_autonomous", event_type="ACTION_ALLOWED") == {
        r["id"] for r in rows if r["action_origin"] == "care_autonomous" and r["event_type"] == "ACTION_ALLOWED"
    }  # fmt: skip
    since = datetime(2026, 11, 18, tzinfo=UTC)
    until = datetime(2026, 11, 19, tzinfo=UTC)
    assert ids(since=since, until=until) == {
        r["id"] for r in rows if since <= datetime.fromisoformat(r["created_at"]) < until
    }
    assert ids(text="50% OFF_") == {rows[17]["id"]}  # % and _ are the characters typed
    assert ids(text="0% off") == {rows[17]["id"]}
    assert ids(text="%") == {rows[17]["id"]}
    assert ids(text="deal_dec") == {rows[18]["id"]}  # the trigger type
    assert ids(text=rows[33]["entity_id"][-6:]) == {rows[33]["id"]}
    assert ids(text="nothing like it") == set()


def test_a_version_3_file_gets_the_care_tables(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:3]:
        step(db)
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    with Replica(path) as replica:
        assert replica.schema_version == 4
        page(replica, [entry(1, 0, "WORKFLOW_TRIGGERED")], snapshot=True)
        assert replica.care_summary(DAY, 7).total("WORKFLOW_TRIGGERED") == 1


def test_the_audit_reader_is_its_own_and_can_be_interrupted(tmp_path: Path) -> None:
    replica = Replica(tmp_path / "r.sqlite3")
    page(replica, [entry(n, 0, "ACTION_ALLOWED") for n in range(3000)], snapshot=True)
    replica.care_interrupt()  # nothing running: no effect on what follows
    assert len(replica.care_audit(AuditFilters(), 10)) == 10
    done = threading.Event()
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            while not done.is_set():  # full scans (no match) until interrupted
                replica.care_audit(AuditFilters(text="no such words"), 10)
        except sqlite3.OperationalError as exc:
            errors.append(exc)

    worker = threading.Thread(target=scan)
    worker.start()
    try:
        for _ in range(20):  # the other reads go on meanwhile (they have their own reader)
            assert replica.care_summary(DAY, 30).total("ACTION_ALLOWED") == 3000
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            replica.care_interrupt()
            time.sleep(0.001)
    finally:
        done.set()
        worker.join()
    assert errors and "interrupt" in str(errors[0])
    assert len(replica.care_audit(AuditFilters(), 5)) == 5  # the reader still works
    replica.close()
    with pytest.raises(ReplicaError):
        replica.care_audit(AuditFilters(), 5)
