"""Search in the replica: every typed word must start one of a record's words (names,
e-mail, phone digits, company...), served by the word index the triggers keep in step with
each write, delete and sweep, whichever way the query is planned."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from aisha_desktop.replica import Replica, store
from aisha_desktop.replica.schema import MIGRATIONS, query_words, search_words
from tests.desktop.replica.test_replica import contact, new_id, page, upsert


def ids(replica: Replica, text: str, **kwargs: Any) -> set[str]:
    return {r.id for r in replica.query("contacts", search=text, limit=500, **kwargs).rows}


@pytest.fixture
def replica(tmp_path: Path) -> Any:
    with Replica(tmp_path / "r.sqlite3") as r:
        yield r


@pytest.fixture(params=["as planned", "full-text index drives", "sort index walked"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every plan must give the same rows: the first rows in sort order checked (common
    words), the full-text matches read and sorted (rare words), or the sort index walked
    with the full-text matches as a filter (the rest)."""
    if request.param != "as planned":
        monkeypatch.setattr(store, "_PROBE_ROWS", 0)
        drives = request.param == "full-text index drives"
        monkeypatch.setattr(store, "_FTS_DRIVES", 10**9 if drives else 0)
    return str(request.param)


def test_search_words_of_a_record() -> None:
    text = search_words(
        "contacts",
        {"first_name": "Ann-Marie", "last_name": "O'Brien", "email": "Ann.OB@Example.io",
         "phone": "+1 (212) 555-0100", "company": "Acme, Inc.", "title": "Señora"},
    )  # fmt: skip
    words = text.split()
    assert text == "".join(" " + w for w in words) and words == sorted(set(words))
    for expected in ("ann", "marie", "ann_2d_marie", "o", "brien", "o_27_brien",
                     "ann_2e_ob_40_example_2e_io", "example", "io", "acme", "acme_2c_", "inc",
                     "12125550100", "2125550100", "senora"):  # fmt: skip
        assert expected in words
    assert query_words("  Ann  (212) 555-01 ann@ex O'Bri 7 SEÑ") == [
        "ann", "21255501", "ann_40_ex", "o_27_bri", "7", "sen"
    ]  # fmt: skip


def test_every_word_must_start_a_record_word(replica: Replica, plan: str) -> None:
    ann = contact(new_id(), first_name="Ann", last_name="Garcia", email="ann@acme.io",
                  phone="+12125550100", company="Acme")  # fmt: skip
    annabel = contact(new_id(), first_name="Annabel", last_name="Smith", email="bel@corp.io",
                      phone="020 7946 0018", company="Corp Ltd")  # fmt: skip
    joanna = contact(new_id(), first_name="Joanna", last_name="Garcia", email="jo@acme.io")
    replica.apply_page(page(*(upsert("contacts", c) for c in (ann, annabel, joanna))), None)
    assert ids(replica, "ann") == {ann["id"], annabel["id"]}  # not Joanna: a word start only
    assert ids(replica, "ANN garc") == {ann["id"]}
    assert ids(replica, "garcia") == {ann["id"], joanna["id"]}
    assert ids(replica, "acme") == {ann["id"], joanna["id"]}
    assert ids(replica, "ann@acme") == {ann["id"]}
    assert ids(replica, "(212) 555") == {ann["id"]}  # national digits of +1 212...
    assert ids(replica, "+1212") == {ann["id"]}
    assert ids(replica, "0207946") == {annabel["id"]}
    assert ids(replica, "nna") == set()
    assert ids(replica, "ann zzz") == set()
    assert ids(replica, "%") == set() and ids(replica, "_") == set()
    # filters and sort still apply to what the search found
    assert ids(replica, "garcia", filters={"last_name": "Garcia"}) == {ann["id"], joanna["id"]}
    ordered = replica.query("contacts", search="an", sort="first_name", limit=10).rows
    assert [r.data["first_name"] for r in ordered] == ["Ann", "Annabel"]


