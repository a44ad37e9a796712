"""Replicas filled through the Replica API (a pulled snapshot page), and an engine on them
whose server is not reachable: edits land in the replica and its outbox, as offline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aisha_desktop.client import ApiClient
from aisha_desktop.client.models import Change, ChangesPage
from aisha_desktop.replica import Replica
from aisha_desktop.sync import SyncEngine

FIRST = ["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]
LAST = ["Smith", "Jones", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Moore"]
STATUSES = ["active", "inactive", "prospect"]


def record(entity: str, index: int, **fields: Any) -> dict[str, Any]:
    rid = str(uuid.UUID(int=index + 1 + 10_000_000 * len(entity)))
    base: dict[str, Any] = {
        "id": rid,
        "version": 1,
        "status": STATUSES[index % 3],
        "owner_id": None,
        "assigned_to": None,
        "custom_fields": {},
        "created_at": "2026-10-01T09:00:00+00:00",
        "updated_at": f"2020-11-{1 + index % 28:02d}T{index % 24:02d}:00:00+00:00",
        "deleted_at": None,
    }
    if entity in ("contacts", "leads"):
        first, last = FIRST[index % len(FIRST)], LAST[index % len(LAST)] + f"{index:04d}"
        base.update(
            first_name=first,
            last_name=last,
            email=f"{first}.{last}@example.com".lower(),
            phone=f"+1 555 {index:07d}",
            company=f"Company {index % 40}",
            title="Buyer",
        )
    elif entity == "accounts":
        base.update(name=f"Account {index:04d}", email=f"info{index}@acct.example", type="customer")
    else:
        base.update(name=f"{entity} {index}", subject=f"Call {index}")
    base.update(fields)
    return base


def fill(
    replica: Replica,
    rows: dict[str, list[dict[str, Any]]],
    settings: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    changes = [
        Change(entity, r["id"], "upsert", r["version"], 1, r)
        for entity, items in rows.items()
        for r in items
    ]
    for entity, items in (settings or {}).items():
        changes += [Change(entity, r["id"], "upsert", 1, 1, r) for r in items]
    cursor = replica.cursor
    replica.apply_page(ChangesPage(changes, f"{cursor or 'c'}+", False, cursor is None), cursor)


@dataclass
class Desk:
    replica: Replica
    engine: SyncEngine
    api: ApiClient
    server_url: str = "http://127.0.0.1:9"
    me: Any = None
    closers: list[Any] = field(default_factory=list)


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Replica]:
    with Replica.open(tmp_path, "http://127.0.0.1:9", "t1", str(uuid.uuid4())) as r:
        yield r


@pytest.fixture
async def desk(replica: Replica) -> Any:
    # a port nothing listens on: the engine is never started; edits stay in the outbox
    api = ApiClient("http://127.0.0.1:9", timeout=1)
    engine = SyncEngine(api, replica, use_stream=False)
    yield Desk(replica, engine, api)
    await engine.stop()
    await api.aclose()
