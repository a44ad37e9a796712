"""The merge dialog against a real server and a synced replica: likely duplicates, the
field-by-field preview, the merge itself (values, tags, activities and notes moved, the
duplicate gone after the next pull), search, "Keep the other one", edits still to sync, a role
that may not merge, the server out of reach; rendered to docs/screenshots/merge-records*.png."""

from __future__ import annotations

from typing import Any

import pytest

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.merge_records import (
    IdRole,
    MergeDialog,
    merge_preview,
    moved_text,
)
from aisha_desktop.models.fields import FieldSpec
from aisha_desktop.sync.engine import SyncEngine
from tests.desktop.dialogs.conftest import banner_text, screenshot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures
from tests.factories import make_user

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def people(admin: ApiClient) -> dict[str, dict[str, Any]]:
    """Ann Lee twice (the second made despite the duplicate warning, with what the first
    lacks), Bob Ray, and a call and a note on the second Ann."""
    ann = await admin.create_record(
        "contacts",
        {"first_name": "Ann", "last_name": "Lee", "email": "ann@lee.example", "tags": ["vip"]},
    )
    twin = await admin.create_record(
        "contacts",
        {"first_name": "Ann", "last_name": "Lee", "phone": "+1 212 555 0100", "title": "Buyer",
         "tags": ["trade", "vip"]},
    )  # fmt: skip
    bob = await admin.create_record(
        "contacts", {"first_name": "Bob", "last_name": "Ray", "email": "bob@ray.example"}
    )
    link = {"related_type": "contact", "related_id": twin["id"]}
    call = await admin.create_record("activities", {"subject": "Call Ann", "type": "call", **link})
    note = await admin.create_record("notes", {"content": "Met at the fair", **link})
    return {"ann": ann, "twin": twin, "bob": bob, "call": call, "note": note}


def dialog_for(engine: SyncEngine, record_id: str, qtbot: Any, **options: Any) -> MergeDialog:
    row = engine.replica.get("contacts", record_id)
    assert row is not None
    dialog = MergeDialog(
        engine.api, engine.replica, "contacts", ("Contacts", "Contact"), row, **options
    )
    qtbot.addWidget(dialog)
    dialog.resize(820, 600)
    dialog.show()
    return dialog


def candidate_ids(dialog: MergeDialog) -> list[str]:
    return [dialog.candidates.item(i).data(IdRole) for i in range(dialog.candidates.count())]


def preview(dialog: MergeDialog) -> dict[str, tuple[str, str, str, bool]]:
    table = dialog.preview
    rows = {}
    for row in range(table.rowCount()):
        after = table.item(row, 3)
        rows[table.item(row, 0).text()] = (
            table.item(row, 1).text(),
            table.item(row, 2).text(),
            after.text(),
            after.font().bold(),
        )
    return rows


