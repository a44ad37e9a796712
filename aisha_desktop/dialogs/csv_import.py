"""CSV import of one entity: pick a file, see its first rows, map its columns to fields
(guessed from the header, custom fields included, every choice editable), choose the mode
(create, update, create-or-update) and the match key, run a dry run that reports every row,
then the real import.

The server imports all or nothing unless "commit valid rows only" is ticked, so the Import
button waits for a dry run of the current file and settings that the import would pass.  The
upload shows its progress, then the server's check of the rows (the server runs the import as
a background job); either can be cancelled: a cut upload imports nothing, and a cancelled job
is rolled back by the server (the dialog says whether the cancel came in time)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient, ValidationError
from aisha_desktop.client.csv_io import ImportJobState, ImportRejected, ImportReport, ImportRow
from aisha_desktop.dialogs.common import (
    BANNER_INFO,
    BANNER_OK,
    Busy,
    banner,
    describe,
    show_banner,
)
from aisha_desktop.dialogs.transfer import Transfer, human_size
from aisha_desktop.models.csv_mapping import (
    CsvFileError,
    CsvPreview,
    Target,
    auto_mapping,
    import_targets,
    inspect_csv,
    mapping_problems,
    sent_mapping,
)

Index = QModelIndex | QPersistentModelIndex
MODES = (
    ("create", "Create new records"),
    ("update", "Update existing records"),
    ("upsert", "Create or update (upsert)"),
)
MATCH_KEYS = (("email", "Email"), ("phone", "Phone"), ("id", "Record id"))
NOT_IMPORTED = "— not imported —"
STATUS_COLOURS = {"error": "#b3261e", "created": "#0d652d", "updated": "#174ea6"}
REPORT_COLUMNS = ("Row", "Status", "Reasons")


class ImportReportModel(QAbstractTableModel):
    """The per-row report (row number, status, reasons): immutable rows, replaced whole."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[ImportRow, ...] = ()

    def set_rows(self, rows: Iterable[ImportRow]) -> None:
        self.beginResetModel()
        self._rows = tuple(rows)
        self.endResetModel()

    def row(self, number: int) -> ImportRow:
        return self._rows[number]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(REPORT_COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(REPORT_COLUMNS)
        ):
            return REPORT_COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(item.row), item.status.capitalize(), item.reasons)[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            colour = STATUS_COLOURS.get(item.status)
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole and column == 2 and item.reasons:
            return item.reasons
        return None


class CsvImportDialog(QDialog):
    imported = Signal(object)  # the ImportReport of a real import that wrote rows

    def __init__(
        self,
        api: ApiClient,
        entity: str,
        labels: tuple[str, str],
        custom_rows: Iterable[Mapping[str, Any]] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.api = api
        self.entity = entity
        self.plural, self.singular = labels
        self.targets: list[Target] = import_targets(entity, custom_rows)
        self.path: Path | None = None
        self.data: bytes | None = None
        self.preview: CsvPreview | None = None
        self.report: ImportReport | None = None
        self._checked: tuple[Any, ...] | None = None  # the settings the last dry run used
        self._sent_all = False  # the running upload got its last byte out
        self._job: ImportJobState | None = None  # the running import's last state
        self._dry_run = False
        self.setWindowTitle(f"Import {self.plural} from CSV")
        self.setMinimumSize(1040, 760)
        self._build()
        self.busy = Busy(self, self.editors)
        self._update_state()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.file_label = QLabel("No file chosen")
        self.file_label.setObjectName("fileLabel")
        self.file_label.setStyleSheet("font-weight: 600;")
        self.choose_button = QPushButton("Choose file…")
        self.choose_button.clicked.connect(self._choose)
        self.file_info = QLabel()
        self.file_info.setStyleSheet("color: #555;")
        top = QHBoxLayout()
        top.addWidget(QLabel("File:"))
        top.addWidget(self.file_label, 1)
        top.addWidget(self.choose_button)

        self.preview_table = QTableWidget()
        self.preview_table.setObjectName("preview")
        self.preview_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_table.verticalHeader().setDefaultSectionSize(22)
        self.preview_table.setWordWrap(False)
        preview_box = QGroupBox("Preview (first rows)")
        QVBoxLayout(preview_box).addWidget(self.preview_table)

        self.mapping_table = QTableWidget(0, 3)
        self.mapping_table.setObjectName("mapping")
        self.mapping_table.setHorizontalHeaderLabels(("CSV column", "Example", "Imported as"))
        self.mapping_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.mapping_table.verticalHeader().hide()
        self.mapping_table.verticalHeader().setDefaultSectionSize(28)
        header = self.mapping_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.combos: dict[str, QComboBox] = {}
        mapping_box = QGroupBox("Column mapping")
        QVBoxLayout(mapping_box).addWidget(self.mapping_table)

        self.mode = QComboBox()
        self.mode.setObjectName("mode")
        for key, text in MODES:
            self.mode.addItem(text, key)
        self.match = QComboBox()
        self.match.setObjectName("match")
        for key, text in MATCH_KEYS:
            self.match.addItem(text, key)
        self.skip_errors = QCheckBox("Commit valid rows only (skip rows with errors)")
        self.skip_errors.setToolTip(
            "Off: the server imports all rows or none. On: rows with errors are reported and "
            "left out, the others are imported."
        )
        self.confirm_duplicates = QCheckBox("Create likely duplicates")
        self.confirm_duplicates.setObjectName("confirmDuplicates")
        self.confirm_duplicates.setToolTip(
            "Off: a new row whose e-mail or phone is already a record's (or an earlier row's) "
            "is reported as a possible duplicate and not created. On: it is created anyway."
        )
        options = QHBoxLayout()
        options.addWidget(QLabel("Mode:"))
        options.addWidget(self.mode)
        options.addSpacing(12)
        self.match_label = QLabel("Match by:")
        options.addWidget(self.match_label)
        options.addWidget(self.match)
        options.addSpacing(12)
        options.addWidget(self.skip_errors)
        options.addSpacing(12)
        options.addWidget(self.confirm_duplicates)
        options.addStretch(1)
        for signal in (
            self.mode.currentIndexChanged,
            self.match.currentIndexChanged,
            self.skip_errors.toggled,
            self.confirm_duplicates.toggled,
        ):
            signal.connect(self._update_state)

        self.problems = banner()
        self.problems.setObjectName("problems")
        self.error = banner()
        self.error.setObjectName("error")
        self.status = banner()
        self.status.setObjectName("status")

        self.transfer = Transfer(self.cancel)
        self.progress, self.cancel_button = self.transfer.bar, self.transfer.cancel_button

        self.report_summary = QLabel()
        self.report_summary.setObjectName("reportSummary")
        self.errors_only = QCheckBox("Show rows with errors only")
        self.errors_only.toggled.connect(self._show_report)
        self.report_model = ImportReportModel(self)
        self.report_table = QTableView()
        self.report_table.setObjectName("report")
        self.report_table.setModel(self.report_model)
        self.report_table.verticalHeader().hide()
        self.report_table.verticalHeader().setDefaultSectionSize(22)
        self.report_table.setAlternatingRowColors(True)
        self.report_table.setWordWrap(False)
        report_header = self.report_table.horizontalHeader()
        report_header.setStretchLastSection(True)
        report_header.resizeSection(0, 60)
        report_header.resizeSection(1, 90)
        report_box = QGroupBox("Report")
        report_layout = QVBoxLayout(report_box)
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.report_summary, 1)
        summary_row.addWidget(self.errors_only)
        report_layout.addLayout(summary_row)
        report_layout.addWidget(self.report_table)
        self.report_box = report_box
        report_box.hide()

        self.dry_run_button = QPushButton("Dry run")
        self.dry_run_button.setObjectName("dryRun")
        self.dry_run_button.setToolTip("Check every row on the server without writing anything")
        self.dry_run_button.clicked.connect(self.dry_run)
        self.import_button = QPushButton("Import")
        self.import_button.setObjectName("import")
        self.import_button.clicked.connect(self.run_import)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = self.transfer.button_row(
            self.dry_run_button, self.import_button, self.close_button
        )

        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(preview_box)
        upper.addWidget(mapping_box)
        upper.setSizes([560, 480])
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(upper)
        self.splitter.addWidget(report_box)
        self.splitter.setSizes([330, 250])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.file_info)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(options)
        layout.addWidget(self.problems)
        layout.addWidget(self.error)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        # disabled while the server works (the cancel button is not: it stops the work)
        self.editors: list[QWidget] = [
            self.choose_button,
            self.mapping_table,
            self.mode,
            self.match,
            self.skip_errors,
            self.confirm_duplicates,
            self.dry_run_button,
            self.import_button,
        ]

    # -- the file ----------------------------------------------------------------------------
    def _choose(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, f"Import {self.plural}", "", "CSV files (*.csv);;All files (*)"
        )
        if name:
            self.load_file(Path(name))

    def load_file(self, path: Path) -> None:
        """Read and check `path` off the GUI thread, then show it (await `wait()`)."""
        self._run(self._load(path))

    async def _load(self, path: Path) -> None:
        self._clear_messages()
        self.report = None
        self._checked = None
        self._show_report()
        self.file_label.setText(path.name)
        self.file_label.setToolTip(str(path))
        try:
            data = await asyncio.to_thread(path.read_bytes)
            preview = await asyncio.to_thread(inspect_csv, data)
        except (OSError, CsvFileError) as exc:
            self.path = self.data = self.preview = None
            self._fill_preview(None)
            self.file_info.setText("")
            text = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
            show_banner(self.error, f"Cannot use {path.name}: {text}")
            return
        finally:
            self._update_state()
        self.path, self.data, self.preview = path, data, preview
        bom = "UTF-8 with BOM" if preview.had_bom else "UTF-8"
        rows = f"{preview.row_count:,} row{'s' if preview.row_count != 1 else ''}"
        self.file_info.setText(
            f"{rows} · {len(preview.header)} columns · {human_size(len(data))} · {bom}"
        )
        self._fill_preview(preview)
        if preview.wide_rows:
            listed = ", ".join(str(n) for n in preview.wide_rows[:5])
            more = "…" if len(preview.wide_rows) > 5 else ""
            show_banner(
                self.status,
                f"Rows {listed}{more} have more cells than the header: the server will "
                "report them as errors.",
                BANNER_INFO,
            )
        self._update_state()

    def _fill_preview(self, preview: CsvPreview | None) -> None:
        header = list(preview.header) if preview else []
        rows = list(preview.rows) if preview else []
        self.preview_table.clear()
        self.preview_table.setColumnCount(len(header))
        self.preview_table.setRowCount(len(rows))
        self.preview_table.setHorizontalHeaderLabels(header)
        for r, cells in enumerate(rows):
            for c in range(len(header)):
                text = cells[c] if c < len(cells) else ""
                item = QTableWidgetItem(text.replace("\r", " ").replace("\n", " ⏎ "))
                item.setToolTip(text)
                self.preview_table.setItem(r, c, item)
        self.preview_table.resizeColumnsToContents()
        for c in range(len(header)):
            self.preview_table.setColumnWidth(c, min(self.preview_table.columnWidth(c), 220))

        guessed = auto_mapping(header, self.targets)
        self.mapping_table.setRowCount(len(header))
        self.combos = {}
        for r, column in enumerate(header):
            self.mapping_table.setItem(r, 0, QTableWidgetItem(column))
            example = next((row[r] for row in rows if r < len(row) and row[r].strip()), "")
            self.mapping_table.setItem(r, 1, QTableWidgetItem(example.replace("\n", " ⏎ ")))
            combo = QComboBox()
            combo.addItem(NOT_IMPORTED, "")
            for target in self.targets:
                combo.addItem(target.label + (" *" if target.required else ""), target.name)
            combo.setCurrentIndex(max(0, combo.findData(guessed.get(column, ""))))
            combo.currentIndexChanged.connect(self._update_state)
            self.mapping_table.setCellWidget(r, 2, combo)
            self.combos[column] = combo

    # -- settings ------------------------------------------------------------------------------
    @property
    def mapping(self) -> dict[str, str]:
        """CSV column -> target ("" for a column left out), as the combos show it."""
        return {column: str(combo.currentData() or "") for column, combo in self.combos.items()}

    def set_mapping(self, column: str, target: str) -> None:
        combo = self.combos[column]
        index = combo.findData(target)
        if index < 0:
            raise ValueError(f"not a field of {self.entity}: {target!r}")
        combo.setCurrentIndex(index)

    @property
    def chosen_mode(self) -> str:
        return str(self.mode.currentData())

    @property
    def chosen_match(self) -> str | None:
        return None if self.chosen_mode == "create" else str(self.match.currentData())

    def _settings(self) -> tuple[Any, ...]:
        return (
            self.data,
            tuple(sorted(sent_mapping(self.mapping).items())),
            self.chosen_mode,
            self.chosen_match,
            self.skip_errors.isChecked(),
            self.confirm_duplicates.isChecked(),
        )

    def problems_now(self) -> list[str]:
        if self.data is None:
            return ["Choose a CSV file"]
        return mapping_problems(self.mapping, self.targets, self.chosen_mode, self.chosen_match)

    def _update_state(self, *_: object) -> None:
        creating = self.chosen_mode == "create"
        self.match.setVisible(not creating)
        self.match_label.setVisible(not creating)
        if getattr(self, "busy", None) is None or self.busy.running:
            return  # still building, or the server is working
        problems = self.problems_now() if self.data is not None else []
        show_banner(self.problems, "\n".join(problems), BANNER_INFO)
        ready = self.data is not None and not problems
        self.dry_run_button.setEnabled(ready)
        checked = self.report is not None and self._checked == self._settings()
        passes = (
            checked
            and self.report is not None
            and (self.report.errors == 0 or self.skip_errors.isChecked())
        )
        self.import_button.setEnabled(ready and passes)
        if not ready:
            tip = "Fix the problems above first"
        elif not checked:
            tip = "Run a dry run of these settings first"
        elif not passes:
            tip = "Rows have errors: fix the file, or tick “Commit valid rows only”"
        else:
            tip = "Import the rows the dry run checked"
        self.import_button.setToolTip(tip)

    # -- running -------------------------------------------------------------------------------
    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        task = self.busy.run(work)
        if task is not None:  # after Busy re-enabled its controls: the state refines them
            task.add_done_callback(lambda _: self._update_state())

    def dry_run(self) -> None:
        if self.dry_run_button.isEnabled():
            self._run(self._send(dry_run=True))

    def run_import(self) -> None:
        if self.import_button.isEnabled():
            self._run(self._send(dry_run=False))

    def cancel(self) -> None:
        self.busy.cancel()

    async def wait(self) -> None:
        """Until the running work is done (tests)."""
        if self.busy.task is not None:
            await asyncio.wait({self.busy.task})

    def _checking(self, job: ImportJobState) -> None:
        self._job = job
        if job.status != "running":
            return
        what = "Checking" if self._dry_run else "Importing"
        if job.rows:
            text = f"{what}: {job.checked:,} of {job.rows:,} rows checked…"
            self.transfer.step(job.checked, job.rows, text)
        else:
            self.transfer.step(0, 0, f"{what}: the server is reading the file…")

    def _progress(self, sent: int, total: int) -> None:
        if sent >= total:
            self._sent_all = True  # busy: the server checks the rows
            text = f"Sent {human_size(total)}; the server is checking the rows…"
            self.transfer.step(0, 0, text)
        else:
            text = f"Uploading {human_size(sent)} of {human_size(total)}…"
            self.transfer.step(sent, total, text)

    async def _send(self, *, dry_run: bool) -> None:
        assert self.data is not None
        settings = self._settings()
        mode = self.chosen_mode
        skip = self.skip_errors.isChecked()
        self._clear_messages()
        self._sent_all = False
        self._job = None
        self._dry_run = dry_run
        self.transfer.start(
            "Uploading…", steps=1, cancel="Cancel dry run" if dry_run else "Cancel import"
        )
        try:
            report = await self.api.import_csv(
                self.entity,
                self.data,
                mapping=sent_mapping(self.mapping),
                mode=mode,  # type: ignore[arg-type]
                match=self.chosen_match,  # type: ignore[arg-type]
                dry_run=dry_run,
                # a dry run reports every row, good and bad; the import honours the choice
                on_error="skip" if dry_run or skip else "rollback",
                confirm_duplicates=self.confirm_duplicates.isChecked(),
                filename=self.path.name if self.path else "import.csv",
                progress=self._progress,
                checking=self._checking,
            )
        except asyncio.CancelledError:
            self._cancelled(dry_run)
            raise
        except ImportRejected as exc:
            self.report = exc.report
            self._checked = None
            show_banner(
                self.error,
                f"{exc.message}. Fix the rows below, or tick “Commit valid rows only”"
                " (or “Create likely duplicates” for rows reported as possible duplicates).",
            )
        except Exception as exc:
            show_banner(self.error, self._failure(exc))
        else:
            self.report = report
            if dry_run:
                self._checked = settings
                self._say_checked(report, skip)
            else:
                self._checked = None
                self._say_imported(report)
                if report.count("created") or report.count("updated"):
                    self.imported.emit(report)
        finally:
            self.transfer.finish()
            self._show_report()

    def _cancelled(self, dry_run: bool) -> None:
        job = self._job
        if dry_run or not self._sent_all or (job is not None and job.status == "cancelled"):
            what = (
                "Dry run cancelled"
                if dry_run
                else "Import cancelled"
                if self._sent_all
                else "Import cancelled during the upload"
            )
            show_banner(self.status, f"{what}: nothing was imported.", BANNER_INFO)
        elif job is not None and job.status in ("done", "failed"):
            outcome = "imported" if job.status == "done" else "refused by the server"
            show_banner(
                self.error,
                f"The cancel came too late: the file had already been {outcome}. Check the "
                "list once it has synced.",
            )
        else:
            show_banner(
                self.error,
                "Cancelled after the whole file was sent: the server may still finish the "
                "import (all rows or none). Check the list once it has synced.",
            )

    def _failure(self, exc: BaseException) -> str:
        text = describe(exc)
        if isinstance(exc, ValidationError) and isinstance(exc.details, list):
            lines = [
                f"{d.get('field', '')}: {d.get('message', '')}".strip(": ")
                for d in exc.details
                if isinstance(d, Mapping)
            ]
            if lines:
                text += "\n" + "\n".join(f"• {line}" for line in lines[:8])
        return f"The server refused the file: {text}" if isinstance(exc, ValidationError) else text

    def _say_checked(self, report: ImportReport, skip: bool) -> None:
        counts = self._counts(report)
        if report.errors and not skip:
            show_banner(
                self.error,
                f"Dry run: {counts}. Nothing was written. Rows with errors would make the "
                "server refuse the whole file: fix them, or tick “Commit valid rows only”.",
            )
        else:
            left_out = " (rows with errors will be left out)" if report.errors else ""
            show_banner(
                self.status,
                f"Dry run: {counts}{left_out}. Nothing was written yet: press Import.",
                BANNER_OK,
            )

    def _say_imported(self, report: ImportReport) -> None:
        show_banner(self.status, f"Imported: {self._counts(report)}.", BANNER_OK)

    def _counts(self, report: ImportReport) -> str:
        created = "would be created" if report.dry_run else "created"
        updated = "would be updated" if report.dry_run else "updated"
        parts = [f"{report.count('created'):,} {created}", f"{report.count('updated'):,} {updated}"]
        if report.count("skipped"):
            parts.append(f"{report.count('skipped'):,} unchanged")
        parts.append(f"{report.errors:,} with errors")
        return ", ".join(parts)

    def _show_report(self, *_: object) -> None:
        report = self.report
        self.report_box.setVisible(report is not None)
        if report is None:
            self.report_model.set_rows(())
            return
        rows = report.rows
        if self.errors_only.isChecked():
            rows = tuple(r for r in rows if r.status == "error")
        self.report_model.set_rows(rows)
        kind = "Dry run" if report.dry_run else "Import"
        if report.rejected:
            kind += " refused"
        self.report_summary.setText(
            f"{kind}: {len(report.rows):,} rows reported, {report.errors:,} with errors"
        )

    def _clear_messages(self) -> None:
        for label in (self.error, self.status):
            show_banner(label, "")
