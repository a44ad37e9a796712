"""Counts as an operator reads them: "1 conflict", "3 conflicts", "1 field needs"."""

from __future__ import annotations


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """`n` and the noun in the number it takes ("1 pending edit", "2 pending edits")."""
    noun = singular if n == 1 else (plural if plural is not None else f"{singular}s")
    return f"{n:,} {noun}"


def needs(n: int, singular: str, plural: str | None = None) -> str:
    """ "1 field needs" / "2 fields need" (the verb agrees with the count)."""
    return f"{counted(n, singular, plural)} {'needs' if n == 1 else 'need'}"