async def test_merge_a_duplicate_into_a_contact(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    admin = await live.api(team.admin, direct=True)
    made = await people(admin)
    ann, twin = made["ann"], made["twin"]
    engine = await live.engine(team.admin)
    await engine.sync_now()
    merged: list[tuple[str, str, str]] = []
    dialog = dialog_for(engine, ann["id"], qtbot, on_merged=lambda *a: merged.append(a))
    assert dialog.heading.text() == "Merge another contact into Ann Lee"
    # the same name: the twin is likely, Bob is not
    assert candidate_ids(dialog) == [twin["id"]]
    assert dialog.candidates_label.text() == "Likely duplicates (same e-mail, phone or name): 1"
    assert not dialog.merge_button.isEnabled()
    assert dialog.choose(twin["id"]) and dialog.merge_button.isEnabled()
    shown = preview(dialog)
    assert shown["Phone"] == ("", "+1 212 555 0100", "+1 212 555 0100", True)  # filled
    assert shown["Email"] == ("ann@lee.example", "", "ann@lee.example", False)  # kept
    assert shown["Title"] == ("", "Buyer", "Buyer", True)
    assert shown["Tags"] == ("vip", "trade, vip", "vip, trade", True)
    assert "Mobile" not in shown  # empty in both
    assert dialog.note.text().startswith("The kept record keeps its values")
    assert dialog.candidates.item(0).text() == "Ann Lee · +1 212 555 0100"
    screenshot(dialog, "merge-records")

    dialog.merge_button.click()
    await dialog.wait()
    assert merged == [
        (ann["id"], twin["id"], "Merged Ann Lee into Ann Lee; 1 activity and 1 note moved")
    ]
    assert dialog.result() == 1  # accepted: closed
    server = await admin.get_record("contacts", ann["id"])
    assert server["phone"] == "+1 212 555 0100" and server["title"] == "Buyer"
    assert server["email"] == "ann@lee.example" and server["tags"] == ["vip", "trade"]
    for entity, key in (("activities", "call"), ("notes", "note")):
        assert (await admin.get_record(entity, made[key]["id"]))["related_id"] == ann["id"]
    deleted = await admin.list_records("contacts", deleted=True)
    assert [r["id"] for r in deleted.items] == [twin["id"]]  # restorable
    # the replica follows with the next pull
    await engine.sync_now()
    assert engine.replica.get("contacts", twin["id"]) is None
    after = engine.replica.get("contacts", ann["id"])
    assert after is not None and after.data["phone"] == "+1 212 555 0100"


async def test_search_swap_waiting_edits_refusals_and_offline(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    admin = await live.api(team.admin, direct=True)
    made = await people(admin)
    ann, twin, bob = made["ann"], made["twin"], made["bob"]
    engine = await live.engine(team.admin)
    await engine.sync_now()
    dialog = dialog_for(engine, bob["id"], qtbot, search_delay_ms=10)
    assert candidate_ids(dialog) == []
    assert dialog.candidates_label.text().startswith("No other contact shares this one's")
    dialog.search.setText("ann")
    qtbot.waitUntil(lambda: len(candidate_ids(dialog)) == 2, timeout=2000)
    assert set(candidate_ids(dialog)) == {ann["id"], twin["id"]}
    assert dialog.candidates_label.text() == "2 contacts found"
    assert dialog.choose(ann["id"])

    # keep Ann instead: Bob becomes the duplicate
    dialog.swap()
    assert dialog.kept.id == ann["id"] and dialog.duplicate is not None
    assert dialog.duplicate.id == bob["id"]
    assert dialog.heading.text() == "Merge another contact into Ann Lee"
    assert candidate_ids(dialog)[0] == bob["id"] and twin["id"] in candidate_ids(dialog)
    assert preview(dialog)["Email"] == ("ann@lee.example", "bob@ray.example",
                                        "ann@lee.example", False)  # fmt: skip

    # Bob has an edit still to sync: nothing is sent
    await engine.update("contacts", bob["id"], {"title": "Waiting"})
    dialog.merge_button.click()
    assert banner_text(dialog.status) == (
        "Bob Ray has edits not yet on the server: merge once they have synced"
    )
    assert not dialog.busy.running
    await engine.sync_now()

    # the server out of reach: said so, the dialog stays open with its choice
    await live.proxy.cut()
    dialog.merge_button.click()
    await dialog.wait()
    assert banner_text(dialog.status).startswith("Not merged: Cannot reach the server")
    assert dialog.isVisible() and dialog.merge_button.isEnabled()
    await live.proxy.restore()
    assert (await admin.get_record("contacts", bob["id"]))["deleted_at"] is None

    # a role that may not change contacts: the server's reason
    support_user = await make_user(live.app, role="support", tenant_id=team.tenant_id)
    support = await live.engine(support_user)
    await support.sync_now()
    looking = dialog_for(support, ann["id"], qtbot)
    assert looking.choose(twin["id"])
    looking.merge_button.click()
    await looking.wait()
    assert banner_text(looking.status).startswith("Not merged: Your role may not update contacts")
    screenshot(looking, "merge-records-refused")
    assert (await admin.get_record("contacts", twin["id"]))["deleted_at"] is None


def test_preview_and_wording() -> None:
    tier = FieldSpec("tier", "Tier", "select", custom=True)
    rows = merge_preview(
        "accounts",
        {"name": "Acme", "industry": "", "custom_fields": {"tier": "gold"}},
        {"name": "ACME Ltd", "industry": "Retail", "city": "Leeds",
         "custom_fields": {"tier": "silver"}, "assigned_to": "u2"},
        [tier],
    )  # fmt: skip
    by_label = {r.label: (r.after, r.filled) for r in rows}
    assert by_label == {
        "Name": ("Acme", False),
        "Industry": ("Retail", True),
        "City": ("Leeds", True),
        "Tier": ("gold", False),
    }
    assert moved_text({"activities": 2, "notes": 1}) == "2 activities and 1 note moved"
    assert moved_text({"activities": 1, "notes": 0, "contacts": 3, "opportunities": 1}) == (
        "1 activity, 3 contacts and 1 opportunity moved"
    )
    assert moved_text({"activities": 0}) == ""
    with pytest.raises(ValueError, match="cannot be merged"):
        MergeDialog(None, None, "notes", ("Notes", "Note"), None)  # type: ignore[arg-type]
