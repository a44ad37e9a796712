"""Custom fields (guide 6.5): the fields of one entity (name, label, type, required,
options, archived), adding one (type picker, options editor for choice types, checked
before sending), editing the selected one's label, options and required flag (its name and
type never change), archiving (never dropping: stored values stay) and restoring."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.admin.base import AdminDialog
from aisha_desktop.dialogs.common import field_error_label, field_errors

# the entities the server defines custom fields for (it takes the plural too)
ENTITIES: tuple[tuple[str, str], ...] = (
    ("contact", "Contacts"),
    ("account", "Accounts"),
    ("lead", "Leads"),
    ("opportunity", "Opportunities"),
    ("activity", "Activities"),
    ("note", "Notes"),
)
# the server's field types (aisha_server.services.custom_fields.FIELD_TYPES), in its order
FIELD_TYPES: tuple[tuple[str, str], ...] = (
    ("text", "Text"),
    ("number", "Number"),
    ("currency", "Currency"),
    ("date", "Date"),
    ("datetime", "Date and time"),
    ("select", "Choice (one)"),
    ("multiselect", "Choice (several)"),
    ("boolean", "Yes / no"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("url", "Web address"),
)
CHOICE_TYPES = frozenset({"select", "multiselect"})
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
LABEL_MAX = 200
OPTION_MAX = 200
COLUMNS = ("Name", "Label", "Type", "Required", "Options", "Status")


@dataclass(frozen=True, slots=True)
class FieldDef:
    id: str
    field_name: str
    field_type: str
    label: str
    options: tuple[str, ...]
    is_required: bool
    is_archived: bool

    @classmethod
    def from_json(cls, data: Any) -> FieldDef:
        options = data.get("options")
        return cls(
            id=str(data["id"]),
            field_name=str(data["field_name"]),
            field_type=str(data["field_type"]),
            label=str(data.get("label") or ""),
            options=tuple(str(o) for o in options) if isinstance(options, list) else (),
            is_required=bool(data.get("is_required")),
            is_archived=bool(data.get("is_archived")),
        )


@dataclass(frozen=True, slots=True)
class NewFieldInput:
    field_name: str
    label: str
    field_type: str
    options: list[str]
    is_required: bool


def check_new_field(new: NewFieldInput, existing: list[FieldDef]) -> dict[str, str]:
    """`{input: problem}` for a field about to be added; empty when it can be sent."""
    found: dict[str, str] = {}
    name = new.field_name
    if not name:
        found["field_name"] = "A name is required."
    elif not FIELD_NAME.match(name):
        found["field_name"] = (
            "Lower-case letters, digits and _ only, starting with a letter (at most 63)."
        )
    else:
        clash = next((f for f in existing if f.field_name == name), None)
        if clash is not None:
            where = " (archived: restore it instead)" if clash.is_archived else ""
            found["field_name"] = f"A field named “{name}” exists already{where}."
    if len(new.label) > LABEL_MAX:
        found["label"] = f"At most {LABEL_MAX} characters."
    if new.field_type in CHOICE_TYPES and (problem := check_options(new.options)):
        found["options"] = problem
    return found


def check_options(options: list[str]) -> str | None:
    if not options:
        return "A choice field needs at least one option (one per line)."
    if len({o.casefold() for o in options}) != len(options):
        return "Each option may appear only once."
    if any(len(o) > OPTION_MAX for o in options):
        return f"Options are at most {OPTION_MAX} characters."
    return None


def field_changes(
    field: FieldDef, label: str, options: list[str], is_required: bool
) -> dict[str, Any]:
    """The PUT body for what an edit changed (an emptied label is sent as null)."""
    body: dict[str, Any] = {}
    if label != field.label:
        body["label"] = label or None
    if field.field_type in CHOICE_TYPES and tuple(options) != field.options:
        body["options"] = options
    if is_required != field.is_required:
        body["is_required"] = is_required
    return body


def options_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def type_name(field_type: str) -> str:
    return dict(FIELD_TYPES).get(field_type, field_type)


class CustomFieldsDialog(AdminDialog):
    title = "Custom fields"

    def __init__(self, api: ApiClient, tenant_id: str, parent: QWidget | None = None) -> None:
        super().__init__(api, tenant_id, parent)
        self.setMinimumSize(760, 600)
        self.fields: list[FieldDef] = []
        self.entity = QComboBox()
        for key, name in ENTITIES:
            self.entity.addItem(name, key)
        self.entity.currentIndexChanged.connect(self.reload)
        top = QHBoxLayout()
        top.addWidget(QLabel("Entity"))
        top.addWidget(self.entity)
        top.addStretch(1)
        self.layout_.addLayout(top)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.layout_.addWidget(self.table, 1)
        self.archive_button = QPushButton("Archive…")
        self.restore_button = QPushButton("Restore")
        self.archive_button.clicked.connect(self.archive_selected)
        self.restore_button.clicked.connect(self.restore_selected)
        row_actions = QHBoxLayout()
        row_actions.addStretch(1)
        row_actions.addWidget(self.restore_button)
        row_actions.addWidget(self.archive_button)
        self.layout_.addLayout(row_actions)

        box = QGroupBox("Add a field")
        form = QFormLayout(box)
        self.name = QLineEdit()
        self.name.setPlaceholderText("referral_source")
        self.label = QLineEdit()
        self.label.setPlaceholderText("Referral source")
        self.type = QComboBox()
        for key, name in FIELD_TYPES:
            self.type.addItem(name, key)
        self.type.currentIndexChanged.connect(self._type_changed)
        self.required = QCheckBox("Required")
        self.options = QPlainTextEdit()
        self.options.setPlaceholderText("One option per line, e.g.\nWebsite\nReferral\nEvent")
        self.options.setMaximumHeight(90)
        self.options_label = QLabel("Options")
        self.add_button = QPushButton("Add field")
        self.add_button.clicked.connect(self.add_field)
        self.errors = {name: field_error_label() for name in ("field_name", "label", "options")}
        form.addRow("Name", self.name)
        form.addRow("", self.errors["field_name"])
        form.addRow("Label", self.label)
        form.addRow("", self.errors["label"])
        form.addRow("Type", self.type)
        form.addRow(self.options_label, self.options)
        form.addRow("", self.errors["options"])
        form.addRow("", self.required)
        form.addRow("", self.add_button)
        forms = QHBoxLayout()
        forms.addWidget(box, 1)
        forms.addWidget(self._edit_box(), 1)
        self.layout_.addLayout(forms)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(self.buttons)
        self.editors += [
            self.name,
            self.label,
            self.type,
            self.required,
            self.options,
            self.add_button,
            self.archive_button,
            self.restore_button,
            self.edit_label,
            self.edit_options,
            self.edit_required,
            self.save_button,
        ]
        self.finish_layout()
        assert self.busy is not None
        self.busy.controls.append(self.entity)  # no switching entity while a call runs
        self._type_changed()

    def _edit_box(self) -> QGroupBox:
        self.edit_group = QGroupBox("Edit the selected field")
        form = QFormLayout(self.edit_group)
        self.edit_name = QLabel("Select a field in the list.")
        self.edit_name.setStyleSheet("color: #5f6368;")
        self.edit_label = QLineEdit()
        self.edit_options = QPlainTextEdit()
        self.edit_options.setMaximumHeight(90)
        self.edit_options_label = QLabel("Options")
        self.edit_required = QCheckBox("Required")
        self.save_button = QPushButton("Save changes")
        self.save_button.clicked.connect(self.save_selected)
        self.edit_errors = {name: field_error_label() for name in ("label", "options")}
        form.addRow("Field", self.edit_name)
        form.addRow("Label", self.edit_label)
        form.addRow("", self.edit_errors["label"])
        form.addRow(self.edit_options_label, self.edit_options)
        form.addRow("", self.edit_errors["options"])
        form.addRow("", self.edit_required)
        form.addRow("", self.save_button)
        return self.edit_group

    @property
    def entity_key(self) -> str:
        return str(self.entity.currentData())

    # -- list -----------------------------------------------------------------------------
    def reload(self) -> None:
        if self.loaded:
            self.run(self.fetch())

    async def fetch(self) -> None:
        data = await self.api.request(
            "GET",
            "/api/custom-fields",
            params={
                "tenant_id": self.tenant_id,
                "entity": self.entity_key,
                "include_archived": True,
            },
        )
        self._show([FieldDef.from_json(item) for item in data or []])

    def _show(self, fields: list[FieldDef]) -> None:
        self.fields = fields
        self.table.setRowCount(len(fields))
        grey = QBrush(QColor("#80868b"))
        for row, f in enumerate(fields):
            cells = (
                f.field_name,
                f.label,
                type_name(f.field_type),
                "Yes" if f.is_required else "",
                ", ".join(f.options),
                "Archived" if f.is_archived else "Active",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if f.is_archived:
                    item.setForeground(grey)
                self.table.setItem(row, column, item)
        self._selection_changed()

    def selected(self) -> FieldDef | None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return self.fields[min(rows)] if rows else None

    def select_field(self, field_name: str) -> None:
        for row, f in enumerate(self.fields):
            if f.field_name == field_name:
                self.table.selectRow(row)
                return
        raise KeyError(field_name)

    def _selection_changed(self) -> None:
        chosen = self.selected()
        choice = chosen is not None and chosen.field_type in CHOICE_TYPES
        self.edit_options.setVisible(choice)
        self.edit_options_label.setVisible(choice)
        if chosen is None:
            self.edit_name.setText("Select a field in the list.")
        else:
            self.edit_name.setText(f"{chosen.field_name}  ({type_name(chosen.field_type)})")
        self.edit_label.setText(chosen.label if chosen is not None else "")
        self.edit_options.setPlainText("\n".join(chosen.options) if chosen is not None else "")
        self.edit_required.setChecked(chosen is not None and chosen.is_required)
        self._show_edit_errors({})
        self.apply_mode()

    def apply_mode(self) -> None:
        super().apply_mode()
        chosen = self.selected()
        editable = self.can_edit and self.loaded
        self.archive_button.setEnabled(editable and chosen is not None and not chosen.is_archived)
        self.restore_button.setEnabled(editable and chosen is not None and chosen.is_archived)
        # an archived field is restored before it is edited
        live = editable and chosen is not None and not chosen.is_archived
        for control in (self.edit_label, self.edit_options, self.edit_required, self.save_button):
            control.setEnabled(live)

    # -- add ------------------------------------------------------------------------------
    def _type_changed(self) -> None:
        choice = self.type.currentData() in CHOICE_TYPES
        self.options.setVisible(choice)
        self.options_label.setVisible(choice)
        if not choice:
            self.errors["options"].hide()

    def new_field(self) -> NewFieldInput:
        field_type = str(self.type.currentData())
        return NewFieldInput(
            field_name=self.name.text().strip(),
            label=self.label.text().strip(),
            field_type=field_type,
            options=options_of(self.options.toPlainText()) if field_type in CHOICE_TYPES else [],
            is_required=self.required.isChecked(),
        )

    def _show_errors(self, found: dict[str, str]) -> None:
        for name, label in self.errors.items():
            label.setText(found.get(name, ""))
            label.setVisible(name in found)

    def add_field(self) -> None:
        self.clear_banners()
        new = self.new_field()
        found = check_new_field(new, self.fields)
        self._show_errors(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; nothing was sent."))
            return
        self.run(self._add(new))

    async def _add(self, new: NewFieldInput) -> None:
        body: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "entity": self.entity_key,
            "field_name": new.field_name,
            "field_type": new.field_type,
            "label": new.label or None,
            "is_required": new.is_required,
            "position": len(self.fields),
        }
        if new.field_type in CHOICE_TYPES:
            body["options"] = new.options
        await self.api.request("POST", "/api/custom-fields", json=body)
        await self.fetch()
        self.select_field(new.field_name)
        for edit in (self.name, self.label):
            edit.clear()
        self.options.clear()
        self.required.setChecked(False)
        self.show_done(f"Added “{new.label or new.field_name}” ({type_name(new.field_type)}).")

    def show_failure(self, exc: BaseException) -> None:
        found = field_errors(exc)
        if found:
            self._show_errors({k: v for k, v in found.items() if k in self.errors})
        super().show_failure(exc)

    # -- edit -----------------------------------------------------------------------------
    def _show_edit_errors(self, found: dict[str, str]) -> None:
        for name, label in self.edit_errors.items():
            label.setText(found.get(name, ""))
            label.setVisible(name in found)

    def save_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or chosen.is_archived:
            return
        self.clear_banners()
        label = self.edit_label.text().strip()
        options = options_of(self.edit_options.toPlainText())
        found: dict[str, str] = {}
        if len(label) > LABEL_MAX:
            found["label"] = f"At most {LABEL_MAX} characters."
        if chosen.field_type in CHOICE_TYPES and (problem := check_options(options)):
            found["options"] = problem
        self._show_edit_errors(found)
        if found:
            self.show_failure(ValueError("Fix the marked inputs; nothing was saved."))
            return
        body = field_changes(chosen, label, options, self.edit_required.isChecked())
        if not body:
            self.show_info("Nothing to save: the field is unchanged.")
            return
        self.run(self._save_field(chosen, body))

    async def _save_field(self, chosen: FieldDef, body: dict[str, Any]) -> None:
        try:
            await self.api.request(
                "PUT",
                f"/api/custom-fields/{chosen.id}",
                json=body,
                params={"tenant_id": self.tenant_id},
            )
        except Exception as exc:  # the server's field errors go to the edit form, not "Add"
            found = field_errors(exc)
            self._show_edit_errors({k: v for k, v in found.items() if k in self.edit_errors})
            AdminDialog.show_failure(self, exc)
            return
        await self.fetch()
        self.select_field(chosen.field_name)
        self.show_done(f"Saved “{chosen.label or chosen.field_name}”.")

    # -- archive / restore ----------------------------------------------------------------
    def archive_selected(self) -> None:
        chosen = self.selected()
        if chosen is None or chosen.is_archived:
            return
        if not self.confirm(
            "Archive custom field",
            f"Archive “{chosen.label or chosen.field_name}”?\n\n"
            "The field is archived, not deleted: it leaves the forms, but every value "
            "already stored in records is kept, and Restore brings it back.",
        ):
            return
        self.run(self._set_archived(chosen, archived=True))

    def restore_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None and chosen.is_archived:
            self.run(self._set_archived(chosen, archived=False))

    async def _set_archived(self, chosen: FieldDef, *, archived: bool) -> None:
        params = {"tenant_id": self.tenant_id}
        if archived:
            await self.api.request("DELETE", f"/api/custom-fields/{chosen.id}", params=params)
        else:
            await self.api.request("POST", f"/api/custom-fields/{chosen.id}/restore", params=params)
        await self.fetch()
        self.select_field(chosen.field_name)
        what = "Archived (stored values kept)" if archived else "Restored"
        self.show_done(f"{what}: “{chosen.label or chosen.field_name}”.")
