"""The main window over a real replica and sync engine (offline: its server is not
reachable, so every edit must show at once from the replica and wait in the outbox)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QMessageBox

from aisha_desktop.client.models import CurrentUser
from aisha_desktop.dialogs.deleted_records import DeletedRecordsDialog
from aisha_desktop.dialogs.merge_records import MergeDialog
from aisha_desktop.views.entity_view import MAX_BULK
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.views.conftest import Desk, fill, record


def seed(desk: Desk, count: int = 120) -> None:
    contacts = [record("contacts", i) for i in range(count)]
    fill(
        desk.replica,
        {
            "contacts": contacts,
            "accounts": [record("accounts", i) for i in range(30)],
            "activities": [
                record(
                    "activities",
                    1,
                    subject="Call about renewal",
                    type="call",
                    related_type="contact",
                    related_id=contacts[0]["id"],
                )
            ],
        },
        {
            "custom_fields": [
                {
                    "id": "cf1",
                    "entity": "contact",
                    "field_name": "tier",
                    "field_type": "select",
                    "label": "Tier",
                    "options": ["gold", "silver"],
                    "is_archived": False,
                },
                {
                    "id": "cf2",
                    "entity": "contact",
                    "field_name": "old",
                    "field_type": "text",
                    "is_archived": True,
                },
            ]
        },
    )


def window(desk: Desk, qtbot: Any) -> MainWindow:
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    view = win.current_view
    qtbot.waitUntil(lambda: not view.model.busy and view.model.windowed, timeout=5000)
    return win


async def test_edit_shows_at_once_and_waits_in_the_outbox(desk: Desk, qtbot: Any) -> None:
    seed(desk)
    win = window(desk, qtbot)
    view = win.current_view
    assert view.entity == "contacts" and view.count_label.text() == "120 contacts"
    view.select_row(0)
    target = view.record_id
    assert target is not None
    assert "Call about renewal" in view.related.item(0).text() or view.related.count() >= 1
    editor = view.editor
    editor.set_value("title", "Chief Buyer")
    editor.set_value("tier", "gold")  # a custom field, rendered as a select
    assert await view.save()
    row = desk.replica.get("contacts", target)
    assert row is not None and row.pending and row.data["title"] == "Chief Buyer"
    assert row.data["custom_fields"] == {"tier": "gold"}
    outbox = desk.replica.outbox()
    assert [(e.op, e.record_id) for e in outbox] == [("update", target)]
    assert outbox[0].fields == {"title": "Chief Buyer", "custom_fields": {"tier": "gold"}}
    qtbot.waitUntil(lambda: not view.model.busy)
    shown = view.model.record_at(view.table.currentIndex().row())
    assert shown is not None and shown.id == target and shown.data["title"] == "Chief Buyer"
    qtbot.waitUntil(lambda: "1 pending" in win.pending_label.text(), timeout=3000)


async def test_validation_messages_and_duplicate_warning(desk: Desk, qtbot: Any) -> None:
    seed(desk)
    win = window(desk, qtbot)
    view = win.current_view
    win.new_record()
    view.editor.set_value("email", "not an email")
    assert not await view.save()
    error = view.editor.findChild(type(view.feedback), "error_email")
    assert error is not None and "not an email" in error.text()
    assert desk.replica.outbox() == []
    existing = record("contacts", 3)
    view.editor.set_value("email", existing["email"])
    view.editor.set_value("first_name", "Another")
    assert not await view.save()  # warned first
    assert (
        view.duplicates.isVisibleTo(view) and existing["last_name"] in view.duplicates_label.text()
    )
    assert desk.replica.outbox() == []
    view.create_anyway.click()  # the user confirms
    await view.tasks.drain()
    assert [e.op for e in desk.replica.outbox()] == ["create"]
    assert view.record_id is not None
    created = desk.replica.get("contacts", view.record_id)
    assert created is not None and created.data["first_name"] == "Another"


async def test_an_edit_giving_another_records_email_is_warned(desk: Desk, qtbot: Any) -> None:
    seed(desk, 10)
    win = window(desk, qtbot)
    view = win.current_view
    view.select_row(0)
    target = view.record_id
    other = next(r for r in (record("contacts", i) for i in range(10)) if r["id"] != target)
    view.editor.set_value("email", other["email"].upper())
    assert not await view.save()
    assert view.duplicates.isVisibleTo(view) and view.create_anyway.text() == "Save anyway"
    assert other["last_name"] in view.duplicates_label.text()
    assert desk.replica.outbox() == []
    view.create_anyway.click()
    await view.tasks.drain()
    assert [(e.op, e.record_id) for e in desk.replica.outbox()] == [("update", target)]
    # an edit of another field is not held up by the duplicate it now has
    qtbot.waitUntil(lambda: not view.model.busy)
    view.select_record(target)
    view.editor.set_value("title", "Head of Purchasing")
    assert await view.save()
    (entry,) = desk.replica.outbox()  # the edits of one record go as one
    assert entry.fields == {"email": other["email"].upper(), "title": "Head of Purchasing"}


async def test_a_person_needs_a_name_an_email_or_a_phone(desk: Desk, qtbot: Any) -> None:
    seed(desk, 5)
    win = window(desk, qtbot)
    view = win.current_view
    win.new_record()
    view.editor.set_value("title", "Buyer")
    assert not await view.save()
    error = view.editor.findChild(type(view.feedback), "error_first_name")
    assert error is not None and error.text().startswith("Give at least one of: first name")
    assert desk.replica.outbox() == []
    view.editor.set_value("mobile", "+44 20 7946 0000")
    assert await view.save()
    assert [e.op for e in desk.replica.outbox()] == ["create"]
    # a stored person emptied of all of them is refused too
    view.select_row(0)
    for name in ("first_name", "last_name", "email", "phone", "mobile"):
        view.editor.set_value(name, "")
    assert not await view.save()
    assert "first_name" in view.editor.problems()
    assert [e.op for e in desk.replica.outbox()] == ["create"]


async def test_delete_hides_the_record(desk: Desk, qtbot: Any) -> None:
    seed(desk, 10)
    win = window(desk, qtbot)
    view = win.current_view
    view.select_row(2)
    gone = view.record_id
    assert gone is not None and await view.delete_current()
    assert desk.replica.get("contacts", gone) is None
    qtbot.waitUntil(lambda: view.model.rowCount() == 9 and not view.model.busy)
    assert [e.op for e in desk.replica.outbox()] == ["delete"]
    # the operator is told where it can be brought back from
    assert view.feedback.text() == "Contact deleted; Views → Deleted contacts restores it"


def select_rows(view: Any, rows: range) -> None:
    """Ctrl-click `rows`, the first becoming the current (shown) one."""
    view.select_row(rows[0])
    model = view.table.selectionModel()
    for row in rows[1:]:
        model.select(
            view.model.index(row, 0),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )


async def test_bulk_change_and_delete_of_selected_records(
    desk: Desk, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(desk, 10)
    win = window(desk, qtbot)
    view = win.current_view
    assert view.bulk_bar.isHidden()
    select_rows(view, range(0, 4))
    assert view.bulk_bar.isVisibleTo(view) and view.bulk_label.text() == "4 contacts selected"
    ids = view.selected_ids()
    assert ids is not None and len(ids) == 4 and view.record_id == ids[0]

    dialog = view.open_bulk_change()
    assert dialog is not None and dialog.windowTitle() == "Change 4 contacts"
    offered = [dialog.field.itemData(i) for i in range(dialog.field.count())]
    assert "status" in offered and "tier" in offered and "title" in offered
    assert not {"first_name", "last_name", "email", "phone", "mobile"} & set(offered)
    dialog.choose("tier")
    dialog.set_value("gold")
    dialog.accept()
    assert dialog.values == {"custom_fields": {"tier": "gold"}}
    await view.tasks.drain()
    for record_id in ids:
        row = desk.replica.get("contacts", record_id)
        assert row is not None and row.data["custom_fields"]["tier"] == "gold" and row.pending
    assert sorted(e.record_id for e in desk.replica.outbox()) == sorted(ids)
    assert view.feedback.text() == "Tier set on 4 contacts"

    # a value the field does not take is refused in the dialog; nothing is queued
    accounts = win.open_entity("accounts")
    qtbot.waitUntil(lambda: not accounts.model.busy and accounts.model.windowed, timeout=5000)
    select_rows(accounts, range(0, 2))
    check = accounts.open_bulk_change()
    assert check is not None
    assert "name" not in [check.field.itemData(i) for i in range(check.field.count())]
    check.choose("employee_count")
    check.set_value("many")
    check.accept()
    assert check.isVisible() and check.values is None
    assert check.error.text() == "Employee count: not a number"
    check.close()
    assert len(desk.replica.outbox()) == 4

    # delete three together; the one shown leaves the panel
    select_rows(view, range(0, 3))
    doomed = view.selected_ids()
    assert doomed is not None and await view.delete_many(doomed) == 3
    assert all(desk.replica.get("contacts", i) is None for i in doomed)
    assert view.record_id is None
    assert view.feedback.text() == ("3 contacts deleted; Views → Deleted contacts restores them")
    assert sorted(e.op for e in desk.replica.outbox()) == ["delete"] * 3 + ["update"]

    # the Delete key on the list asks, then deletes what is selected
    asked: list[str] = []

    def answer(_parent: Any, title: str, text: str) -> QMessageBox.StandardButton:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    qtbot.waitUntil(lambda: not view.model.busy)
    select_rows(view, range(0, 2))
    pair = view.selected_ids()
    view.table.setFocus()
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)
    await view.tasks.drain()
    assert asked == ["Delete 2 contacts? They can be restored from Views → Deleted contacts."]
    assert pair is not None and all(desk.replica.get("contacts", i) is None for i in pair)


def signed_in(role: str, contacts: set[str]) -> CurrentUser:
    """What /api/auth/me says of a user whose role allows `contacts` actions on contacts."""
    return CurrentUser.from_json({
        "user": None, "tenant_id": "t1", "tenant": None, "role": role, "data_scope": "own",
        "permissions": [], "auth_type": "session", "session_id": None,
        "record_actions": {"contacts": sorted(contacts), "accounts": ["read"]},
    })  # fmt: skip


async def test_the_console_offers_what_the_role_allows(desk: Desk, qtbot: Any) -> None:
    seed(desk, 6)
    desk.me = signed_in("employee", {"read", "create", "update"})
    win = window(desk, qtbot)
    view = win.current_view
    view.select_row(0)
    assert view.form_area.isEnabled() and view.save_button.isEnabled()
    assert view.merge_button.isEnabled() and view.rights_note.isHidden()
    assert not view.delete_button.isEnabled()
    assert view.delete_button.toolTip() == "Your role may not delete contacts"
    assert not await view.delete_current()
    assert view.feedback.text() == "Your role may not delete contacts"
    select_rows(view, range(0, 3))
    assert view.bulk_change_button.isEnabled() and not view.bulk_delete_button.isEnabled()
    qtbot.keyClick(view.table, Qt.Key.Key_Delete)  # says why, asks nothing
    assert view.feedback.text() == "Your role may not delete contacts"
    view.view_tools.update_csv_actions()
    assert view.view_tools.import_action.isEnabled()
    assert not view.view_tools.export_action.isEnabled()
    assert view.view_tools.export_if_allowed() is None  # the palette's way in, too
    assert view.feedback.text() == "Your role may not export contacts"
    deleted = view.open_deleted()
    assert (
        not deleted.can_restore and "you can look, not restore" in deleted.findChild(QLabel).text()
    )
    deleted.close()
    assert desk.replica.outbox() == []

    # read only (support): the form is greyed with a note, nothing can be saved
    accounts = win.open_entity("accounts")
    qtbot.waitUntil(lambda: not accounts.model.busy and accounts.model.windowed, timeout=5000)
    accounts.select_row(0)
    assert not accounts.form_area.isEnabled() and not accounts.save_button.isEnabled()
    assert accounts.rights_note.isVisibleTo(accounts)
    assert accounts.rights_note.text() == "Read only: your role may not change accounts"
    assert not accounts.new_button.isEnabled() and not accounts.merge_button.isEnabled()
    accounts.editor.set_value("industry", "Changed")
    assert not await accounts.save()
    assert accounts.feedback.text() == "Your role may not change accounts"
    accounts.new_record()
    assert accounts.rights_note.text() == "Read only: your role may not create accounts"
    assert not await accounts.save() and desk.replica.outbox() == []


async def test_select_all_is_counted_not_read(desk: Desk, qtbot: Any) -> None:
    """Ctrl+A selects every row; the bar counts them from the selection's range and a bulk
    action over the limit says so before reading any of them."""
    seed(desk, MAX_BULK + 1)
    win = window(desk, qtbot)
    view = win.current_view
    qtbot.waitUntil(lambda: view.model.rowCount() == MAX_BULK + 1, timeout=10_000)
    view.table.selectAll()
    assert view.bulk_label.text() == f"{MAX_BULK + 1:,} contacts selected"
    assert not view.bulk_change_button.isEnabled()
    assert view.bulk_change_button.toolTip() == f"At most {MAX_BULK:,} at once"
    assert view.open_bulk_change() is None
    assert view.feedback.text() == f"Select at most {MAX_BULK:,} contacts at once"


async def test_merge_opens_on_the_record_shown(desk: Desk, qtbot: Any) -> None:
    seed(desk, 5)
    win = window(desk, qtbot)
    view = win.current_view
    assert view.merge_button.isVisibleTo(view) and not view.merge_button.isEnabled()  # new
    assert view.open_merge() is None
    view.select_row(1)
    shown = view.record_id
    assert shown is not None and view.merge_button.isEnabled()
    view.merge_button.click()
    dialog = view.findChild(MergeDialog)
    assert dialog is not None and dialog.kept.id == shown
    dialog.close()
    # the record shown merged away: the view follows the kept one
    other = view.model.record_at(0)
    assert other is not None
    view._merged(other.id, shown, "Merged X into Y")
    assert view.feedback.text() == "Merged X into Y" and view.record_id == other.id
    assert not win.open_entity("opportunities").merge_button.isVisibleTo(win)


async def test_deleted_records_open_from_the_views_menu(desk: Desk, qtbot: Any) -> None:
    seed(desk, 5)
    win = window(desk, qtbot)
    view = win.open_entity("accounts")
    tools = view.view_tools
    tools._update_actions()  # as the menu does before it shows
    assert tools.deleted_action.text() == "Deleted accounts…"
    tools.deleted_action.trigger()
    dialog = view.findChild(DeletedRecordsDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Deleted accounts" and dialog.entity == "accounts"
    await dialog.wait()  # this desk never signed in: said so, nothing to restore
    assert dialog.status.isVisibleTo(dialog) and dialog.status.text() == "Not signed in"
    assert not dialog.restore_button.isEnabled()
    # what a restore tells the view: a sync soon, and a word to the operator
    view._restored(["a1", "a2"])
    assert view.feedback.text() == "Restored 2 accounts; back in the list once synced"
    dialog.close()


def test_labels_relabel_live_and_status_bar(desk: Desk, qtbot: Any) -> None:
    seed(desk, 5)
    win = window(desk, qtbot)
    nav = [win.navigation.item(i).text() for i in range(win.navigation.count())]
    assert nav == ["Accounts", "Contacts", "Leads", "Opportunities", "Activities"]
    fill(desk.replica, {}, {"entity_labels": [
        {"id": "l1", "entity_key": "accounts", "custom_label": "Clients",
         "custom_label_singular": "Client"}]})  # fmt: skip
    desk.engine._changed({"entity_labels"})  # what a pull that brought the row reports
    qtbot.waitUntil(lambda: win.navigation.item(0).text() == "Clients", timeout=3000)
    assert "Go to Clients" in [c.name for c in win.commands]
    accounts = win.open_entity("accounts")
    assert accounts.title.text() == "Clients" and accounts.new_button.text() == "New client"
    state = dataclasses.replace(desk.engine.state, status="offline", pending=3, conflicts=2)
    win.show_state(state)
    assert "Offline" in win.connection_label.text()
    assert win.pending_label.text() == "3 pending edits"
    assert win.conflicts_label.text() == "2 conflicts"


def test_shortcuts_and_command_palette(desk: Desk, qtbot: Any) -> None:
    seed(desk, 20)
    win = window(desk, qtbot)
    view = win.current_view
    qtbot.keyClick(win, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus() or isinstance(win.focusWidget(), QLineEdit)
    view.select_row(0)
    first = view.record_id
    qtbot.keyClick(win, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert view.table.currentIndex().row() == 1 and view.record_id != first
    qtbot.keyClick(win, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert view.record_id == first
    qtbot.keyClick(win, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert view.record_id is None and view.panel_title.text() == "New contact"
    palette = win.open_palette()
    names = palette.visible_names()
    for wanted in ("New record", "Search", "Save record", "Next record", "Previous record"):
        assert wanted in names
    qtbot.keyClicks(palette.query, "go acc")
    assert palette.visible_names() == ["Go to Accounts"]
    qtbot.keyClick(palette.query, Qt.Key.Key_Return)
    assert win.current_view.entity == "accounts"
    qtbot.keyClicks(palette.query, "zzz")
    assert palette.visible_names() == []
    # the deleted records of the current view, from the palette
    palette = win.open_palette()
    qtbot.keyClicks(palette.query, "deleted")
    assert palette.visible_names() == ["Deleted records…"]
    qtbot.keyClick(palette.query, Qt.Key.Key_Return)
    opened = win.current_view.findChild(DeletedRecordsDialog)
    assert opened is not None and opened.windowTitle() == "Deleted accounts"
    opened.close()


async def test_admin_dialogs_open_from_the_palette(desk: Desk, qtbot: Any) -> None:
    """The palette opens the admin settings dialogs for the console's tenant (the load
    against the unreachable server ends without raising)."""
    from aisha_desktop.dialogs.admin import EntityLabelsDialog

    desk.api.tenant_id = "00000000-0000-4000-8000-0000000000a1"
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    palette = win.open_palette()
    palette.query.setText("labels")
    assert palette.visible_names() == ["Entity labels…"]
    palette.run_current()
    dialogs = [d for d in win.findChildren(EntityLabelsDialog) if d.isVisible()]
    assert len(dialogs) == 1
    await dialogs[0].wait()
    assert dialogs[0].tenant_id == desk.api.tenant_id
    dialogs[0].close()
