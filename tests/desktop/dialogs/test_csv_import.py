"""The CSV import dialog against a real server: the file's preview and guessed mapping
(custom fields included), problems caught before sending, a dry run that reports every row
and writes nothing, the all-or-nothing import and "commit valid rows only", the server's
refusals, cancelling mid-upload; rendered to docs/screenshots/csv-import-*.png."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.csv_import import CsvImportDialog, ImportReportModel
from aisha_desktop.models.csv_mapping import (
    COMMON_IMPORT_FIELDS,
    IMPORT_FIELDS,
    auto_mapping,
    import_targets,
    inspect_csv,
    mapping_problems,
)
from aisha_desktop.models.fields import IDENTITY
from aisha_server.services.record_io import _mappable
from aisha_server.services.records import SPECS
from tests.desktop.dialogs.conftest import banner_text, screenshot
from tests.desktop.sync.conftest import Live, Team, live, team  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)

TIER = {
    "entity": "contact",
    "field_name": "tier",
    "field_type": "select",
    "label": "Tier",
    "options": ["gold", "silver"],
}


@pytest.fixture
def backend() -> str:
    # the dialog only sees the HTTP API; one database is enough for client-side behaviour
    return "sqlite"


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode())
    return path


PEOPLE = [
    ["Ada", "Lovelace", "ada@analytical.example", "+44 20 7946 0001", "Analytical Engines", "gold"],
    ["Grace", "Hopper", "grace@navy.example", "+1 202 555 0142", "US Navy", "silver"],
    ["Alan", "Turing", "alan@bletchley.example", "+44 1908 640404", "Bletchley Park", "gold"],
    ["Edsger", "Dijkstra", "not-an-email", "+31 40 247 9111", "TU Eindhoven", "gold"],
    ["Barbara", "Liskov", "barbara@mit.example", "+1 617 253 1000", "MIT", "platinum"],
    ["Donald", "Knuth", "knuth@stanford.example", "+1 650 723 2300", "Stanford", ""],
]
HEADER = ["First Name", "Surname", "E-mail", "Phone number", "Company", "Tier"]


async def dialog_for(api: ApiClient, qtbot: Any, entity: str = "contacts") -> CsvImportDialog:
    fields = await api.request("GET", "/api/custom-fields", params={"entity": "contact"})
    labels = (entity.capitalize(), entity[:-1].capitalize())
    dialog = CsvImportDialog(api, entity, labels, fields)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


async def loaded(dialog: CsvImportDialog, path: Path) -> None:
    dialog.load_file(path)
    await dialog.wait()


async def contacts(api: ApiClient) -> list[dict[str, Any]]:
    return (await api.list_records("contacts", limit=100)).items


async def test_dry_run_then_import(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    qtmodeltester: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    await api.request("POST", "/api/custom-fields", json=TIER)
    dialog = await dialog_for(api, qtbot)
    assert not dialog.dry_run_button.isEnabled() and not dialog.import_button.isEnabled()

    path = write_csv(tmp_path / "people.csv", HEADER, PEOPLE, bom=True)
    await loaded(dialog, path)
    assert banner_text(dialog.error) == ""
    assert dialog.file_info.text().startswith("6 rows · 6 columns")
    assert "UTF-8 with BOM" in dialog.file_info.text()
    assert dialog.preview_table.rowCount() == 6
    assert dialog.preview_table.horizontalHeaderItem(0).text() == "First Name"  # BOM gone
    # guessed from the header: label, synonym, custom field label
    assert dialog.mapping == {
        "First Name": "first_name",
        "Surname": "last_name",
        "E-mail": "email",
        "Phone number": "phone",
        "Company": "company",
        "Tier": "cf.tier",
    }
    assert dialog.dry_run_button.isEnabled() and not dialog.import_button.isEnabled()

    dialog.dry_run()
    await dialog.wait()
    report = dialog.report
    assert report is not None and report.dry_run
    assert [(r.row, r.status) for r in report.rows] == [
        (1, "created"), (2, "created"), (3, "created"), (4, "error"), (5, "error"),
        (6, "created"),
    ]  # fmt: skip
    assert "email" in report.rows[3].reasons and "tier" in report.rows[4].reasons
    assert await contacts(api) == []  # the dry run wrote nothing
    assert "4 would be created" in banner_text(dialog.error)
    assert not dialog.import_button.isEnabled()  # all-or-nothing would refuse the file
    qtmodeltester.check(dialog.report_model)
    assert dialog.report_model.rowCount() == 6
    dialog.errors_only.setChecked(True)
    assert dialog.report_model.rowCount() == 2
    assert dialog.report_model.index(0, 2).data() == report.rows[3].reasons
    dialog.errors_only.setChecked(False)
    screenshot(dialog, "csv-import-dry-run")

    # the import refuses the whole file: the button waits for "commit valid rows only"
    dialog.skip_errors.setChecked(True)
    assert not dialog.import_button.isEnabled()  # the dry run was of other settings
    dialog.dry_run()
    await dialog.wait()
    assert "rows with errors will be left out" in banner_text(dialog.status)
    assert dialog.import_button.isEnabled()
    imported: list[Any] = []
    dialog.imported.connect(imported.append)
    dialog.run_import()
    await dialog.wait()
    assert "Imported: 4 created, 0 updated, 2 with errors" in banner_text(dialog.status)
    stored = await contacts(api)
    assert sorted(c["last_name"] for c in stored) == ["Hopper", "Knuth", "Lovelace", "Turing"]
    ada = next(c for c in stored if c["last_name"] == "Lovelace")
    assert ada["custom_fields"] == {"tier": "gold"} and ada["email"] == "ada@analytical.example"
    assert len(imported) == 1 and imported[0].count("created") == 4
    assert not dialog.import_button.isEnabled()  # a second import needs a new dry run
    screenshot(dialog, "csv-import-done")


async def test_all_or_nothing_import_and_update_mode(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    dialog = await dialog_for(api, qtbot)
    good = [row[:5] for row in PEOPLE if row[2] != "not-an-email"]
    await loaded(dialog, write_csv(tmp_path / "good.csv", HEADER[:5], good))
    dialog.dry_run()
    await dialog.wait()
    assert dialog.import_button.isEnabled() and not dialog.skip_errors.isChecked()
    dialog.run_import()
    await dialog.wait()
    assert len(await contacts(api)) == 5

    # update by email: the match column must be mapped
    changed = [["ada@analytical.example", "Countess"], ["nobody@example.com", "X"]]
    await loaded(dialog, write_csv(tmp_path / "titles.csv", ["Email", "Job title"], changed))
    assert dialog.mapping == {"Email": "email", "Job title": "title"}
    dialog.mode.setCurrentIndex(dialog.mode.findData("update"))
    assert dialog.match.isVisible()
    dialog.match.setCurrentIndex(dialog.match.findData("phone"))
    assert "matches records by phone" in banner_text(dialog.problems)
    assert not dialog.dry_run_button.isEnabled()
    dialog.match.setCurrentIndex(dialog.match.findData("email"))
    assert banner_text(dialog.problems) == ""
    dialog.dry_run()
    await dialog.wait()
    report = dialog.report
    assert report is not None
    assert [r.status for r in report.rows] == ["updated", "error"]  # no such record
    dialog.skip_errors.setChecked(True)
    dialog.dry_run()
    await dialog.wait()
    dialog.run_import()
    await dialog.wait()
    ada = next(c for c in await contacts(api) if c["last_name"] == "Lovelace")
    assert ada["title"] == "Countess"


async def test_bad_files_and_mappings(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    dialog = await dialog_for(api, qtbot, "accounts")

    # not UTF-8, malformed quoting, empty, missing: clear errors, nothing to send
    (tmp_path / "latin1.csv").write_bytes("name\nCafé Zoë\n".encode("latin-1"))
    (tmp_path / "broken.csv").write_bytes(b'name,city\n"Acme,Berlin\n')
    (tmp_path / "empty.csv").write_bytes(b"\r\n\r\n")
    for name, expected in (
        ("latin1.csv", "not UTF-8 text"),
        ("broken.csv", "not valid CSV"),
        ("empty.csv", "empty"),
        ("missing.csv", "No such file"),
    ):
        await loaded(dialog, tmp_path / name)
        assert expected in banner_text(dialog.error), name
        assert dialog.data is None and not dialog.dry_run_button.isEnabled()
        if name == "latin1.csv":
            screenshot(dialog, "csv-import-bad-file")

    # a required field left unmapped, a field mapped twice: said before sending
    path = write_csv(
        tmp_path / "acc.csv",
        ["Company", "Web", "City", "Town"],
        [["Acme", "https://acme.example", "Berlin", "Berlin"], ["Globex", "", "Paris", ""]],
    )
    await loaded(dialog, path)
    assert dialog.mapping["Company"] == ""  # accounts have no company field
    assert "Required for new records, map a column to: Name" in banner_text(dialog.problems)
    assert not dialog.dry_run_button.isEnabled()
    dialog.set_mapping("Company", "name")
    dialog.set_mapping("Town", "city")
    assert "Several columns map to City" in banner_text(dialog.problems)
    dialog.set_mapping("Town", "")
    assert banner_text(dialog.problems) == "" and dialog.dry_run_button.isEnabled()
    with pytest.raises(ValueError, match="not a field"):
        dialog.set_mapping("Town", "shoe_size")

    dialog.dry_run()
    await dialog.wait()
    assert dialog.report is not None and dialog.report.count("created") == 2
    assert (await api.list_records("accounts")).items == []


async def test_server_errors(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin)  # through the proxy, which the test cuts later
    field = await api.request("POST", "/api/custom-fields", json=TIER)
    dialog = await dialog_for(api, qtbot)
    await loaded(dialog, write_csv(tmp_path / "people.csv", HEADER, PEOPLE[:3]))
    assert dialog.mapping["Tier"] == "cf.tier"
    # an admin archives the field meanwhile: the server refuses the mapping, in words
    await api.request("DELETE", f"/api/custom-fields/{field['id']}")
    dialog.dry_run()
    await dialog.wait()
    text = banner_text(dialog.error)
    assert text.startswith("The server refused the file: Invalid mapping")
    assert "mapping.Tier: unknown field 'cf.tier'" in text
    assert dialog.report is None and not dialog.import_button.isEnabled()
    screenshot(dialog, "csv-import-server-error")

    # the server cannot be reached
    dialog.set_mapping("Tier", "")
    await live.proxy.cut()
    dialog.dry_run()
    await dialog.wait()
    assert banner_text(dialog.error).startswith("Cannot reach the server")
    assert dialog.dry_run_button.isEnabled()
    await live.proxy.restore()
    assert (await api.list_records("contacts")).items == []


async def test_cancel_mid_upload(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    dialog = await dialog_for(api, qtbot)
    rows = [[f"Ann{i}", f"Lee{i}", f"ann{i}@example.com", "", "", ""] for i in range(8000)]
    await loaded(dialog, write_csv(tmp_path / "big.csv", HEADER, rows))
    dialog.skip_errors.setChecked(True)
    dialog.dry_run()
    await dialog.wait()
    assert dialog.import_button.isEnabled()

    progress = dialog._progress

    calls: list[int] = []

    def then_cancel(sent: int, total: int) -> None:
        progress(sent, total)
        calls.append(sent)
        if len(calls) == 3:  # two slices of the file are out
            screenshot(dialog, "csv-import-uploading")
            dialog.cancel_button.click()

    dialog._progress = then_cancel  # type: ignore[method-assign]
    dialog.run_import()
    await dialog.wait()
    assert "Import cancelled during the upload: nothing was imported" in banner_text(dialog.status)
    assert not dialog.cancel_button.isVisible() and not dialog.progress.isVisible()
    await asyncio.sleep(0.2)
    assert await contacts(api) == []
    assert dialog.dry_run_button.isEnabled()  # usable again


async def test_employee_may_import_own_records_only(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.employee, direct=True)
    dialog = await dialog_for(api, qtbot)
    admin_id = str(team.admin.id)
    path = write_csv(tmp_path / "owned.csv", ["first_name", "owner_id"], [["Ann", admin_id]])
    await loaded(dialog, path)
    dialog.dry_run()
    await dialog.wait()
    report = dialog.report
    assert report is not None and report.errors == 1
    assert "owner" in report.rows[0].reasons


def test_mapping_logic() -> None:
    # the desktop's import fields are the server's
    for entity, names in IMPORT_FIELDS.items():
        assert (*names, *COMMON_IMPORT_FIELDS) == tuple(n for n in _mappable(SPECS[entity]) if n), (
            entity
        )
    for entity, spec in SPECS.items():  # the people's identity fields are the server's
        assert IDENTITY.get(entity, ()) == spec.identity, entity
    targets = import_targets("contacts", [{**TIER, "is_archived": False}])
    assert targets[-1].name == "cf.tier" and targets[-1].label == "Tier (custom)"
    assert auto_mapping(["cf.tier", "EMAIL ", "Mail", "Given name", "Colour"], targets) == {
        "cf.tier": "cf.tier",
        "EMAIL ": "email",
        "Given name": "first_name",
    }
    assert mapping_problems({"a": ""}, targets, "create", None) == [
        "Map at least one column to a field"
    ]
    assert mapping_problems({"a": "email"}, targets, "upsert", None) == [
        "Mode upsert matches records by id: map a column to it"
    ]
    # new people need something to be told by; an update of other fields does not
    assert mapping_problems({"a": "title"}, targets, "create", None) == [
        "New records need a name, an e-mail or a phone: map a column to one of First name,"
        " Last name, Email, Phone, Mobile"
    ]
    assert mapping_problems({"a": "mobile"}, targets, "create", None) == []
    assert mapping_problems({"a": "id", "b": "title"}, targets, "update", "id") == []
    preview = inspect_csv(b'\xef\xbb\xbfa,b\r\n\r\n1,2,3\r\n"x\ny",4\r\n')
    assert preview.header == ("a", "b") and preview.row_count == 2 and preview.had_bom
    assert preview.wide_rows == (1,) and preview.rows[1] == ("x\ny", "4")


def test_report_model(qtmodeltester: Any) -> None:
    from aisha_desktop.client.csv_io import ImportRow, RowProblem

    model = ImportReportModel()
    qtmodeltester.check(model)
    model.set_rows(
        [
            ImportRow(1, "created", "x"),
            ImportRow(2, "error", None, (RowProblem("email", "bad"), RowProblem("row", "wide"))),
        ]
    )
    qtmodeltester.check(model)
    assert model.index(1, 2).data() == "email: bad; wide"
    assert model.index(1, 1).data() == "Error"


async def test_cancel_after_the_upload_says_the_server_may_finish(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    dialog = await dialog_for(api, qtbot)
    rows = [[f"Bo{i}", f"Ng{i}", f"bo{i}@example.com", "", "", ""] for i in range(3000)]
    await loaded(dialog, write_csv(tmp_path / "sent.csv", HEADER, rows))
    dialog.dry_run()
    await dialog.wait()
    progress = dialog._progress

    def cancel_when_sent(sent: int, total: int) -> None:
        progress(sent, total)
        if sent >= total:
            dialog.cancel_button.click()

    dialog._progress = cancel_when_sent  # type: ignore[method-assign]
    dialog.run_import()
    await dialog.wait()
    assert "the server may still finish the import (all rows or none)" in banner_text(dialog.error)
    # never a part of the file: all rows or none, whenever one looks
    for _ in range(10):
        page = await api.list_records("contacts", limit=1, include_total=True)
        assert page.total in (0, 3000)
        await asyncio.sleep(0.2)


async def test_cancel_while_the_server_imports_rolls_the_file_back(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    dialog = await dialog_for(api, qtbot)
    rows = [[f"Cy{i}", f"Ng{i}", f"cy{i}@example.com", "", "", ""] for i in range(6000)]
    await loaded(dialog, write_csv(tmp_path / "job.csv", HEADER, rows))
    dialog.dry_run()
    await dialog.wait()
    assert "Dry run" in banner_text(dialog.status) or banner_text(dialog.error)
    checking = dialog._checking
    seen: list[str] = []

    def cancel_once_running(job: Any) -> None:
        checking(job)
        seen.append(job.status)
        if len(seen) == 1:
            assert dialog.progress.isVisible()
            assert dialog.transfer.label.text().startswith("Importing:")
            assert dialog.cancel_button.text() == "Cancel import"
            screenshot(dialog, "csv-import-running")
            dialog.cancel_button.click()

    dialog._checking = cancel_once_running  # type: ignore[method-assign]
    dialog.run_import()
    await dialog.wait()
    assert seen[0] == "running" and seen[-1] == "cancelled"
    assert banner_text(dialog.status) == "Import cancelled: nothing was imported."
    assert banner_text(dialog.error) == ""
    page = await api.list_records("contacts", limit=1, include_total=True)
    assert page.total == 0


async def test_likely_duplicates_are_reported_and_created_when_confirmed(
    live: Live,  # noqa: F811
    team: Team,  # noqa: F811
    qtbot: Any,
    tmp_path: Path,
) -> None:
    api = await live.api(team.admin, direct=True)
    await api.create_record("contacts", {"first_name": "Ada", "email": "ada@analytical.example"})
    dialog = await dialog_for(api, qtbot)
    rows = [PEOPLE[0][:5], PEOPLE[1][:5]]  # Ada is there already; Grace is new
    await loaded(dialog, write_csv(tmp_path / "dupes.csv", HEADER[:5], rows))
    dialog.dry_run()
    await dialog.wait()
    report = dialog.report
    assert report is not None
    assert [r.status for r in report.rows] == ["error", "created"]
    assert "possible duplicate of contact" in report.rows[0].reasons
    assert not dialog.import_button.isEnabled()
    dialog.confirm_duplicates.setChecked(True)
    assert not dialog.import_button.isEnabled()  # the dry run was of other settings
    dialog.dry_run()
    await dialog.wait()
    assert dialog.report is not None and dialog.report.errors == 0
    assert dialog.import_button.isEnabled()
    screenshot(dialog, "csv-import-duplicates")
    dialog.run_import()
    await dialog.wait()
    names = sorted(c["first_name"] for c in await contacts(api))
    assert names == ["Ada", "Ada", "Grace"]
