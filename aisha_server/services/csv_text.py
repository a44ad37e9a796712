"""Uploaded CSV files as text: UTF-8 (with or without a BOM) or a clear refusal, and the
field separator they use."""

from __future__ import annotations

from aisha_server.errors import BadRequest


def decode_csv(data: bytes) -> str:
    """The file's text; a non-UTF-8 or empty file is a 400 that says what to do."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The file is not UTF-8 text (invalid byte at position {exc.start});"
            " save it as CSV UTF-8",
            code="not_utf8",
        ) from None
    if not text.strip():
        raise BadRequest("The file is empty", code="empty_file")
    return text


def csv_delimiter(text: str) -> str:
    """The file's field separator: a comma, or the semicolon or tab a header line holds
    instead of any comma (spreadsheets in many locales save "CSV" with semicolons)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        return ","
    semicolons, tabs = first.count(";"), first.count("\t")
    if semicolons or tabs:
        return ";" if semicolons >= tabs else "\t"
    return ","
