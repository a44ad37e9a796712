"""CSV import and export over the API (Qt-free): the typed import report, the multipart
upload body (streamed in slices so its progress can be shown and a cancel stops it), and the
export stream's row counting and header.

The server (`POST /api/<entity>/import`, `GET /api/<entity>/export`) imports all or nothing by
default: a file with a bad row is refused whole with a 422 `import_rejected` naming the bad
rows, which the client raises as `ImportRejected` carrying them as a report.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aisha_desktop.client.errors import ValidationError

ImportMode = Literal["create", "update", "upsert"]
MatchKey = Literal["email", "phone", "id"]
OnError = Literal["rollback", "skip"]
IMPORT_MODES: tuple[ImportMode, ...] = ("create", "update", "upsert")
MATCH_KEYS: tuple[MatchKey, ...] = ("email", "phone", "id")
UPLOAD_SLICE = 64 * 1024  # bytes per write of an upload: progress granularity, cancel latency
IMPORT_TIMEOUT = 600.0  # reading the upload's answer (a background import answers at once)
IMPORT_POLL = 0.25  # seconds before the first look at a background import
IMPORT_POLL_MAX = 2.0  # seconds between looks once it has run a while

# (bytes sent, bytes in total) of an upload
UploadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportProgress:
    bytes: int  # written to the file so far
    rows: int  # data rows written so far (header not counted)


ExportProgressCallback = Callable[[ExportProgress], None]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    bytes: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class RowProblem:
    field: str
    message: str


@dataclass(frozen=True)
class ImportRow:
    row: int  # the data row's number in the file (header and blank lines not counted)
    status: str  # created | updated | skipped | error
    id: str | None = None
    problems: tuple[RowProblem, ...] = ()

    @property
    def reasons(self) -> str:
        return "; ".join(
            p.message if p.field in ("", "row") else f"{p.field}: {p.message}"
            for p in self.problems
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportRow:
        number = data.get("row")
        problems = data.get("errors")
        found = (
            tuple(
                RowProblem(str(p.get("field") or "row"), str(p.get("message") or ""))
                for p in problems
                if isinstance(p, Mapping)
            )
            if problems and isinstance(problems, list)
            else ()
        )
        record_id = data.get("id")
        return cls(
            number if isinstance(number, int) else 0,
            str(data.get("status") or "error"),
            str(record_id) if record_id else None,
            found,
        )


@dataclass(frozen=True)
class ImportReport:
    mode: str
    dry_run: bool
    rows: tuple[ImportRow, ...]
    totals: Mapping[str, int] = field(default_factory=dict)
    # True when the server refused the file whole (on_error=rollback): nothing was written and
    # `rows` holds only the bad rows
    rejected: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def errors(self) -> int:
        return self.count("error")

    @classmethod
    def from_json(cls, data: Any) -> ImportReport:
        if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list):
            raise ValueError("an import report holds rows")
        totals = data.get("totals")
        return cls(
            mode=str(data.get("mode") or ""),
            dry_run=data.get("dry_run") is True,
            rows=tuple(ImportRow.from_json(r) for r in data["rows"] if isinstance(r, Mapping)),
            totals={str(k): v for k, v in totals.items() if isinstance(v, int)}
            if isinstance(totals, Mapping)
            else {},
        )


@dataclass(frozen=True)
class ImportJobState:
    """A background import as the server last told it (`/api/import-jobs/<id>`)."""

    id: str
    status: str  # running | done | failed | cancelled
    rows: int | None  # data rows in the file, once the server has read it
    checked: int  # rows checked (and, unless a dry run, written) so far

    @classmethod
    def from_json(cls, data: Any) -> ImportJobState:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ValueError("an import job without an id")
        rows = data.get("rows")
        checked = data.get("checked")
        return cls(
            data["id"],
            str(data.get("status")),
            rows if isinstance(rows, int) else None,
            checked if isinstance(checked, int) else 0,
        )


# what a background import has reached, told after every look (and after a cancel)
ImportCheckProgress = Callable[[ImportJobState], None]


class ImportRejected(ValidationError):
    """422 `import_rejected`: rows have errors and the import ran all-or-nothing, so nothing
    was written; `report` lists the bad rows."""

    def __init__(self, source: ValidationError, *, mode: str, dry_run: bool) -> None:
        super().__init__(
            source.message,
            status=source.status,
            code=source.code,
            details=source.details,
            request_id=source.request_id,
            body=source.body,
        )
        rows = source.details if isinstance(source.details, list) else []
        self.report = ImportReport(
            mode=mode,
            dry_run=dry_run,
            rows=tuple(ImportRow.from_json(r) for r in rows if isinstance(r, Mapping)),
            rejected=True,
        )


# -- the upload body ---------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart/form-data body of option fields and one file field "file", sent in slices
    of `UPLOAD_SLICE` so the sender sees progress and can stop between slices."""

    fields: Mapping[str, str]
    data: bytes
    filename: str = "import.csv"
    boundary: str = field(default_factory=lambda: f"aisha-{uuid.uuid4().hex}")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self) -> bytes:
        parts = []
        for name, value in self.fields.items():
            parts.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"'
                f"\r\n\r\n{value}\r\n"
            )
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{_quoted(self.filename)}"\r\nContent-Type: text/csv\r\n\r\n'
        )
        return "".join(parts).encode()

    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def size(self) -> int:
        return len(self._head()) + len(self.data) + len(self._tail())

    async def body(self, progress: UploadProgress | None = None) -> AsyncIterator[bytes]:
        total = self.size
        sent = 0
        head = self._head()
        pieces = [
            head,
            *(self.data[i : i + UPLOAD_SLICE] for i in range(0, len(self.data), UPLOAD_SLICE)),
        ]
        pieces.append(self._tail())
        for piece in pieces:
            yield piece
            sent += len(piece)
            if progress is not None:
                progress(sent, total)


# -- the export stream -------------------------------------------------------------------------


class RecordCounter:
    """Counts the CSV records in a byte stream (line breaks outside quoted cells), chunk by
    chunk: a quoted cell may hold line breaks and may end in a later chunk."""

    def __init__(self) -> None:
        self.in_quotes = False
        self.records = 0

    def feed(self, chunk: bytes) -> None:
        parts = chunk.split(b'"')
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if not self.in_quotes:
                self.records += part.count(b"\n")
            if index < last:
                self.in_quotes = not self.in_quotes


def record_end(text: str) -> int:
    """The index just past the last line break outside quoted cells in `text` (which starts
    at a record boundary); 0 when no record is complete yet."""
    end = 0
    position = 0
    for index, part in enumerate(text.split('"')):
        if index % 2 == 0:
            found = part.rfind("\n")
            if found >= 0:
                end = position + found + 1
        position += len(part) + 1
    return end


def header_of(first_chunk: bytes) -> tuple[str, ...]:
    """The column names in the first line of an export (complete in its first chunk)."""
    text = first_chunk.decode("utf-8", "replace")
    line = text[: record_end(text)] or text
    for cells in csv.reader(io.StringIO(line, newline="")):
        return tuple(c.strip() for c in cells)
    return ()
