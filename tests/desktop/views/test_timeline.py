"""The record panel's timeline against a real server (SQLite and PostgreSQL): activities,
notes, field changes with old and new values, who and which version, deletion and restore,
newest first; loaded only when the tab is shown; refreshed when sync brings a newer version;
offline, not-yet-synced, unknown-record and failing-server states shown in words.  Renders
docs/screenshots/record-timeline.png."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PySide6.QtWidgets import QApplication

from aisha_desktop.client import ApiClient, MemoryTokenStore, Tokens
from aisha_desktop.models.timeline import EntryRole, TimelineEntry, TimelineModel
from aisha_desktop.sync import SyncEngine
from aisha_desktop.views.entity_view import EntityView
from aisha_desktop.views.timeline import TimelinePanel, change_lines, timeline_entries
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team
from tests.desktop.views.conftest import Desk
from tests.factories import make_user

live = sync_fixtures.live
team = sync_fixtures.team
SHOTS = screenshot_dir()
NEIGHBOURS = [("Olivia", "Chen", "Northwind Traders"), ("Liam", "Dubois", "Litware"),
              ("Sofia", "Rossi", "Proseware"), ("Kenji", "Tanaka", "Coho Winery"),
              ("Hannah", "Schmidt", "Tailspin Toys"), ("Diego", "Lopez", "Adventure Works")]  # fmt: skip


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        await asyncio.sleep(0.02)


async def opened(engine: SyncEngine, qtbot: Any, entity: str = "contacts") -> EntityView:
    await engine.sync_now()
    view = EntityView(engine.replica, engine, entity, ("Contacts", "Contact"), search_delay_ms=10)
    qtbot.addWidget(view)
    view.resize(1300, 820)
    view.show()
    await until(lambda: not view.model.busy, what="the first rows")
    return view


async def history(live: Live, team: Team) -> tuple[str, str]:
    """A contact with a life: created, edited by admin and by a colleague, an activity and a
    note, deleted and restored.  Returns (contact id, the colleague's name)."""
    colleague = await make_user(
        live.app, role="admin", tenant_id=team.tenant_id, first_name="Marta", last_name="Kowalski"
    )
    admin = await live.api(team.admin, direct=True)
    other = await live.api(colleague, direct=True)
    for first, last, company in NEIGHBOURS:  # the list around it, for the picture
        await admin.create_record(
            "contacts",
            {"first_name": first, "last_name": last, "company": company, "status": "active",
             "email": f"{first}.{last}@{company.split()[0]}.example".lower()},
        )  # fmt: skip
    contact = await admin.create_record(
        "contacts",
        {
            "first_name": "Priya",
            "last_name": "Patel",
            "title": "Buyer",
            "email": "priya@contoso.example",
            "company": "Contoso Ltd",
            "status": "active",
        },
    )
    cid = contact["id"]
    await admin.update_record("contacts", cid, {"title": "Head of Procurement"})
    await other.update_record("contacts", cid, {"phone": "+1 415 555 0100", "custom_fields": {}})
    await admin.create_record(
        "activities",
        {"subject": "Renewal call", "type": "call", "due_date": "2026-12-01T15:00:00+00:00",
         "related_type": "contact", "related_id": cid},
    )  # fmt: skip
    await admin.create_record(
        "notes",
        {"title": "Pricing", "content": "Asked for a 3-year quote with volume discount.",
         "related_type": "contact", "related_id": cid},
    )  # fmt: skip
    await admin.delete_record("contacts", cid)
    await admin.restore_record("contacts", cid)
    return str(cid), "Marta Kowalski"


def entry_texts(panel: TimelinePanel) -> list[str]:
    return [e.text for e in panel.model.entries]


async def test_timeline_shows_the_record_history(live: Live, team: Team, qtbot: Any) -> None:
    cid, colleague = await history(live, team)
    engine = await live.engine(team.admin)
    view = await opened(engine, qtbot)
    assert view.select_record(cid)
    panel = view.timeline
    # not loaded while its tab is hidden
    assert view.record_tabs.currentWidget() is view.related and not panel.loading
    assert panel.model.rowCount() == 0
    assert any("Renewal call" in view.related.item(i).text() for i in range(view.related.count()))
    assert view.record_tabs.tabText(0) == "Activities and notes (2)"

    view.record_tabs.setCurrentWidget(panel)
    await until(lambda: panel.loading, what="the load to start")
    await panel.wait()
    assert state_of(panel) == "loaded", panel.status.text()
    kinds = [e.kind for e in panel.model.entries]
    assert kinds[0] == "restored" and kinds[1] == "deleted" and kinds[-1] == "created"
    assert {"activity", "note", "change"} <= set(kinds)
    texts = "\n".join(entry_texts(panel))
    assert "Title: Buyer → Head of Procurement" in texts
    assert "Phone: (empty) → +1 415 555 0100" in texts
    assert "e164" not in texts.lower()  # derived by the server, not a change anyone made
    assert "Call: Renewal call" in texts and "due 2026-12-01" in texts
    assert "Note: Pricing" in texts and "3-year quote" in texts
    title_change = next(e for e in panel.model.entries if "Title:" in e.text)
    assert "by you" in title_change.meta and "version 2" in title_change.meta
    phone_change = next(e for e in panel.model.entries if "Phone:" in e.text)
    assert f"by {colleague}" in phone_change.meta
    assert "by you" in panel.model.entries[-1].meta  # created
    assert panel.list.isVisible() and not panel.retry_button.isVisible()

    # paging: the newest few, then older ones on request
    everything = [e.id for e in panel.model.entries]
    panel.page_size = 3
    panel.reload()
    await panel.wait()
    assert [e.id for e in panel.model.entries] == everything[:3]
    assert panel.older_button.isVisible()
    while panel.older_button.isVisible():
        panel.load_older()
        await panel.wait()
    assert [e.id for e in panel.model.entries] == everything
    panel.page_size = 50
    panel.reload()
    await panel.wait()

    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "record-timeline.png"
    assert view.grab().save(str(path))

    # a newer version arrives by sync: the timeline reloads by itself
    admin = await live.api(team.admin, direct=True)
    await admin.update_record("contacts", cid, {"title": "CFO"})
    await engine.sync_now()
    view.entities_changed(frozenset({"contacts"}))  # as the window's bridge reports it
    await until(lambda: panel.loading or "CFO" in "\n".join(entry_texts(panel)), what="reload")
    await panel.wait()
    assert "Title: Head of Procurement → CFO" in entry_texts(panel)[0]

    # while the form holds unsaved typing, the timeline still follows the server
    view.editor.set_value("description", "typing…")
    assert view.editor.dirty
    await admin.update_record("contacts", cid, {"title": "COO"})
    await engine.sync_now()
    view.entities_changed(frozenset({"contacts"}))
    await until(lambda: panel.loading or "COO" in entry_texts(panel)[0], what="reload")
    await panel.wait()
    assert "Title: CFO → COO" in entry_texts(panel)[0]
    assert view.editor.raw_values()["description"] == "typing…"


async def test_timeline_offline_and_back(live: Live, team: Team, qtbot: Any) -> None:
    admin = await live.api(team.admin, direct=True)
    contact = await admin.create_record("contacts", {"first_name": "Omar", "last_name": "Ito"})
    engine = await live.engine(team.admin)
    view = await opened(engine, qtbot)
    panel = view.timeline
    view.record_tabs.setCurrentWidget(panel)
    await live.proxy.cut()
    assert view.select_record(contact["id"])
    await until(lambda: panel.loading, what="the load to start")
    await panel.wait()
    assert state_of(panel) == "offline"
    assert "Offline" in panel.status.text() and panel.retry_button.isVisible()
    assert panel.model.rowCount() == 0

    # once the engine knows it is offline, no request is sent: said at once
    view.connection_changed(dataclass_state(engine, "offline"))
    panel.reload()
    assert state_of(panel) == "offline" and not panel.loading

    await live.proxy.restore()
    view.connection_changed(dataclass_state(engine, "online"))
    await until(lambda: panel.loading, what="the reload")
    await panel.wait()
    assert state_of(panel) == "loaded" and [e.kind for e in panel.model.entries] == ["created"]


def state_of(panel: TimelinePanel) -> str:
    return panel.state  # (not narrowed: it changes behind mypy's back)


def dataclass_state(engine: SyncEngine, status: Any) -> Any:
    return dataclasses.replace(engine.state, status=status)


async def test_timeline_of_a_record_not_on_the_server(live: Live, team: Team, qtbot: Any) -> None:
    engine = await live.engine(team.admin)
    view = await opened(engine, qtbot)
    panel = view.timeline
    view.record_tabs.setCurrentWidget(panel)
    row = await engine.create("contacts", {"first_name": "Local", "last_name": "Only"})
    view.model.refresh()
    await until(lambda: view.select_record(str(row["id"])), what="the new row")
    assert state_of(panel) == "unsynced" and not panel.loading
    assert "Not on the server yet" in panel.status.text()

    # a record the server does not know (deleted there, or never seen): said in words
    panel.show_record("contacts", str(uuid.uuid4()))
    await until(lambda: panel.loading)
    await panel.wait()
    assert state_of(panel) == "error" and "does not have this record" in panel.status.text()


async def test_timeline_without_a_record_and_entities_without_timeline(
    desk: Desk, qtbot: Any
) -> None:
    view = EntityView(desk.replica, desk.engine, "activities", ("Activities", "Activity"))
    qtbot.addWidget(view)
    view.show()
    assert not view.record_tabs.isVisible()  # activities have no timeline
    contacts = EntityView(desk.replica, desk.engine, "contacts", ("Contacts", "Contact"))
    qtbot.addWidget(contacts)
    contacts.show()
    assert contacts.record_id is None and not contacts.record_tabs.isVisible()
    assert contacts.timeline.state == "idle"


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Answers timelines with a 500 in the API's envelope, or (under /garbled) a non-list."""

    async def answer(request: web.Request) -> web.Response:
        if request.path.startswith("/garbled"):
            return web.json_response({"status": "success", "data": {"items": "many"}})
        if request.path.endswith("/users"):
            return web.json_response({"status": "error", "message": "admins only"}, status=403)
        body = {"status": "error", "message": "database is on fire", "request_id": "r-7"}
        return web.json_response(body, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_failing_or_garbled_server_is_shown(odd_server: str, qtbot: Any) -> None:
    signed_in = MemoryTokenStore(Tokens("access", "refresh"))
    for base, expected in ((odd_server, "The server failed: database is on fire (request r-7)"),
                           (odd_server + "/garbled", "not a timeline")):  # fmt: skip
        api = ApiClient(base, timeout=5, token_store=signed_in)
        try:
            panel = TimelinePanel(api, delay_ms=1)
            qtbot.addWidget(panel)
            panel.show()
            panel.show_record("contacts", str(uuid.uuid4()))
            await until(lambda p=panel: p.loading)  # type: ignore[misc]
            await panel.wait()
            assert state_of(panel) == "error"
            assert expected in panel.status.text(), panel.status.text()
            assert panel.retry_button.isVisible() and not panel.list.isVisible()
        finally:
            await api.aclose()


def test_entries_from_server_items(qtmodeltester: Any) -> None:
    items = [
        {"kind": "change", "at": "2026-11-20T10:00:00+00:00", "id": "change-9", "version": 3,
         "actor_id": "u2", "changes": {"stage": {"old": "prospect", "new": "proposal"},
                                       "updated_at": {"old": "a", "new": "b"},
                                       "custom_fields": {"old": {"tier": "gold"},
                                                         "new": {"tier": "silver", "x": 1}}}},
        {"kind": "deleted", "at": "2026-11-19T10:00:00+00:00", "id": "change-8", "version": 2,
         "actor_id": "u1", "changes": {"deleted_at": {"old": None, "new": "2026"}}},
        {"kind": "created", "at": "2026-11-18T10:00:00+00:00", "id": "r1", "actor_id": None},
        "garbage",
        {"no": "kind"},
    ]  # fmt: skip
    entries = timeline_entries(items, {"u2": "Marta Kowalski"}, me_id="u1")
    assert [e.kind for e in entries] == ["change", "deleted", "created"]
    change = entries[0]
    assert change.title == "Changed stage, custom fields"
    assert change.details == ("Stage: prospect → proposal", "Tier: gold → silver", "X: (empty) → 1")
    assert "by Marta Kowalski" in change.meta and "version 3" in change.meta
    assert "by you" in entries[1].meta and entries[2].meta.count("·") == 0  # no actor known
    assert change_lines({"name": {"old": "a" * 200, "new": None}})[0].endswith("… → (empty)")

    model = TimelineModel()
    qtmodeltester.check(model)
    model.replace(entries[:2])
    qtmodeltester.check(model)
    model.extend([entries[1], entries[2]])  # the shown one is not repeated
    assert [e.kind for e in model.entries] == ["change", "deleted", "created"]
    qtmodeltester.check(model)
    entry = model.data(model.index(0, 0), EntryRole)
    assert isinstance(entry, TimelineEntry) and entry is entries[0]
