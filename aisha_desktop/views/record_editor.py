"""`RecordEditor`: the form of one record, built from the entity's built-in fields and the
tenant's custom fields (a widget per field type), with a validation message under each
field.  It only reads and shows values; the entity view decides what saving means."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.models.fields import IDENTITY, STATUSES, FieldSpec, validate

ERROR_STYLE = "color: #b3261e; font-size: 11px;"
PLACEHOLDERS = {
    "date": "YYYY-MM-DD",
    "datetime": "YYYY-MM-DD HH:MM",
    "email": "name@example.com",
    "phone": "+1 555 0100",
    "url": "https://",
    "number": "0",
    "currency": "0.00",
}


class RecordEditor(QWidget):
    edited = Signal()  # the user changed a value

    def __init__(self, entity: str, specs: Sequence[FieldSpec], parent: QWidget | None = None):
        super().__init__(parent)
        self.entity = entity
        self._loading = False
        self._original: dict[str, Any] = {}
        self._stored = False  # the form shows a stored record (not a new one)
        self._editors: dict[str, QWidget] = {}
        self._errors: dict[str, QLabel] = {}
        self.specs: list[FieldSpec] = []
        statuses = STATUSES.get(entity, ())
        if statuses:
            self.specs.append(FieldSpec("status", "Status", "select", options=statuses))
        self.specs.extend(specs)
        outer = QVBoxLayout(self)
        self._form = QFormLayout()
        outer.addLayout(self._form)
        outer.addStretch(1)  # fields keep their height; the space goes below them
        self._form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for spec in self.specs:
            self._add(spec)

    # -- building ------------------------------------------------------------------------
    def _add(self, spec: FieldSpec) -> None:
        widget = self._widget(spec)
        widget.setObjectName(f"field_{spec.name}")
        widget.setAccessibleName(spec.label)
        error = QLabel()
        error.setObjectName(f"error_{spec.name}")
        error.setStyleSheet(ERROR_STYLE)
        error.setWordWrap(True)
        error.hide()
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(widget)
        layout.addWidget(error)
        label = spec.label + (" *" if spec.required else "")
        self._form.addRow(label, box)
        self._editors[spec.name] = widget
        self._errors[spec.name] = error

    def _widget(self, spec: FieldSpec) -> QWidget:
        if spec.kind == "longtext":
            text = QPlainTextEdit()
            text.setFixedHeight(64)
            text.textChanged.connect(self._changed)
            return text
        if spec.kind == "boolean":
            check = QCheckBox()
            check.toggled.connect(self._changed)
            return check
        if spec.kind == "select":
            combo = QComboBox()
            combo.addItem("", None)
            titles = spec.option_titles or spec.options
            for option, title in zip(spec.options, titles, strict=True):
                combo.addItem(title, option)
            combo.setEditable(not spec.options)
            combo.currentIndexChanged.connect(self._changed)
            return combo
        if spec.kind == "multiselect":
            choices = QListWidget()
            for option in spec.options:
                item = QListWidgetItem(option)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                choices.addItem(item)
            choices.setFixedHeight(min(96, 22 * max(1, len(spec.options)) + 6))
            choices.itemChanged.connect(self._changed)
            return choices
        line = QLineEdit()
        line.setPlaceholderText(PLACEHOLDERS.get(spec.kind, ""))
        line.textEdited.connect(self._changed)
        return line

    def _changed(self, *_: object) -> None:
        if not self._loading:
            self.edited.emit()

    # -- values ------------------------------------------------------------------------
    def editor(self, name: str) -> QWidget:
        return self._editors[name]

    def load(self, data: Mapping[str, Any] | None) -> None:
        """Show a record (None: an empty form for a new one)."""
        self._loading = True
        try:
            data = data or {}
            self._stored = bool(data.get("id"))
            custom = data.get("custom_fields")
            custom = custom if isinstance(custom, Mapping) else {}
            for spec in self.specs:
                value = custom.get(spec.name) if spec.custom else data.get(spec.name)
                self._set(spec, self._editors[spec.name], value)
            self.show_errors({})
        finally:
            self._loading = False
        self._original = self.raw_values()

    @staticmethod
    def _set(spec: FieldSpec, widget: QWidget, value: Any) -> None:
        if isinstance(widget, QPlainTextEdit):
            widget.setPlainText("" if value is None else str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            text = "" if value is None else str(value)
            found = widget.findData(text) if text else 0
            if found < 0:  # a value no longer offered stays visible
                widget.addItem(text, text)
                found = widget.count() - 1
            widget.setCurrentIndex(found)
        elif isinstance(widget, QListWidget):
            chosen = {str(v) for v in value} if isinstance(value, list) else set()
            for row in range(widget.count()):
                item = widget.item(row)
                checked = item.text() in chosen
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        elif isinstance(widget, QLineEdit):
            widget.setText("" if value is None else str(value))
            widget.setCursorPosition(0)

    @staticmethod
    def _get(widget: QWidget) -> Any:
        if isinstance(widget, QPlainTextEdit):
            return widget.toPlainText().strip() or None
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QComboBox):
            data = widget.currentData()
            text = widget.currentText().strip()
            return (data if data is not None else text) or None
        if isinstance(widget, QListWidget):
            return [
                widget.item(r).text()
                for r in range(widget.count())
                if widget.item(r).checkState() == Qt.CheckState.Checked
            ]
        if isinstance(widget, QLineEdit):
            return widget.text().strip() or None
        return None

    def raw_values(self) -> dict[str, Any]:
        """Field name -> value as entered (text for numbers), custom fields included."""
        return {spec.name: self._get(self._editors[spec.name]) for spec in self.specs}

    def set_value(self, name: str, value: Any) -> None:
        """Set a field as if the user had (tests and the command palette)."""
        spec = next(s for s in self.specs if s.name == name)
        self._set(spec, self._editors[name], value)
        self.edited.emit()

    @property
    def dirty(self) -> bool:
        return self.raw_values() != self._original

    def problems(self) -> dict[str, str]:
        """What is wrong with what the user entered.  A stored value the user left alone is
        not held against the edit (a stage the pipeline no longer has, an address imported
        before the rules): only a required field left empty is."""
        raw = self.raw_values()
        found = {
            name: message
            for name, message in validate(self.specs, raw).items()
            if raw[name] != self._original.get(name) or raw[name] in (None, "", [])
        }
        # a person needs a name, e-mail or phone (the server's rule): a new one always, a
        # stored one when the edit touches those fields
        shown = [n for n in IDENTITY.get(self.entity, ()) if n in raw]
        touched = any(raw[n] != self._original.get(n) for n in shown)
        if shown and (touched or not self._stored) and all(_blank(raw[n]) for n in shown):
            labels = [s.label.lower() for s in self.specs if s.name in shown]
            found.setdefault(shown[0], "Give at least one of: " + ", ".join(labels))
        return found

    def show_errors(self, problems: Mapping[str, str]) -> None:
        for name, label in self._errors.items():
            message = problems.get(name)
            label.setText(message or "")
            label.setVisible(bool(message))

    def changes(self) -> dict[str, Any]:
        """The record fields the user changed since `load`, in the form the server takes
        (custom fields under `custom_fields`, numbers as numbers)."""
        raw = self.raw_values()
        return _server_form(
            (spec, raw[spec.name])
            for spec in self.specs
            if raw[spec.name] != self._original.get(spec.name)
        )

    def typed_values(self) -> dict[str, Any]:
        """Every field as the server takes it, empty ones as None: what a bulk change
        sets."""
        raw = self.raw_values()
        return _server_form((spec, raw[spec.name]) for spec in self.specs)

    def all_values(self) -> dict[str, Any]:
        """Every non-empty field (for a create)."""
        raw = self.raw_values()
        return _server_form(
            (spec, raw[spec.name])
            for spec in self.specs
            if raw[spec.name] not in (None, [], False) or (spec.kind == "boolean" and spec.custom)
        )


def _server_form(values: Iterable[tuple[FieldSpec, Any]]) -> dict[str, Any]:
    """Fields as the server takes them: typed (numbers as numbers), custom fields under
    `custom_fields`."""
    out: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for spec, value in values:
        (custom if spec.custom else out)[spec.name] = _typed(spec, value)
    if custom:
        out["custom_fields"] = custom
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _typed(spec: FieldSpec, value: Any) -> Any:
    if value is None or spec.kind not in ("number", "currency"):
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return value  # validation has said so already
    if spec.kind == "number" and number == number.to_integral_value():
        return int(number)
    return float(number) if spec.kind == "number" else str(number)
