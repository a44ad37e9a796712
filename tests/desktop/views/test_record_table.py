"""RecordTableModel against a real replica file: paging, sorting, search, filters,
refresh on change reports, and Qt's model checks."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt

from aisha_desktop.models.record_table import RecordTableModel
from aisha_desktop.replica import Replica
from tests.desktop.views.conftest import fill, record


@pytest.fixture
def contacts(replica: Replica) -> Replica:
    fill(replica, {"contacts": [record("contacts", i) for i in range(1000)]})
    return replica


def model_of(replica: Replica, qtbot: Any, **options: Any) -> RecordTableModel:
    model = RecordTableModel(replica, "contacts", page_size=50, search_delay_ms=20, **options)
    qtbot.waitUntil(lambda: not model.busy, timeout=5000)
    return model


def names(model: RecordTableModel, rows: range) -> list[str]:
    found = [model.record_at(r) for r in rows]
    return [str(r.data["last_name"]) for r in found if r is not None]


def test_passes_qt_model_checks(contacts: Replica, qtmodeltester: Any, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    qtmodeltester.check(model)
    model.search_now("smith")
    qtbot.waitUntil(lambda: not model.busy)
    qtmodeltester.check(model)


def test_pages_on_demand_and_knows_the_total(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    assert model.windowed and model.rowCount() == 1000
    reads = model.queries
    model.set_sort("last_name")
    qtbot.waitUntil(lambda: not model.busy)
    qtbot.waitUntil(lambda: model.windowed)
    assert model.rowCount() == 1000
    every = sorted(str(record("contacts", i)["last_name"]).lower() for i in range(1000))
    assert [n.lower() for n in names(model, range(0, 50))] == every[:50]
    # the last page comes from reading backwards, not from skipping 950 rows
    assert [n.lower() for n in names(model, range(950, 1000))] == every[950:]
    assert [n.lower() for n in names(model, range(500, 520))] == every[500:520]
    assert model.queries - reads < 12  # pages, not rows
    assert model.data(model.index(999, 1)) == str(model.record_at(999).data["last_name"])  # type: ignore[union-attr]
    assert model.data(model.index(1000, 0)) is None


def test_far_page_is_read_in_the_worker(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot, columns=["last_name", "email"])
    model.sync_skip_limit = 100
    assert model.record_at(500) is None  # on its way, not blocking
    with qtbot.waitSignal(model.dataChanged, timeout=5000):
        pass
    assert model.record_at(500) is not None


def test_sort_descending_and_unsortable_columns(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    column = model.columns.index("email")
    model.sort(column, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: model.sort_key == "-email" and not model.busy)
    emails = [model.record_at(r).data["email"] for r in range(10)]  # type: ignore[union-attr]
    assert emails == sorted(emails, reverse=True)
    model.sort(model.columns.index("phone"), Qt.SortOrder.AscendingOrder)
    assert model.sort_key == "-email"  # phone has no index: ignored
    with pytest.raises(ValueError, match="cannot be sorted"):
        model.set_sort("phone")


def test_search_is_debounced_and_narrows(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    before = model.queries
    for partial in ("s", "sm", "smi", "smith"):
        model.set_search(partial)
    assert model.queries == before  # nothing read while typing
    qtbot.waitUntil(lambda: model.search_text == "smith" and not model.busy, timeout=3000)
    expected = sum(1 for i in range(1000) if i % 8 == 0)
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        qtbot.waitUntil(lambda: not model.busy)
    assert model.rowCount() == expected
    assert all("smith" in n.lower() for n in names(model, range(model.rowCount())))
    model.search_now("nobody-has-this")
    qtbot.waitUntil(lambda: not model.busy)
    assert model.rowCount() == 0
    model.search_now("")
    qtbot.waitUntil(lambda: model.windowed and not model.busy)
    assert model.rowCount() == 1000


def test_filter_by_status(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    model.set_filter("status", "inactive")
    qtbot.waitUntil(lambda: not model.busy)
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        qtbot.waitUntil(lambda: not model.busy)
    assert model.rowCount() == sum(1 for i in range(1000) if i % 3 == 1)
    statuses = {model.record_at(r).data["status"] for r in range(model.rowCount())}  # type: ignore[union-attr]
    assert statuses == {"inactive"}
    with pytest.raises(ValueError, match="cannot be filtered"):
        model.set_filter("phone", "1")


def test_column_chooser(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    model.set_columns(["email", "last_name", "no_such_column"])
    assert model.columns == ["email", "last_name"] and model.columnCount() == 2
    assert model.headerData(0, Qt.Orientation.Horizontal) == "Email"
    with pytest.raises(ValueError):
        model.set_columns(["no_such_column"])


def test_change_reports_refresh_once_coalesced(contacts: Replica, qtbot: Any) -> None:
    model = model_of(contacts, qtbot)
    contacts.local_create("contacts", {"first_name": "Zed", "last_name": "Newman"})
    before = model.queries
    for _ in range(5):
        model.entities_changed(frozenset({"contacts"}))
    model.entities_changed(frozenset({"accounts"}))
    with qtbot.waitSignal(model.rowsInserted, timeout=3000):
        pass
    qtbot.waitUntil(lambda: not model.busy)
    assert model.rowCount() == 1001
    assert model.queries - before == 1  # one count: five reports, one refresh
    newest = model.record_at(0)  # sorted by -updated_at: the local edit is first
    assert newest is not None and newest.data["last_name"] == "Newman" and newest.pending
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ForegroundRole) is not None


def test_a_closed_model_ignores_late_change_reports(contacts: Replica, qtbot: Any) -> None:
    model = RecordTableModel(contacts, "contacts", page_size=50)
    rows = model.rowCount()
    model.close()
    model.refresh()  # a change report after the view closed: no worker, no error
    assert model.rowCount() == rows
