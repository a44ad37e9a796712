"""The opportunities board: columns from the tenant's stages (the guide's defaults when
unset), cards with name, amount, account, contact and close date; dragging a card to another
column changes its stage through the replica and outbox like any edit (and reaches a real
server); moves the board cannot make are refused with a message and change nothing; 100,000
opportunities are read page by page; reachable from the opportunities view and the command
palette.  Renders docs/screenshots/opportunities-board.png."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QComboBox

from aisha_desktop.models.board import (
    DEFAULT_STAGES,
    MIME_TYPE,
    NO_STAGE,
    BoardCard,
    CardRole,
    StageModel,
    format_amount,
    module_enabled,
    opportunity_stages,
)
from aisha_desktop.views.board import BoardView
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team
from tests.desktop.views.conftest import Desk, fill

live = sync_fixtures.live
team = sync_fixtures.team
SHOTS = screenshot_dir()
STAGES = ["discovery", "demo", "proposal", "negotiation", "won"]
COMPANIES = ["Northwind Traders", "Contoso Ltd", "Fabrikam Inc", "Tailspin Toys", "Litware",
             "Adventure Works", "Proseware", "Coho Winery"]  # fmt: skip
PEOPLE = ["Olivia Chen", "Liam Dubois", "Amara Mensah", "Kenji Tanaka", "Sofia Rossi",
          "Diego Lopez", "Hannah Schmidt", "Omar Ito"]  # fmt: skip
DEALS = ["renewal", "expansion", "pilot", "upgrade", "new licences", "support plan"]


def rid(n: int, kind: int) -> str:
    return str(uuid.UUID(int=kind * 10_000_000 + n + 1))


def base(n: int, kind: int) -> dict[str, Any]:
    return {
        "id": rid(n, kind), "version": 1, "status": "active", "owner_id": None,
        "assigned_to": None, "custom_fields": {}, "deleted_at": None,
        "created_at": "2026-09-01T09:00:00+00:00",
        "updated_at": f"2026-11-{1 + n % 24:02d}T{8 + n % 10:02d}:{n % 60:02d}:00+00:00",
    }  # fmt: skip


def pipeline(desk: Desk, count: int = 40, stages: list[str] | None = None) -> list[dict[str, Any]]:
    """Accounts, contacts and `count` opportunities spread over the stages (one without a
    stage); the tenant's module settings name `stages` (None: no stages setting)."""
    rng = random.Random(3)
    accounts = [{**base(i, 1), "name": name} for i, name in enumerate(COMPANIES)]
    contacts = []
    for i, person in enumerate(PEOPLE):
        first, last = person.split()
        contacts.append({**base(i, 2), "first_name": first, "last_name": last})
    chosen = stages or list(DEFAULT_STAGES)
    opportunities = []
    for i in range(count):
        account = i % len(COMPANIES)
        opportunities.append(
            {**base(i, 3), "name": f"{COMPANIES[account]} {DEALS[i % len(DEALS)]}",
             "stage": None if i == count - 1 else chosen[i % len(chosen)],
             "amount": str(rng.randrange(5, 250) * 500), "status": "open",
             "close_date": f"2027-0{1 + i % 6}-{10 + i % 18:02d}",
             "account_id": accounts[account]["id"],
             "contact_id": contacts[i % len(contacts)]["id"] if i % 5 else None}
        )  # fmt: skip
    settings = {"stages": stages} if stages is not None else {}
    modules = [{"id": "m1", "module_name": "opportunities", "is_enabled": True,
                "settings": settings}]  # fmt: skip
    fill(
        desk.replica,
        {"accounts": accounts, "contacts": contacts, "opportunities": opportunities},
        {"module_settings": modules},
    )
    return opportunities


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        await asyncio.sleep(0.02)


async def shown_board(desk: Desk, qtbot: Any, **options: Any) -> BoardView:
    board = BoardView(desk.replica, desk.engine, **options)
    qtbot.addWidget(board)
    board.resize(1300, 700)
    board.show()
    await board.model.wait()
    return board


