"""Renders the main window with realistic data offscreen into docs/screenshots/ (kept in the
repository and looked at; the test checks the pictures are real renders, not blank)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel
from PySide6.QtGui import QImage

from aisha_desktop.views.main_window import MainWindow
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.views.conftest import Desk, fill

SHOTS = screenshot_dir()
FIRST = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mateo",
    "Sofia",
    "Lucas",
    "Mia",
    "Ethan",
    "Amara",
    "Kenji",
    "Priya",
    "Diego",
    "Hannah",
    "Yusuf",
    "Chloe",
    "Omar",
    "Lena",
    "Arjun",
]
LAST = [
    "Anderson",
    "Baker",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Johansson",
    "Kowalski",
    "Lopez",
    "Mensah",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
]
COMPANIES = [
    "Northwind Traders",
    "Contoso Ltd",
    "Fabrikam Inc",
    "Tailspin Toys",
    "Litware",
    "Adventure Works",
    "Wide World Importers",
    "Proseware",
    "Lucerne Publishing",
    "Blue Yonder Airlines",
    "Coho Winery",
    "Margie's Travel",
]
TITLES = ["Head of Procurement", "CFO", "Operations Manager", "IT Director", "Buyer",
          "Office Manager", "VP Sales", "Founder"]  # fmt: skip


def realistic(desk: Desk) -> dict[str, Any]:
    rng = random.Random(7)
    rows: dict[str, list[dict[str, Any]]] = {"contacts": [], "accounts": [], "leads": []}

    def base(i: int) -> dict[str, Any]:
        return {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "version": 1, "owner_id": None, "assigned_to": None, "custom_fields": {},
            "created_at": "2026-09-01T09:00:00+00:00",
            "updated_at": f"2026-11-{1 + i % 24:02d}T{8 + i % 10:02d}:{i % 60:02d}:00+00:00",
            "deleted_at": None,
        }  # fmt: skip

    for i, company in enumerate(COMPANIES * 3):
        name = company if i < len(COMPANIES) else f"{company} {['EMEA', 'APAC'][i % 2]}"
        domain = company.lower().replace(" ", "").replace("'", "")
        rows["accounts"].append({**base(i), "name": name, "type": rng.choice(["customer", "partner", "prospect"]),
                                 "industry": rng.choice(["Retail", "Software", "Logistics", "Finance"]),
                                 "email": f"info@{domain}.example", "phone": f"+1 415 555 {1000 + i:04d}",
                                 "city": rng.choice(["Austin", "Berlin", "Lisbon", "Osaka", "Toronto"]),
                                 "status": "active"})  # fmt: skip
    for entity, count in (("contacts", 320), ("leads", 140)):
        for i in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            company = rng.choice(COMPANIES)
            domain = company.lower().replace(" ", "").replace("'", "")
            row = {**base(i), "first_name": first, "last_name": last,
                   "email": f"{first}.{last}{i}@{domain}.example".lower().replace("'", ""),
                   "phone": f"+1 212 555 {rng.randint(1000, 9999)}", "company": company,
                   "title": rng.choice(TITLES)}  # fmt: skip
            if entity == "contacts":
                row["status"] = rng.choice(["active", "active", "active", "inactive", "prospect"])
            else:
                row["status"] = rng.choice(["new", "contacted", "qualified", "unqualified"])
                row["source"] = rng.choice(["Website", "Referral", "Trade show", "Campaign"])
            rows[entity].append(row)
    fill(desk.replica, rows, {"custom_fields": [
        {"id": "cf1", "entity": "contact", "field_name": "tier", "field_type": "select",
         "label": "Customer tier", "options": ["Gold", "Silver", "Bronze"], "position": 1},
        {"id": "cf2", "entity": "contact", "field_name": "newsletter", "field_type": "boolean",
         "label": "Newsletter", "position": 2},
        {"id": "cf3", "entity": "contact", "field_name": "renewal", "field_type": "date",
         "label": "Renewal date", "position": 3}]})  # fmt: skip
    return rows


def not_blank(path: Path) -> None:
    image = QImage(str(path))
    assert not image.isNull() and image.width() >= 1200
    colours = {image.pixel(x, y) for x in range(0, image.width(), 37)
               for y in range(0, image.height(), 23)}  # fmt: skip
    assert len(colours) > 20


async def test_render_main_window(desk: Desk, qtbot: Any) -> None:
    rows = realistic(desk)
    desk.me = None
    win = MainWindow(desk)
    qtbot.addWidget(win)
    win.resize(1400, 860)
    win.show()
    view = win.current_view
    qtbot.waitUntil(lambda: view.model.windowed and not view.model.busy, timeout=5000)
    view.select_row(2)
    edited = str(view.record_id)
    await view.engine.update("contacts", edited, {"title": "Chief Buyer"})
    view.model.refresh()
    qtbot.waitUntil(lambda: not view.model.busy)
    assert view.select_record(edited)  # the edit moved it to the top (newest first)
    qtbot.waitUntil(lambda: view.pending_label.isVisibleTo(view), timeout=3000)
    qtbot.waitUntil(lambda: "pending" in win.pending_label.text(), timeout=3000)
    qtbot.wait(50)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "main-window-contacts.png"
    assert win.grab().save(str(path))
    not_blank(path)

    view.search.setText("garcia")
    qtbot.waitUntil(lambda: view.model.search_text == "garcia" and not view.model.busy)
    view.new_record()
    view.editor.set_value("email", rows["contacts"][5]["email"])
    view.editor.set_value("first_name", "Dana")
    view.editor.set_value("phone", "call me")
    await view.save()
    view.editor.set_value("phone", "+1 212 555 0100")
    await view.save()
    qtbot.wait(50)
    path = SHOTS / "contacts-search-new-duplicate.png"
    assert win.grab().save(str(path))
    not_blank(path)

    leads = win.open_entity("leads")
    qtbot.waitUntil(lambda: leads.model.windowed and not leads.model.busy, timeout=5000)
    leads.select_row(0)
    qtbot.wait(50)
    path = SHOTS / "main-window-leads.png"
    assert win.grab().save(str(path))
    not_blank(path)

    # the record form: a new person with nothing to be told by, then an edit giving another
    # record's e-mail (warned, "Save anyway")
    contacts = win.open_entity("contacts")
    contacts.search.setText("")
    qtbot.waitUntil(lambda: contacts.model.search_text == "" and not contacts.model.busy)
    contacts.new_record()
    contacts.editor.set_value("title", "Buyer")
    assert not await contacts.save()
    assert "first_name" in contacts.editor.problems()
    qtbot.wait(50)
    path = SHOTS / "record-form-identity.png"
    assert win.grab().save(str(path))
    not_blank(path)

    contacts.select_row(1)
    target = contacts.record_id
    other = next(r for r in rows["contacts"] if r["id"] != target and r.get("email"))
    contacts.editor.set_value("email", other["email"])
    assert not await contacts.save()
    assert contacts.create_anyway.text() == "Save anyway"
    qtbot.wait(50)
    path = SHOTS / "record-edit-duplicate.png"
    assert win.grab().save(str(path))
    not_blank(path)

    # several rows selected: the bulk bar, and the change dialog
    contacts.revert()
    for row in range(2, 5):
        contacts.table.selectionModel().select(
            contacts.model.index(row, 0),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )
    assert contacts.bulk_bar.isVisibleTo(contacts)
    qtbot.wait(50)
    path = SHOTS / "bulk-selection.png"
    assert win.grab().save(str(path))
    not_blank(path)
    dialog = contacts.open_bulk_change()
    assert dialog is not None
    dialog.choose("status")
    dialog.set_value("inactive")
    dialog.adjustSize()
    qtbot.wait(50)
    path = SHOTS / "bulk-change.png"
    assert dialog.grab().save(str(path))
    assert not QImage(str(path)).isNull()
    dialog.close()
