"""The conflict inbox against a real server (SQLite and PostgreSQL): two replicas edit the
same field, the second one's inbox lists the conflict with both values, who and when; "Keep
mine" / "Take theirs" settle it on the server and in the replica; rejected edits are listed
and dismissed; a failed resolution is shown and the card stays.  Renders
docs/screenshots/conflicts.png."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel

from aisha_desktop.client.models import SyncConflict
from aisha_desktop.models.sync_bridge import SyncBridge
from aisha_desktop.sync import SyncEngine
from aisha_desktop.views.conflicts import EMPTY_TEXT, ConflictInbox
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team
from tests.desktop.views.conftest import Desk, fill, record

live = sync_fixtures.live  # the real server behind a proxy, and users of one tenant
team = sync_fixtures.team
SHOTS = screenshot_dir()


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Run the Qt and asyncio loops until `check()` holds, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        await asyncio.sleep(0.02)


def texts(inbox: ConflictInbox) -> str:
    return "\n".join(label.text() for label in inbox.cards.findChildren(QLabel))


async def clash(live: Live, team: Team, entity: str = "contacts") -> tuple[SyncEngine, str]:
    """admin and admin2 edit the title of one contact: admin2's replica holds the conflict."""
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record(
        "contacts", {"first_name": "Priya", "last_name": "Patel", "title": "Buyer"}
    )
    one = await live.engine(team.admin)
    two = await live.engine(team.admin2)
    await one.sync_now()
    await two.sync_now()
    await one.update(entity, record["id"], {"title": "Head of Procurement"})
    await two.update(entity, record["id"], {"title": "CFO", "company": "Contoso"})
    await one.sync_now()
    await two.sync_now()
    assert two.state.conflicts == 1
    return two, record["id"]


Opener = Callable[..., ConflictInbox]


@pytest.fixture
def inbox_for(qtbot: Any) -> Iterator[Opener]:
    """Opens inboxes; closed (and their bridges) before the replicas are (requested after
    `live`/`desk`, so torn down first)."""
    opened: list[ConflictInbox] = []

    def open_inbox(engine: SyncEngine, **options: Any) -> ConflictInbox:
        inbox = ConflictInbox(SyncBridge(engine), **options)
        qtbot.addWidget(inbox)
        inbox.show()
        opened.append(inbox)
        return inbox

    yield open_inbox
    for inbox in opened:
        inbox.bridge.close()
        inbox.close()


async def test_keep_mine_writes_my_value_to_the_server(
    live: Live, team: Team, inbox_for: Opener
) -> None:
    two, record_id = await clash(live, team)
    admin_name = "Ada Admin"
    inbox = inbox_for(two, people={str(team.admin.id): admin_name})
    [conflict] = two.replica.conflicts()
    assert inbox.shown_conflicts == [conflict.id]
    shown = texts(inbox)
    assert "Priya Patel" in shown  # the record's name from the replica
    assert "Title" in shown
    assert "Head of Procurement" in shown and "CFO" in shown  # both values
    assert f"by {admin_name}" in shown  # who, by name
    assert not inbox.empty.isVisible() and "1 conflict to decide" in inbox.summary.text()

    mine, theirs = inbox.conflict_buttons[conflict.id]
    mine.click()
    assert not mine.isEnabled() and not theirs.isEnabled()  # while it is being resolved
    await inbox.tasks.drain()

    admin = await live.api(team.admin, direct=True)
    server = await admin.get_record("contacts", record_id)
    assert server["title"] == "CFO" and server["company"] == "Contoso"
    assert two.replica.conflicts() == [] and two.state.conflicts == 0
    row = two.replica.get("contacts", record_id)
    assert row is not None and row.data["title"] == "CFO"
    assert await two.api.conflicts() == []
    assert inbox.shown_conflicts == [] and inbox.empty.isVisible()
    assert inbox.empty.text() == EMPTY_TEXT


async def test_take_theirs_keeps_the_server_value(
    live: Live, team: Team, inbox_for: Opener
) -> None:
    two, record_id = await clash(live, team)
    inbox = inbox_for(two, me_id=str(team.admin2.id))
    [conflict] = two.replica.conflicts()
    assert f"user {str(team.admin.id)[:8]}" in texts(inbox)  # unknown people: by id
    _, theirs = inbox.conflict_buttons[conflict.id]
    theirs.click()
    await inbox.tasks.drain()

    admin = await live.api(team.admin, direct=True)
    server = await admin.get_record("contacts", record_id)
    assert server["title"] == "Head of Procurement"
    assert server["company"] == "Contoso"  # the other field of my edit had merged
    await two.sync_now()
    row = two.replica.get("contacts", record_id)
    assert row is not None and row.data["title"] == "Head of Procurement"
    assert two.replica.conflicts() == [] and inbox.shown_conflicts == []
    assert (await two.api.conflicts(include_resolved=True))[0].resolution == "keep_server"


