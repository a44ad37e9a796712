"""Saved views: the Qt-free store (names, rename, delete, unreadable data skipped, views
fitted to what the entity still has) and the entity view's toolbar over a real replica and a
real QSettings file (save, apply, defaults, per user, rename, delete); the CSV menu opens the
import and export dialogs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, Qt

from aisha_desktop.dialogs.csv_export import CsvExportDialog
from aisha_desktop.dialogs.csv_import import CsvImportDialog
from aisha_desktop.models.saved_views import MAX_NAME, SavedView, SavedViews
from aisha_desktop.replica import Replica
from aisha_desktop.views.entity_view import EntityView
from tests.desktop.dialogs.conftest import SCREENSHOTS
from tests.desktop.views.conftest import Desk, fill, record


class DictStore:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def setValue(self, key: str, value: Any) -> None:
        self.values[key] = value

    def remove(self, key: str) -> None:
        self.values.pop(key, None)


def test_store_logic() -> None:
    store = DictStore()
    views = SavedViews(store, "u1", "contacts")
    assert views.names() == [] and views.get("x") is None
    views.save(SavedView("  Hot   leads ", "ann", "active", "last_name", ("email",)))
    views.save(SavedView("apples"))
    assert views.names() == ["apples", "Hot leads"]  # sorted, spaces tidied
    hot = views.get("HOT LEADS")
    assert hot == SavedView("Hot leads", "ann", "active", "last_name", ("email",))
    # same name (any case) replaces
    views.save(SavedView("hot leads", "bob"))
    assert views.names() == ["apples", "hot leads"] and views.get("Hot Leads").search == "bob"  # type: ignore[union-attr]
    # other entity, other user: their own lists
    assert SavedViews(store, "u1", "leads").names() == []
    assert SavedViews(store, "u2", "contacts").names() == []

    for bad, message in (("", "Give the view a name"), ("x" * (MAX_NAME + 1), "at most")):
        with pytest.raises(ValueError, match=message):
            views.save(SavedView(bad))
    with pytest.raises(ValueError, match="exists already"):
        views.rename("apples", "HOT LEADS")
    with pytest.raises(ValueError, match="No saved view"):
        views.rename("pears", "plums")
    assert views.rename("apples", "Apples").name == "Apples"  # a change of case is fine
    views.delete("hot leads")
    assert views.names() == ["Apples"]
    views.delete("apples")
    assert store.values == {}  # nothing left behind

    # unreadable stored data is skipped, never an error
    store.values["saved_views/u1/contacts"] = "{not json"
    assert views.names() == []
    store.values["saved_views/u1/contacts"] = json.dumps(
        [{"name": "ok", "columns": ["email"]}, {"name": 3}, "junk", {"name": "x", "sort": 1}]
    )
    assert views.names() == ["ok"]


def test_fitted_to_the_entity() -> None:
    default = SavedView("", "", None, "-updated_at", ("first_name", "email"))
    stale = SavedView("old", "x", "archived", "shoe_size", ("email", "gone", "email"))
    fitted = stale.fitted(default, ["first_name", "email"], ["updated_at"], ["active"])
    assert fitted == SavedView("old", "x", None, "-updated_at", ("email",))
    empty = SavedView("none", columns=("gone",)).fitted(default, ["email"], ["email"], [])
    assert empty.columns == default.columns and empty.sort == "-updated_at"


def seed(replica: Replica) -> None:
    rows = [record("contacts", i) for i in range(60)]
    rows.append(record("contacts", 60, first_name="Annika", last_name="Zed", status="inactive"))
    fill(replica, {"contacts": rows})


def make_view(
    desk: Desk, qtbot: Any, settings: QSettings, replica: Replica | None = None
) -> EntityView:
    view = EntityView(
        replica or desk.replica,
        desk.engine,
        "contacts",
        ("Contacts", "Contact"),
        search_delay_ms=10,
        ui_settings=settings,
    )
    qtbot.addWidget(view)
    view.resize(1300, 600)
    view.show()
    qtbot.waitUntil(lambda: not view.model.busy, timeout=5000)
    return view


def state(view: EntityView) -> tuple[Any, ...]:
    return (
        view.search.text(),
        view.model.search_text,
        view.status_filter.currentData(),
        view.model.filters,
        view.model.sort_key,
        view.model.columns,
        [a.data() for a in view.columns_menu.actions() if a.isChecked()],
    )


async def test_saved_views_in_the_entity_view(desk: Desk, qtbot: Any, tmp_path: Path) -> None:
    seed(desk.replica)
    settings = QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)
    view = make_view(desk, qtbot, settings)
    tools = view.view_tools
    default = state(view)
    assert tools.combo.count() == 1 and tools.combo.currentText() == "Default view"
    assert not tools.delete_action.isEnabled() and not tools.rename_action.isEnabled()

    # narrow the list: search, status, sort by last name, one column less, one more
    view.search.setText("ann")
    view.status_filter.setCurrentIndex(view.status_filter.findData("inactive"))
    for action in view.columns_menu.actions():
        if action.data() in ("phone", "title"):
            action.setChecked(action.data() == "title")
    view.table.horizontalHeader().setSortIndicator(
        view.model.columns.index("last_name"), Qt.SortOrder.AscendingOrder
    )
    qtbot.waitUntil(lambda: not view.model.busy and view.model.search_text == "ann")
    narrowed = state(view)
    assert narrowed[4] == "last_name" and "title" in narrowed[5] and "phone" not in narrowed[5]
    shown = view.model.rowCount()

    tools.ask_name = lambda title, label, text: "Inactive Anns"
    assert tools.save_as()
    assert tools.combo.currentText() == "Inactive Anns" and tools.delete_action.isEnabled()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert view.grab().save(str(SCREENSHOTS / "saved-views.png"))  # at the window's size

    # the default view restores the defaults
    tools.combo.setCurrentIndex(0)
    tools.combo.activated.emit(0)
    qtbot.waitUntil(lambda: not view.model.busy and view.model.search_text == "")
    assert state(view) == default
    assert view.model.rowCount() > shown

    # picking the saved view applies it again
    index = tools.combo.findData("Inactive Anns")
    tools.combo.setCurrentIndex(index)
    tools.combo.activated.emit(index)
    qtbot.waitUntil(lambda: not view.model.busy and view.model.search_text == "ann")
    assert state(view) == narrowed and view.model.rowCount() == shown
    header = view.table.horizontalHeader()
    assert header.sortIndicatorSection() == view.model.columns.index("last_name")
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder

    # kept for this user: a new view (a restart) lists it; another user does not see it
    settings.sync()
    again = make_view(desk, qtbot, QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat))
    assert again.view_tools.saved.names() == ["Inactive Anns"]
    with Replica.open(tmp_path / "other", "http://127.0.0.1:9", "t1", str(uuid.uuid4())) as other:
        stranger = make_view(desk, qtbot, settings, other)
        assert stranger.view_tools.saved.names() == []

    # update, rename (a clash is refused), delete (back to the defaults)
    view.search.setText("annika")
    tools.update_current()
    assert tools.saved.get("Inactive Anns").search == "annika"  # type: ignore[union-attr]
    tools.saved.save(SavedView("Other"))
    tools.reload("Inactive Anns")
    tools.ask_name = lambda title, label, text: "other"
    assert not tools.rename_current()
    assert "exists already" in tools.last_message
    tools.ask_name = lambda title, label, text: "Annika"
    assert tools.rename_current() and tools.combo.currentText() == "Annika"
    assert tools.saved.names() == ["Annika", "Other"]
    tools.confirm = lambda title, text: False
    assert not tools.delete_current() and tools.saved.names() == ["Annika", "Other"]
    tools.confirm = lambda title, text: True
    assert tools.delete_current()
    assert tools.saved.names() == ["Other"] and tools.combo.currentText() == "Default view"
    qtbot.waitUntil(lambda: not view.model.busy and view.model.search_text == "")
    assert state(view) == default
    # a refused name says why and saves nothing
    tools.ask_name = lambda title, label, text: "   "
    assert not tools.save_as() and tools.last_message == "Give the view a name"


async def test_csv_menu_opens_the_dialogs(desk: Desk, qtbot: Any, tmp_path: Path) -> None:
    seed(desk.replica)
    settings = QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat)
    view = make_view(desk, qtbot, settings)
    view.search.setText("annika")
    qtbot.waitUntil(lambda: not view.model.busy and view.model.search_text == "annika")
    dialog = view.view_tools.open_export()
    assert isinstance(dialog, CsvExportDialog)
    assert dialog.scope.search == "annika" and dialog.scope.shown == 1
    assert dialog.view_rows.isChecked() and dialog.visible == list(view.model.columns)
    dialog.close()
    importer = view.view_tools.open_import()
    assert isinstance(importer, CsvImportDialog) and importer.entity == "contacts"
    # an import that wrote rows asks the engine to sync now, so they show in the list
    desk.engine._wake.clear()
    importer.imported.emit(None)
    assert desk.engine._wake.is_set()
    importer.close()
    names = [a.text() for a in view.view_tools.csv_button.menu().actions()]
    assert names == ["Import CSV…", "Export CSV…"]


async def test_palette_commands_open_the_csv_dialogs(desk: Desk, qtbot: Any) -> None:
    from aisha_desktop.views.main_window import MainWindow

    seed(desk.replica)
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    names = [c.name for c in win.commands]
    assert "Import CSV…" in names and "Export CSV…" in names
    win.open_entity("accounts")
    win.actions_by_name["Import CSV…"].trigger()
    win.actions_by_name["Export CSV…"].trigger()
    view = win.current_view
    (importer,) = view.findChildren(CsvImportDialog)
    (exporter,) = view.findChildren(CsvExportDialog)
    assert importer.entity == exporter.entity == "accounts"
    assert importer.windowTitle() == "Import Accounts from CSV"
    importer.close()
    exporter.close()
