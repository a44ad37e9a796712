"""Counts in the console's labels agree with their number."""

from __future__ import annotations

from aisha_desktop.models.wording import counted, needs


def test_counts_take_the_noun_in_their_number() -> None:
    assert counted(0, "conflict") == "0 conflicts"
    assert counted(1, "pending edit") == "1 pending edit"
    assert counted(2, "pending edit") == "2 pending edits"
    assert counted(12_500, "entry", "entries") == "12,500 entries"
    assert counted(1, "entry", "entries") == "1 entry"


def test_the_verb_agrees_with_the_count() -> None:
    assert needs(1, "field") == "1 field needs"
    assert needs(3, "field") == "3 fields need"