def cards(board: BoardView, stage: str) -> list[BoardCard]:
    return board.model.columns[stage].cards


def drag(board: BoardView, card_id: str, to_stage: str) -> bool:
    """Drag the card onto a column as a mouse would: the source column's drag data entered,
    moved over and dropped on the target column's list (its view decides with its model).
    False when the column refuses the drag."""
    source = next(m for m in board.model.columns.values() if m.row_of(card_id) is not None)
    row = source.row_of(card_id)
    assert row is not None
    data = source.mimeData([source.index(row, 0)])
    target = board.columns[to_stage].view.viewport()
    point = QPoint(20, 20)
    move, button, keys = Qt.DropAction.MoveAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier(0)
    hovering = QDragMoveEvent(point, move, data, button, keys)
    for event in (QDragEnterEvent(point, move, data, button, keys), hovering):
        QApplication.sendEvent(target, event)
    if not hovering.isAccepted():
        return False
    QApplication.sendEvent(target, QDropEvent(QPointF(point), move, data, button, keys))
    return True


def test_stages_from_the_tenant_settings() -> None:
    assert opportunity_stages([]) == list(DEFAULT_STAGES)
    row = {"module_name": "opportunities", "settings": {"stages": [" lead ", "won", "lead", ""]}}
    assert opportunity_stages([row]) == ["lead", "won"]
    unset: list[Any] = [{}, {"stages": []}, {"stages": "won"}, None]
    for settings in unset:
        assert opportunity_stages([{"module_name": "opportunities", "settings": settings}]) == list(
            DEFAULT_STAGES
        )
    assert module_enabled([], "opportunities")
    assert not module_enabled(
        [{"module_name": "opportunities", "is_enabled": False}], "opportunities"
    )
    assert format_amount("48000") == "48,000" and format_amount(1234.5) == "1,234.50"
    assert format_amount(None) == "" and format_amount("n/a") == "n/a"


async def test_columns_and_cards(desk: Desk, qtbot: Any, qtmodeltester: Any) -> None:
    rows = pipeline(desk, stages=STAGES)
    board = await shown_board(desk, qtbot)
    assert list(board.model.columns) == [*STAGES, NO_STAGE]
    assert [len(cards(board, s)) for s in STAGES] == [8, 8, 8, 8, 7]
    assert [c.id for c in cards(board, NO_STAGE)] == [rows[-1]["id"]]
    assert board.columns[NO_STAGE].isVisible()  # some have no stage
    first = rows[0]
    card = next(c for c in cards(board, "discovery") if c.id == first["id"])
    assert card.name == "Northwind Traders renewal"
    assert card.amount == format_amount(first["amount"]) and card.account == "Northwind Traders"
    assert card.contact == "" and card.close_date == "2027-01-10"  # row 0 has no contact
    other = next(c for c in cards(board, "demo") if c.id == rows[1]["id"])
    assert other.contact == "Liam Dubois" and "Liam Dubois" in other.parties
    assert board.columns["demo"].header.text().startswith("Demo") and "8" in (
        board.columns["demo"].header.text()
    )
    for model in board.model.columns.values():
        qtmodeltester.check(model)
    assert model.data(model.index(0, 0), CardRole) == cards(board, NO_STAGE)[0]

    # selecting a card names its opportunity
    chosen: list[str] = []
    board.record_selected.connect(chosen.append)
    view = board.columns["demo"].view
    view.setCurrentIndex(view.model().index(0, 0))
    assert chosen == [cards(board, "demo")[0].id]


async def test_default_stages_when_the_tenant_has_none(desk: Desk, qtbot: Any) -> None:
    pipeline(desk, count=10)
    board = await shown_board(desk, qtbot)
    assert board.model.stages == list(DEFAULT_STAGES)
    assert sum(len(cards(board, s)) for s in DEFAULT_STAGES) == 9


