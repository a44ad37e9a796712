"""Changing one field of several records at once: the operator picks the field (built-in
or custom) and the value, checked as the record form checks it; the entity view applies it
to every selected record through the replica (one transaction, then the outbox syncs it as
it syncs any edit).  Fields that name or reach a person one by one (names, e-mail, phones)
are not offered: the same value on many records would only make duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.dialogs.common import field_error_label
from aisha_desktop.models.fields import IDENTITY, FieldSpec
from aisha_desktop.views.record_editor import RecordEditor

PER_RECORD_KINDS = ("email", "phone")


def bulk_fields(entity: str, specs: Sequence[FieldSpec]) -> list[FieldSpec]:
    """The fields a bulk change offers: not a person's name, e-mail or phone, and not a
    built-in field every record must have its own value of (a name, a subject)."""
    personal = set(IDENTITY.get(entity, ()))
    return [
        spec
        for spec in specs
        if spec.kind not in PER_RECORD_KINDS
        and spec.name not in personal
        and not (spec.required and not spec.custom)
    ]


class BulkEditDialog(QDialog):
    def __init__(
        self,
        entity: str,
        labels: tuple[str, str],
        specs: Sequence[FieldSpec],
        count: int,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.entity = entity
        self.plural, self.singular = labels
        self.count = count
        self.fields = bulk_fields(entity, specs)
        self.values: dict[str, Any] | None = None  # what to set, once accepted
        noun = self.singular.lower() if count == 1 else self.plural.lower()
        self.setWindowTitle(f"Change {count:,} {noun}")
        self.setMinimumWidth(460)
        self.field = QComboBox()
        self.field.setObjectName("bulkField")
        for spec in self.fields:
            self.field.addItem(spec.label, spec.name)
        self.field.currentIndexChanged.connect(self._field_chosen)
        self.value_box = QVBoxLayout()
        self.value_box.setContentsMargins(0, 0, 0, 0)
        self.editor: RecordEditor | None = None
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #555;")
        self.error = field_error_label()
        self.error.setObjectName("bulkError")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.apply_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.apply_button.setText(f"Change {count:,} {noun}")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Field", self.field)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(self.value_box)
        layout.addWidget(self.hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._field_chosen()

    @property
    def chosen(self) -> FieldSpec | None:
        index = self.field.currentIndex()
        return self.fields[index] if 0 <= index < len(self.fields) else None

    def choose(self, name: str) -> None:
        self.field.setCurrentIndex(self.field.findData(name))

    def set_value(self, value: Any) -> None:
        spec = self.chosen
        if spec is not None and self.editor is not None:
            self.editor.set_value(spec.name, value)

    def _field_chosen(self, *_: object) -> None:
        if self.editor is not None:
            self.editor.setParent(None)
            self.editor.deleteLater()
            self.editor = None
        self.error.hide()
        spec = self.chosen
        if spec is None:
            self.hint.setText("No field of these records can be changed together.")
            self.apply_button.setEnabled(False)
            return
        # a form of the one field: its widget and checks, as on the record panel
        self.editor = RecordEditor("", [spec], self)
        self.editor.setObjectName("bulkValue")
        inner = self.editor.layout()
        if inner is not None:
            inner.setContentsMargins(0, 0, 0, 0)
        self.value_box.addWidget(self.editor)
        noun = self.singular.lower() if self.count == 1 else self.plural.lower()
        self.hint.setText(
            f"Every selected {self.singular.lower()} gets this value."
            + ("" if spec.required else f" Leave it empty to clear {spec.label} on the {noun}.")
        )

    def accept(self) -> None:
        spec, editor = self.chosen, self.editor
        if spec is None or editor is None:
            return
        problems = editor.problems()
        if problems:
            self.error.setText(problems.get(spec.name) or next(iter(problems.values())))
            self.error.show()
            return
        typed = editor.typed_values()
        if spec.custom:
            self.values = {"custom_fields": {spec.name: typed["custom_fields"][spec.name]}}
        else:
            self.values = {spec.name: typed[spec.name]}
        super().accept()
