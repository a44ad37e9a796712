"""The deleted-records dialog against a real server: newest deletion first within the
operator's data scope, search, paging, a record's fields, restoring several at once, a role
that may not restore, the server out of reach; rendered to docs/screenshots/deleted-records*.png."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.deleted_records import DeletedRecordsDialog, detail_text
from tests.desktop.dialogs.conftest import banner_text, screenshot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures
from tests.factories import make_user

pytestmark = pytest.mark.timeout(120)

PEOPLE = [
    {"first_name": "Ann", "last_name": "Lee", "email": "ann@lee.example", "company": "Lee Co"},
    {"first_name": "Bob", "last_name": "Ray", "email": "bob@ray.example"},
    {"first_name": "Cy", "last_name": "Young", "email": "cy@young.example"},
    {"first_name": "Dee", "last_name": "Ng", "phone": "+1 212 555 0100"},
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def deleted_people(api: ApiClient) -> list[str]:
    """Four contacts, three deleted (Ann first, Dee last); Cy stays."""
    ids = [(await api.create_record("contacts", person))["id"] for person in PEOPLE]
    for index in (0, 1, 3):
        await api.delete_record("contacts", ids[index])
        await asyncio.sleep(0.01)  # distinct deletion times
    return ids


def dialog_for(api: ApiClient, qtbot: Any, **options: Any) -> DeletedRecordsDialog:
    dialog = DeletedRecordsDialog(api, "contacts", ("Contacts", "Contact"), **options)
    qtbot.addWidget(dialog)
    dialog.resize(760, 520)
    dialog.show()  # the first read starts when shown
    return dialog


async def typed(dialog: DeletedRecordsDialog, qtbot: Any) -> None:
    """Let the search's pause pass (a Qt timer: Qt's events, this test's loop is asyncio's)
    and the read it starts end."""
    qtbot.waitUntil(lambda: not dialog._search_timer.isActive(), timeout=2000)
    await dialog.wait()


def names(dialog: DeletedRecordsDialog) -> list[str]:
    return [dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())]


async def test_list_search_page_and_restore(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    api = await live.api(team.admin, direct=True)
    ids = await deleted_people(api)
    restored: list[list[str]] = []
    dialog = dialog_for(api, qtbot, on_restored=restored.append, search_delay_ms=10)
    await dialog.wait()
    assert dialog.windowTitle() == "Deleted contacts"
    assert names(dialog) == ["Dee Ng", "Bob Ray", "Ann Lee"]  # newest deletion first
    assert dialog.table.item(0, 1).text() == "+1 212 555 0100"  # no e-mail: the phone
    assert dialog.table.item(2, 1).text() == "ann@lee.example"
    assert dialog.table.item(0, 2).text()[:4].isdigit()  # when it was deleted
    assert dialog.count_label.text() == "3 contacts shown"
    assert not dialog.restore_button.isEnabled()  # nothing chosen yet

    dialog.select_ids([ids[0]])
    assert dialog.restore_button.isEnabled() and dialog.restore_button.text() == "Restore"
    details = dialog.details.text()
    assert "ann@lee.example" in details and "Lee Co" in details and "Deleted at" in details
    screenshot(dialog, "deleted-records")

    # search narrows on the server; a search that finds nothing says so
    dialog.search.setText("ann")
    await typed(dialog, qtbot)
    assert names(dialog) == ["Ann Lee"]
    dialog.search.setText("zzz")
    await typed(dialog, qtbot)
    assert names(dialog) == [] and dialog.empty.text() == "No deleted contacts match this search"
    dialog.search.clear()
    await typed(dialog, qtbot)
    assert len(names(dialog)) == 3

    # restore two together: they leave the list, the server has them live again
    dialog.select_ids([ids[0], ids[3]])
    assert dialog.restore_button.text() == "Restore 2 contacts"
    dialog.restore_button.click()
    await dialog.wait()
    assert banner_text(dialog.status) == (
        "Restored 2 contacts: Dee Ng, Ann Lee. They show in the list once synced."
    )
    assert names(dialog) == ["Bob Ray"] and dialog.count_label.text() == "1 contact shown"
    assert restored == [[ids[3], ids[0]]]  # in the order shown
    for record_id in (ids[0], ids[3]):
        assert (await api.get_record("contacts", record_id))["deleted_at"] is None
    screenshot(dialog, "deleted-records-restored")

    # paging: one at a time, "Load more" while the server has more
    paged = dialog_for(api, qtbot, page_size=1)
    await paged.wait()
    assert names(paged) == ["Bob Ray"] and paged.more_button.isHidden()
    await api.delete_record("contacts", ids[2])
    paged.reload()
    await paged.wait()
    assert names(paged) == ["Cy Young"] and paged.more_button.isVisible()
    assert paged.count_label.text() == "1 contact shown · more on the server"
    paged.more_button.click()
    await paged.wait()
    assert names(paged) == ["Cy Young", "Bob Ray"] and paged.more_button.isHidden()


async def test_scope_roles_and_the_server_out_of_reach(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
) -> None:
    admin = await live.api(team.admin, direct=True)
    ids = await deleted_people(admin)
    # an employee sees the deleted records of their own scope only (assigned to them)
    theirs = await admin.create_record(
        "contacts", {"first_name": "Eve", "last_name": "Own", "assigned_to": str(team.employee.id)}
    )
    await admin.delete_record("contacts", theirs["id"])
    employee = await live.api(team.employee, direct=True)
    dialog = dialog_for(employee, qtbot)
    await dialog.wait()
    assert names(dialog) == ["Eve Own"]

    # support may look but not restore: the server's reason is shown and the row stays
    support_user = await make_user(live.app, role="support", tenant_id=team.tenant_id)
    support = await live.api(support_user, direct=True)
    looking = dialog_for(support, qtbot)
    await looking.wait()
    assert sorted(names(looking)) == ["Ann Lee", "Bob Ray", "Dee Ng", "Eve Own"]
    looking.select_ids([ids[1]])
    looking.restore_button.click()
    await looking.wait()
    assert banner_text(looking.status).startswith(
        "Not restored: Bob Ray: Your role may not restore"
    )
    assert "Bob Ray" in names(looking) and looking.restore_button.isEnabled()
    assert (await admin.list_records("contacts", deleted=True, q="bob")).items  # still deleted
    screenshot(looking, "deleted-records-refused")

    # the server out of reach: said so, nothing shown is lost
    proxied = await live.api(team.admin)
    offline = dialog_for(proxied, qtbot)
    await offline.wait()
    shown = names(offline)
    await live.proxy.cut()
    offline.reload()
    await offline.wait()
    assert banner_text(offline.status).startswith("Cannot reach the server")
    assert names(offline) == shown and offline.refresh_button.isEnabled()
    await live.proxy.restore()
    offline.reload()
    await offline.wait()
    assert banner_text(offline.status) == "" and names(offline) == shown


def test_detail_text_picks_the_first_telling_field() -> None:
    assert detail_text("contacts", {"email": None, "company": "Acme", "phone": "1"}) == "Acme"
    assert detail_text("opportunities", {"stage": "proposal"}) == "proposal"
    long_note = {"content": "word " * 40}
    text = detail_text("notes", long_note)
    assert len(text) == 80 and text.endswith("…") and "  " not in text
    assert detail_text("accounts", {}) == ""