async def test_drag_changes_the_stage_through_the_replica(desk: Desk, qtbot: Any) -> None:
    rows = pipeline(desk, stages=STAGES)
    board = await shown_board(desk, qtbot)
    moved = rows[2]  # a proposal
    assert moved["stage"] == "proposal"
    assert drag(board, moved["id"], "won")
    await board.tasks.drain()
    await board.model.wait()
    record = desk.replica.get("opportunities", moved["id"])
    assert record is not None and record.data["stage"] == "won" and record.pending
    [entry] = desk.replica.outbox()
    assert entry.op == "update" and entry.fields == {"stage": "won"}
    assert moved["id"] in [c.id for c in cards(board, "won")]
    assert moved["id"] not in [c.id for c in cards(board, "proposal")]
    won = next(c for c in cards(board, "won") if c.id == moved["id"])
    assert won.pending  # drawn as not yet synced
    assert "Moved “Fabrikam Inc pilot” to Won" in board.feedback.text()

    # without dragging: the card's menu
    menu = board.move_menu(moved["id"])
    entries = {a.text(): a for a in menu.actions()}
    assert list(entries) == [f"Move to {s.capitalize()}" for s in STAGES]
    assert not entries["Move to Won"].isEnabled()  # where it is
    entries["Move to Demo"].trigger()
    await board.tasks.drain()
    await board.model.wait()
    record = desk.replica.get("opportunities", moved["id"])
    assert record is not None and record.data["stage"] == "demo"
    assert moved["id"] in [c.id for c in cards(board, "demo")]


async def test_moves_the_board_cannot_make_are_refused(desk: Desk, qtbot: Any) -> None:
    rows = pipeline(desk, stages=STAGES)
    board = await shown_board(desk, qtbot)
    # onto its own column: not a drop target
    assert not drag(board, rows[0]["id"], "discovery")
    # to "No stage": not a stage of the pipeline
    assert drag(board, rows[0]["id"], NO_STAGE)
    await board.tasks.drain()
    assert "Cannot move to “No stage”" in board.feedback.text()
    assert "Discovery, Demo, Proposal, Negotiation, Won" in board.feedback.text()
    # a stage the pipeline does not have (a stale drag, or a caller's mistake)
    assert not await board.move_card(rows[0]["id"], "closed-ish")
    assert "Cannot move to “Closed-ish”" in board.feedback.text()
    # deleted meanwhile
    await desk.engine.delete("opportunities", rows[1]["id"])
    outbox = len(desk.replica.outbox())
    assert not await board.move_card(rows[1]["id"], "won")
    assert "gone" in board.feedback.text()
    # already there
    assert not await board.move_card(rows[3]["id"], "negotiation")
    assert "already in Negotiation" in board.feedback.text()
    # garbage dropped on a column: nothing happens
    junk = QMimeData()
    junk.setData(MIME_TYPE, QByteArray(b"{not json"))
    target = board.model.columns["won"]
    assert not target.canDropMimeData(junk, Qt.DropAction.MoveAction, -1, -1, QModelIndex())
    assert StageModel.dragged(junk) == []
    text = QMimeData()
    text.setText("hello")
    assert not target.canDropMimeData(text, Qt.DropAction.MoveAction, -1, -1, QModelIndex())
    assert len(desk.replica.outbox()) == outbox  # nothing was edited
    record = desk.replica.get("opportunities", rows[0]["id"])
    assert record is not None and record.data["stage"] == "discovery" and not record.pending


async def test_new_stages_rebuild_the_columns(desk: Desk, qtbot: Any) -> None:
    pipeline(desk, stages=STAGES)
    board = await shown_board(desk, qtbot)
    modules = [{"id": "m1", "module_name": "opportunities", "is_enabled": True,
                "settings": {"stages": ["discovery", "won", "<i>later</i>"]}}]  # fmt: skip
    fill(desk.replica, {}, {"module_settings": modules})
    board.entities_changed(frozenset({"module_settings"}))
    await board.model.wait()
    assert list(board.columns) == ["discovery", "won", "<i>later</i>", NO_STAGE]
    assert "&lt;i&gt;later&lt;/i&gt;" in board.columns["<i>later</i>"].header.text()  # not markup
    assert len(cards(board, "won")) == 7
    # a change report while hidden is read when shown again
    board.hide()
    await desk.engine.update("opportunities", cards(board, "won")[0].id, {"stage": "discovery"})
    board.entities_changed(frozenset({"opportunities"}))
    assert not board.model.busy
    board.show()
    await until(lambda: not board.model.busy and len(cards(board, "won")) == 6, what="re-read")


