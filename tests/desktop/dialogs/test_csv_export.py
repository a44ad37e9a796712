"""The CSV export dialog against a real server: the current view's search and filter or all
rows, the visible columns or all of them, progress, cancel (no partial file), the server and
the disk failing; rendered to docs/screenshots/csv-export*.png."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.csv_export import (
    EXPORT_SORTS,
    CsvExportDialog,
    ViewScope,
    describe_order,
    describe_scope,
    export_params,
    exportable,
)
from aisha_desktop.models.fields import column_title
from aisha_server.services.record_io import _mappable
from aisha_server.services.records import SPECS
from tests.desktop.dialogs.conftest import banner_text, screenshot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)

VIEW = ViewScope(
    search="  gr ",
    filters={"status": "inactive"},
    columns=("first_name", "last_name", "email", "status", "updated_at"),
    sort="-updated_at",
    shown=2,
)
PEOPLE = (
    "first_name,last_name,email,status,cf.tier\r\n"
    "Grace,Hopper,grace@navy.example,inactive,gold\r\n"
    "Greta,Garbo,greta@film.example,inactive,\r\n"
    "Gregor,Mendel,gregor@peas.example,active,silver\r\n"
    "Ada,Lovelace,ada@analytical.example,inactive,=1+1\r\n"
)


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def seeded(live: Live, team: Team) -> ApiClient:  # noqa: F811
    api = await live.api(team.admin, direct=True)
    await api.request(
        "POST",
        "/api/custom-fields",
        json={"entity": "contact", "field_name": "tier", "field_type": "text", "label": "Tier"},
    )
    report = await api.import_csv("contacts", PEOPLE.encode())
    assert report.count("created") == 4
    return api


def dialog_for(
    api: ApiClient, qtbot: Any, folder: Path, scope: ViewScope = VIEW
) -> CsvExportDialog:
    dialog = CsvExportDialog(api, "contacts", ("Contacts", "Contact"), scope, folder=folder)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))


async def test_export_view_and_all(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await seeded(live, team)
    folder = tmp_path / "exports"
    folder.mkdir()
    dialog = dialog_for(api, qtbot, folder)
    assert dialog.view_rows.isChecked()  # the view is narrowed: it is the default
    assert dialog.view_rows.text() == "Current view (search “gr”, status Inactive) · 2 rows"
    assert dialog.path_edit.text() == str(folder / "contacts.csv")
    order = dialog.findChild(QLabel, "order")
    assert order is not None and order.text().startswith("Rows come sorted as the view: by ")
    dialog.visible_columns.setChecked(True)
    dialog.path_edit.setText("/home/operator/Documents/inactive-contacts.csv")  # the picture
    screenshot(dialog, "csv-export")
    dialog.path_edit.setText(str(folder / "contacts.csv"))

    dialog.export()
    await dialog.wait()
    target = folder / "contacts.csv"
    assert "Exported 2 rows" in banner_text(dialog.status) and str(target) in dialog.status.text()
    rows = read(target)
    assert [r["last_name"] for r in sorted(rows, key=lambda r: r["last_name"])] == [
        "Garbo",
        "Hopper",
    ]
    assert list(rows[0]) == ["first_name", "last_name", "email", "status", "updated_at"]
    assert sorted(p.name for p in folder.iterdir()) == ["contacts.csv"]
    screenshot(dialog, "csv-export-done")

    # all rows, all columns; an existing file is replaced only when the operator agrees
    asked: list[str] = []
    dialog.confirm = lambda title, text: asked.append(text) or False
    dialog.all_rows.setChecked(True)
    dialog.all_columns.setChecked(True)
    dialog.export()
    assert asked == ["contacts.csv exists. Replace it?"] and not dialog.busy.running
    assert len(read(target)) == 2  # untouched
    dialog.confirm = lambda title, text: True
    dialog.export()
    await dialog.wait()
    rows = read(target)
    assert len(rows) == 4 and next(iter(rows[0])) == "id" and "cf.tier" in rows[0]
    ada = next(r for r in rows if r["last_name"] == "Lovelace")
    assert ada["cf.tier"] == "'=1+1"  # guarded for spreadsheets

    dialog.formula_escape.setChecked(False)
    dialog.path_edit.setText(str(folder / "raw"))  # .csv added
    dialog.export()
    await dialog.wait()
    ada = next(r for r in read(folder / "raw.csv") if r["last_name"] == "Lovelace")
    assert ada["cf.tier"] == "=1+1"


async def test_cancel_and_failures_leave_no_file(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin)  # through the proxy, which the test cuts later
    lines = ["first_name,last_name,email"] + [
        f"Ann{i},Lee{i},ann{i}@example.com" for i in range(4500)
    ]
    await api.import_csv("contacts", "\r\n".join(lines).encode())
    folder = tmp_path / "exports"
    folder.mkdir()
    dialog = dialog_for(api, qtbot, folder, ViewScope(columns=("email",), shown=4500))
    assert dialog.all_rows.isChecked()  # nothing narrows the view

    progress = dialog._progress

    def then_cancel(step: Any) -> None:
        progress(step)
        if step.rows > 0 and dialog.cancel_button.isVisible():
            screenshot(dialog, "csv-export-progress")
            dialog.cancel_button.click()

    dialog._progress = then_cancel  # type: ignore[method-assign]
    dialog.export()
    await dialog.wait()
    assert banner_text(dialog.status) == "Export cancelled: no file was written."
    assert list(folder.iterdir()) == []
    assert dialog.export_button.isEnabled()

    # a folder that does not exist, a folder named as the file
    dialog._progress = progress  # type: ignore[method-assign]
    dialog.path_edit.setText(str(folder / "missing" / "x.csv"))
    dialog.export()
    await dialog.wait()
    assert banner_text(dialog.error).startswith(f"Cannot write {folder / 'missing' / 'x.csv'}")
    dialog.path_edit.setText(str(folder))
    dialog.export()
    assert "is a folder" in banner_text(dialog.error)

    # the server cannot be reached
    dialog.path_edit.setText(str(folder / "offline.csv"))
    await live.proxy.cut()
    dialog.export()
    await dialog.wait()
    assert banner_text(dialog.error).startswith(
        "Export failed, no file was written: Cannot reach the server"
    )
    assert list(folder.iterdir()) == []
    await live.proxy.restore()
    await asyncio.sleep(0)


def test_scope_logic() -> None:
    for entity in ("accounts", "contacts", "leads", "opportunities", "activities"):
        spec = SPECS[entity]
        assert exportable(entity) == ("id", *_mappable(spec), "created_at", "updated_at")
    assert set(EXPORT_SORTS) == set(SPECS)
    for entity, sorts in EXPORT_SORTS.items():  # the server's own sortable fields
        assert sorts == frozenset(SPECS[entity].sortable), entity
    assert export_params("contacts", VIEW, use_view=True, formula_escape=True) == {
        "formula_escape": True,
        "q": "gr",
        "match": "contains",
        "status": "inactive",
        "sort": "-updated_at",
    }
    assert export_params(
        "contacts", VIEW, use_view=False, formula_escape=False, columns=["email", "cf.tier"]
    ) == {"formula_escape": False, "sort": "-updated_at", "columns": "email,cf.tier"}
    # a view sorted on a field the server does not export in: record-id order, said so
    by_owner = ViewScope(sort="owner_id")
    assert "sort" not in export_params("contacts", by_owner, use_view=True, formula_escape=True)
    assert describe_order("contacts", by_owner) == (
        f"The view's sort (by {column_title('owner_id')}) is not one the server exports in; rows come in record-id order."
    )
    assert describe_order("contacts", ViewScope(sort="last_name")) == (
        "Rows come sorted as the view: by Last name, ascending."
    )
    assert not ViewScope(filters={"status": None}).narrowed
    assert describe_scope("contacts", "Contacts", ViewScope()) == (
        "Current view (no search or filter: all contacts)"
    )


def test_transfer_bar(qtbot: Any) -> None:
    from aisha_desktop.dialogs.transfer import Transfer, human_size

    cancelled: list[bool] = []
    transfer = Transfer(lambda: cancelled.append(True))
    qtbot.addWidget(transfer.bar)
    transfer.step(3 * 2**31, 4 * 2**31, "big")  # beyond a C int: counted in thousandths
    assert (transfer.bar.value(), transfer.bar.maximum()) == (750, 1000)
    transfer.cancel_button.click()
    assert cancelled == [True]
    assert [human_size(n) for n in (10, 2048, 3 * 1024 * 1024)] == ["10 B", "2.0 KB", "3.0 MB"]