async def test_the_inbox_follows_the_engine(live: Live, team: Team, inbox_for: Opener) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("contacts", {"first_name": "Lena", "title": "Buyer"})
    one = await live.engine(team.admin)
    two = await live.engine(team.admin2)
    await one.sync_now()
    await two.sync_now()
    inbox = inbox_for(two)
    assert inbox.shown_conflicts == [] and inbox.empty.isVisible()

    await one.update("contacts", record["id"], {"title": "VP Sales"})
    await two.update("contacts", record["id"], {"title": "Founder"})
    await one.sync_now()
    await two.sync_now()  # the engine's state change refreshes the open inbox
    await until(lambda: len(inbox.shown_conflicts) == 1, what="the conflict listed")
    assert "VP Sales" in texts(inbox) and "Founder" in texts(inbox)

    # resolved elsewhere (through the API): the next sync drops it from the inbox
    [conflict] = await two.api.conflicts()
    await admin.resolve_conflict(conflict.id, "keep_server")
    await two.refresh_conflicts()  # the server does not announce resolutions
    await two.sync_now()
    await until(lambda: inbox.shown_conflicts == [], what="the conflict gone")
    assert inbox.empty.isVisible()


async def test_rejections_are_listed_and_dismissed(
    live: Live, team: Team, inbox_for: Opener
) -> None:
    admin = await live.api(team.admin, direct=True)
    record = await admin.create_record("accounts", {"name": "Northwind", "industry": "Retail"})
    engine = await live.engine(team.admin)
    await engine.sync_now()
    await engine.update("accounts", record["id"], {"name": ""})  # a name is required
    await engine.sync_now()
    inbox = inbox_for(engine)
    [rejection] = engine.replica.rejections()
    assert inbox.shown_rejections == [rejection.mutation_id]
    shown = texts(inbox)
    assert "Editing account “Northwind” was refused" in shown
    assert "Name: (empty)" in shown
    assert "1 edit the server refused" in inbox.summary.text()

    inbox.rejection_buttons[rejection.mutation_id].click()
    await inbox.tasks.drain()
    assert engine.replica.rejections() == [] and engine.state.rejections == 0
    assert inbox.shown_rejections == [] and inbox.empty.isVisible()


async def test_a_failed_resolution_is_shown_and_the_card_stays(
    live: Live, team: Team, inbox_for: Opener
) -> None:
    two, record_id = await clash(live, team)
    inbox = inbox_for(two)
    [conflict] = two.replica.conflicts()
    await live.proxy.cut()  # the server is gone
    mine, theirs = inbox.conflict_buttons[conflict.id]
    mine.click()
    await inbox.tasks.drain()
    assert inbox.error.isVisible() and "Cannot reach the server" in inbox.error.text()
    assert inbox.shown_conflicts == [conflict.id]
    assert mine.isEnabled() and theirs.isEnabled()  # the user can try again
    assert two.replica.conflicts() != []

    await live.proxy.restore()
    mine.click()
    await inbox.tasks.drain()
    assert not inbox.error.isVisible() and inbox.shown_conflicts == []
    admin = await live.api(team.admin, direct=True)
    assert (await admin.get_record("contacts", record_id))["title"] == "CFO"


async def test_nothing_to_show(desk: Desk, inbox_for: Opener) -> None:
    inbox = inbox_for(desk.engine)
    assert inbox.empty.isVisible() and inbox.empty.text() == EMPTY_TEXT
    assert inbox.summary.text() == "All clear"
    assert inbox.shown_conflicts == [] and inbox.shown_rejections == []


async def test_render_conflicts(live: Live, team: Team, inbox_for: Opener) -> None:
    two, _ = await clash(live, team)
    admin = await live.api(team.admin, direct=True)
    account = await admin.create_record("accounts", {"name": "Fabrikam Inc", "industry": "Retail"})
    await two.sync_now()
    await two.update("accounts", account["id"], {"name": ""})
    await two.sync_now()
    inbox = inbox_for(two, people={str(team.admin.id): "Olivia Anderson"})
    inbox.resize(860, 560)
    await until(lambda: len(inbox.shown_rejections) == 1)
    await until(lambda: True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "conflicts.png"
    assert inbox.grab().save(str(path))
    assert path.stat().st_size > 10_000


async def test_main_window_opens_the_inbox_from_the_palette_and_status_bar(
    desk: Desk, qtbot: Any
) -> None:
    fill(desk.replica, {"contacts": [record("contacts", 1)]})
    contact = desk.replica.get("contacts", record("contacts", 1)["id"])
    assert contact is not None
    stored = SyncConflict(
        "00000000-0000-4000-8000-00000000c0f1", "contacts", contact.id, "title",
        "Server title", "My title", 1, 2, "u-1", None, None, None, None, None,
    )  # fmt: skip
    desk.replica.replace_conflicts([stored])
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    try:
        palette = win.open_palette()
        palette.query.setText("conflicts")
        assert palette.visible_names() == ["Conflicts…"]
        palette.run_current()
        inbox = win.conflict_inbox
        assert inbox is not None and inbox.isVisible()
        assert inbox.shown_conflicts == [stored.id]
        assert contact.data["first_name"] in texts(inbox) and "My title" in texts(inbox)
        inbox.close()
        assert not inbox.isVisible()
        qtbot.mouseClick(win.conflicts_label, Qt.MouseButton.LeftButton)
        assert win.conflict_inbox is inbox and inbox.isVisible()  # the same inbox again
    finally:
        win.close()
    assert not inbox.isVisible()