async def test_a_hundred_thousand_opportunities(desk: Desk, qtbot: Any) -> None:
    stages = list(DEFAULT_STAGES)
    rows = []
    for i in range(100_000):
        rows.append(
            {**base(i, 3), "name": f"Deal {i:06d}", "stage": stages[i % 5] if i % 997 else "closed",
             "amount": str(1000 + i % 5000), "close_date": "2027-03-01", "status": "open"}
        )  # fmt: skip
    fill(desk.replica, {"opportunities": rows})
    board = BoardView(desk.replica, desk.engine, page_size=50)
    qtbot.addWidget(board)
    board.resize(1300, 700)
    filled: list[float] = []
    board.model.loaded.connect(lambda: filled.append(time.perf_counter()))
    started = time.perf_counter()
    board.show()  # reads in a worker: showing does not wait for it
    shown_in = time.perf_counter() - started
    await board.model.wait()
    QApplication.processEvents()
    stages_in, all_in = filled[0] - started, filled[-1] - started
    print(f"board of 100k: shown in {shown_in * 1000:.1f} ms, stage columns in "
          f"{stages_in * 1000:.0f} ms, 'No stage' checked in {all_in * 1000:.0f} ms")  # fmt: skip
    assert shown_in < 0.25 and len(filled) == 2
    for stage in stages:
        column = board.model.columns[stage]
        assert column.rowCount() == 50 and not column.complete
        assert board.columns[stage].header.text().startswith(stage.capitalize())
        assert "50+" in board.columns[stage].header.text()
    # scrolling to the end of a column reads the next page only
    proposal = board.model.columns["proposal"]
    assert proposal.canFetchMore(QModelIndex())
    proposal.fetchMore(QModelIndex())
    assert not proposal.canFetchMore(QModelIndex())  # one page at a time
    await board.model.wait()
    assert proposal.rowCount() == 100
    assert len({c.id for c in proposal.cards}) == 100
    assert all(c.stage == "proposal" for c in proposal.cards)


async def test_view_toggle_and_command_palette(desk: Desk, qtbot: Any) -> None:
    rows = pipeline(desk, stages=STAGES)
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.resize(1500, 860)
    win.show()
    contacts = win.current_view
    assert not contacts.board_toggle.isVisible()  # only opportunities have a board
    assert contacts.show_board(True) is None

    palette = win.open_palette()
    palette.query.setText("board")
    assert palette.visible_names() == ["Opportunities board"]
    palette.run_current()
    view = win.current_view
    assert view.entity == "opportunities" and view.board is not None
    board = view.board
    assert view.list_stack.currentWidget() is view.board and view.board_toggle.isChecked()
    assert not view.search.isEnabled()  # the board shows every opportunity by stage
    await view.board.model.wait()
    assert len(cards(view.board, "won")) == 7

    # a card opens its opportunity in the record panel
    column = view.board.columns["proposal"].view
    column.setCurrentIndex(column.model().index(0, 0))
    first = cards(view.board, "proposal")[0]
    assert view.record_id == first.id and view.panel_title.text() == first.name

    # the engine's change report refreshes the board
    await desk.engine.update("opportunities", rows[0]["id"], {"stage": "won"})
    win.bridge.flush()
    await until(lambda: len(cards(board, "won")) == 8, what="the board refreshed")
    current = view.board.columns["proposal"].view.currentIndex()  # still highlighted
    assert current.isValid() and current.data(CardRole).id == first.id
    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert win.grab().save(str(SHOTS / "opportunities-board.png"))

    view.table_toggle.click()
    assert view.list_stack.currentWidget() is view.table_box and view.search.isEnabled()
    view.board_toggle.click()
    assert view.list_stack.currentWidget() is view.board
    win.close()