def test_keyset_and_offset_pages_of_a_search_agree(replica: Replica, plan: str) -> None:
    rows = [contact(new_id(), first_name="Kim", last_name=f"Lee{n:03d}",
                    updated_at=f"2026-11-01T10:{n % 60:02d}:{n % 7:02d}+00:00")
            for n in range(120)]  # fmt: skip
    rows.append(contact(new_id(), first_name="Other", last_name="Person"))
    replica.apply_page(page(*(upsert("contacts", r) for r in rows)), None)
    keyset: list[str] = []
    after = None
    while True:
        result = replica.query("contacts", search="kim", limit=25, after=after)
        keyset += [r.id for r in result.rows]
        if (after := result.next_after) is None:
            break
    offset = [r.id for o in range(0, 125, 25)
              for r in replica.query("contacts", search="kim", limit=25, offset=o).rows]  # fmt: skip
    assert keyset == offset and len(set(keyset)) == 120


def test_the_word_index_follows_edits_deletes_and_sweeps(replica: Replica, plan: str) -> None:
    first, second = new_id(), new_id()
    replica.apply_page(
        page(upsert("contacts", contact(first, last_name="Okafor")),
             upsert("contacts", contact(second, last_name="Nakamura")), snapshot=True),
        None,
    )  # fmt: skip
    replica.local_update("contacts", first, {"last_name": "Lindqvist"})  # edited here
    assert ids(replica, "okafor") == set() and ids(replica, "lindq") == {first}
    replica.apply_page(
        page(upsert("contacts", contact(second, version=2, last_name="Haddad")), cursor="c2"),
        "c1",
    )  # pulled from the server
    assert ids(replica, "nakamura") == set() and ids(replica, "hadd") == {second}
    replica.local_delete("contacts", first)
    assert ids(replica, "lindq") == set()
    # a new snapshot that no longer sends `second` sweeps it, words and all
    replica.reset_for_resync()
    replica.apply_page(page(cursor="c3", snapshot=True), None)
    assert ids(replica, "hadd") == set()
    with sqlite3.connect(replica.path) as db:
        left = db.execute("SELECT count(*) FROM f_contacts WHERE f_contacts MATCH 'hadd*'")
        assert left.fetchone() == (0,)
    db.close()


def test_a_version_2_file_gets_its_word_index(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        step(db)
    data = contact(new_id(), first_name="Greta", last_name="Varga", email="gv@example.hu")
    db.execute(
        "INSERT INTO r_contacts (id, version, base, last_name, search) VALUES (?, 1, ?, ?, ?)",
        (data["id"], orjson.dumps(data).decode(), "Varga", "greta varga gv@example.hu"),
    )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with Replica(path) as replica:
        assert replica.schema_version >= 3  # v3 and any later steps
        assert ids(replica, "varg") == {data["id"]} and ids(replica, "gv@ex") == {data["id"]}
        replica.local_update("contacts", data["id"], {"last_name": "Kovacs"})
        assert ids(replica, "varg") == set() and ids(replica, "kov") == {data["id"]}


def test_a_snapshot_builds_the_index_once_and_search_works_meanwhile(tmp_path: Path) -> None:
    with Replica(tmp_path / "r.sqlite3") as replica:
        first = [contact(new_id(), first_name="Ines", last_name=f"Moreau{n}") for n in range(30)]
        rest = [contact(new_id(), first_name="Ines", last_name=f"Dubois{n}") for n in range(30)]
        replica.apply_page(page(*(upsert("contacts", c) for c in first), cursor="s1",
                                snapshot=True, more=True), None)  # fmt: skip

        def triggers() -> int:
            with sqlite3.connect(replica.path) as db:
                found = db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                    "AND name LIKE 'r_contacts_fts_%'"
                ).fetchone()[0]
            db.close()
            return int(found)

        assert triggers() == 0  # the index waits for the snapshot
        assert ids(replica, "moreau1") == {c["id"] for c in first if "Moreau1" in c["last_name"]}
        replica.local_update("contacts", first[0]["id"], {"last_name": "Zola"})
        assert ids(replica, "zola") == {first[0]["id"]}
        replica.apply_page(page(*(upsert("contacts", c) for c in rest), cursor="s2",
                                snapshot=True), "s1")  # fmt: skip
        assert triggers() == 3
        assert ids(replica, "zola") == {first[0]["id"]}  # the edit made meanwhile is indexed
        assert ids(replica, "dubois2") == {c["id"] for c in rest if "Dubois2" in c["last_name"]}
        assert len(ids(replica, "ines")) == 60
        with sqlite3.connect(replica.path) as db:
            indexed = db.execute(
                "SELECT count(*) FROM f_contacts WHERE f_contacts MATCH '\"ines\" *'"
            ).fetchone()
        db.close()
        assert indexed == (60,)