async def test_a_move_reaches_the_server(live: Live, team: Team, qtbot: Any) -> None:
    admin = await live.api(team.admin, direct=True)
    account = await admin.create_record("accounts", {"name": "Contoso Ltd"})
    deal = await admin.create_record(
        "opportunities",
        {"name": "Contoso renewal", "stage": "qualified", "amount": "12000",
         "account_id": account["id"], "close_date": "2027-02-01"},
    )  # fmt: skip
    engine = await live.engine(team.admin)
    await engine.sync_now()
    board = BoardView(engine.replica, engine)
    qtbot.addWidget(board)
    board.show()
    await board.model.wait()
    assert board.model.stages == list(DEFAULT_STAGES)  # the new tenant's settings, synced
    card = next(c for c in cards(board, "qualified") if c.id == deal["id"])
    assert card.account == "Contoso Ltd" and card.amount == "12,000"
    assert drag(board, deal["id"], "negotiation")
    await board.tasks.drain()
    await engine.sync_now()
    server = await admin.get_record("opportunities", deal["id"])
    assert server["stage"] == "negotiation" and server["version"] == 2
    record = engine.replica.get("opportunities", deal["id"])
    assert record is not None and not record.pending
    board.close_board()


async def test_the_record_form_offers_the_pipeline_stages(desk: Desk, qtbot: Any) -> None:
    rows = pipeline(desk, stages=STAGES)
    legacy = {**rows[1], "stage": "qualification"}  # a stage the pipeline no longer has
    fill(desk.replica, {"opportunities": [legacy]})
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    view = win.show_record("opportunities", rows[0]["id"])
    stage = view.editor.editor("stage")
    assert isinstance(stage, QComboBox) and not stage.isEditable()
    offered = [stage.itemData(i) for i in range(stage.count())]
    assert offered == [None, *STAGES]
    assert [stage.itemText(i) for i in range(1, 3)] == ["Discovery", "Demo"]
    assert stage.currentData() == rows[0]["stage"]
    column = view.model.columns.index("stage")  # the table shows stages as titled, too
    titles = {view.model.index(r, column).data() for r in range(view.model.rowCount())}
    assert {"Discovery", "Won", "Qualification", ""} <= titles and "discovery" not in titles

    view.editor.set_value("stage", "negotiation")
    assert await view.save()
    record = desk.replica.get("opportunities", rows[0]["id"])
    assert record is not None and record.data["stage"] == "negotiation"
    assert desk.replica.outbox()[-1].fields == {"stage": "negotiation"}

    # an old stage is shown as it is and does not stop other edits; choosing it is refused
    view = win.show_record("opportunities", legacy["id"])
    stage = view.editor.editor("stage")
    assert isinstance(stage, QComboBox) and stage.currentText() == "qualification"
    view.editor.set_value("amount", "1250")
    assert view.editor.problems() == {}
    assert await view.save()
    saved = desk.replica.get("opportunities", legacy["id"])
    assert saved is not None and saved.data["stage"] == "qualification"
    assert desk.replica.outbox()[-1].fields == {"amount": "1250"}
    view.editor.set_value("stage", "won")
    view.editor.set_value("stage", "qualification")  # typed back in: a change to check
    assert view.editor.problems() == {}  # unchanged from what was loaded: not held against it

    # the pipeline changes: the form offers the new stages
    modules = [{"id": "m1", "module_name": "opportunities", "is_enabled": True,
                "settings": {"stages": ["intro", "closed"]}}]  # fmt: skip
    fill(desk.replica, {}, {"module_settings": modules})
    view.entities_changed(frozenset({"module_settings"}))
    stage = view.editor.editor("stage")
    assert isinstance(stage, QComboBox)
    assert [stage.itemData(i) for i in range(stage.count())][:3] == [None, "intro", "closed"]
    view.editor.set_value("stage", "demo")  # no longer offered
    assert "stage" in view.editor.problems()
    win.close()
